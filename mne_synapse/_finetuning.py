"""Stage-2 finetuning of Stable Diffusion on EEG (imported when a generator fits or loads).

:func:`load_base_model` finds the Stable Diffusion parts, :func:`prepare_unet`
makes a U-Net read EEG (attention processors, trainable recipe) and
:func:`finetune` runs the diffusion-loss loop of an
:class:`~mne_synapse.EEGImageGenerator` through ``accelerate``; every way a
generator gets its fitted state (fit, a saved folder, the authors' files) ends
in :func:`set_fitted`.
"""

from pathlib import Path

import numpy as np

from .utils import quiet_libraries, show_progress


def load_base_model(base_model):
    """Return ``(vae, unet, noise_scheduler, base_id)`` of a Stable Diffusion model.

    Parameters
    ----------
    base_model : str | path-like | DiffusionPipeline
        ``'tiny'`` for the miniature world's model shipped with the package,
        a local diffusers folder (with ``unet/``, ``vae/``, ``scheduler/``), a
        Hugging Face hub name such as ``'stabilityai/stable-diffusion-2-1'``,
        or a loaded pipeline (its parts are copied, never modified).
    """
    if all(hasattr(base_model, part) for part in ("vae", "unet", "scheduler")):
        import copy

        return (copy.deepcopy(base_model.vae), copy.deepcopy(base_model.unet),
                copy.deepcopy(base_model.scheduler), "in-memory")
    if str(base_model) == "tiny":
        from diffusers import DDPMScheduler

        from .miniature.tiny_sd import build_tiny_sd

        vae, unet, scheduler = build_tiny_sd("synthetic")
        return vae, unet, DDPMScheduler.from_config(scheduler.config), "tiny"
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel

    folder = Path(str(base_model)).expanduser()
    source = str(folder) if folder.is_dir() else str(base_model)
    try:
        with quiet_libraries():  # their download warnings come before our clear error
            unet = UNet2DConditionModel.from_pretrained(source, subfolder="unet")
            vae = AutoencoderKL.from_pretrained(source, subfolder="vae")
            scheduler = DDPMScheduler.from_pretrained(source, subfolder="scheduler")
    except Exception as err:  # noqa: BLE001 - every loader failure means missing weights
        raise FileNotFoundError(
            f"Could not load Stable Diffusion {base_model!r} ({type(err).__name__}: {err}). "
            "Offline machines need the weights on disk: on a machine with internet run "
            f"`hf download {base_model} --include 'unet/*' --include 'vae/*' "
            "--include 'scheduler/*'` (or `StableDiffusionPipeline.from_pretrained(...)"
            ".save_pretrained(FOLDER)`) and pass the folder as base_model."
        ) from err
    return vae, unet, scheduler, source


def image_size(vae, unet, resolution=None):
    """Side in pixels of the images a VAE + U-Net pair trains on and generates.

    ``resolution`` None: the pair's own (the U-Net's ``sample_size`` times the
    VAE's factor); else that, checked against the pair's downsampling factor.
    """
    scale = 2 ** (len(vae.config.block_out_channels) - 1)
    if resolution is None:
        return int(unet.config.sample_size) * scale
    # Every U-Net downsampling halves the latent: it must divide evenly.
    factor = scale * 2 ** (len(unet.config.block_out_channels) - 1)
    if resolution % factor:
        raise ValueError(f"resolution={resolution} is not a multiple of {factor}, the "
                         "downsampling factor of this base model's VAE and U-Net; use e.g. "
                         f"{max(factor, round(resolution / factor) * factor)}.")
    return int(resolution)


def sampling_pipeline(vae, unet, noise_scheduler, scheduler="DDIMScheduler"):
    """A diffusers ``StableDiffusionPipeline`` without text encoder, fed ``prompt_embeds``.

    ``scheduler`` is the class name of its sampling scheduler, configured
    from the training one (``noise_scheduler``).
    """
    import diffusers

    try:
        scheduler_cls = getattr(diffusers, scheduler)
    except AttributeError as err:
        raise ValueError(f"Unknown diffusers scheduler {scheduler!r}; use the class name of "
                         "one, e.g. 'DDIMScheduler'.") from err
    with quiet_libraries():  # e.g. the "steps_offset" notice of old SD configs
        return diffusers.StableDiffusionPipeline(
            vae=vae, text_encoder=None, tokenizer=None, unet=unet,
            scheduler=scheduler_cls.from_config(noise_scheduler.config),
            safety_checker=None, feature_extractor=None, requires_safety_checker=False,
        )


def _release_single_process_state(mixed_precision):
    """Let this process fit in another mixed precision than an earlier fit.

    accelerate keeps one process-wide state and refuses a second ``Accelerator``
    with another ``mixed_precision`` (fitting fp32, then bf16, in one session).
    In a single process nothing else shares that state, so it is reset; under a
    distributed launch it is the launcher's, and the clear error says so.
    """
    from accelerate.state import AcceleratorState, GradientState, PartialState

    state = AcceleratorState._shared_state
    if not state or state.get("_mixed_precision") in (None, mixed_precision):
        return
    if PartialState().num_processes > 1:
        raise ValueError(
            f"This distributed run was launched with mixed precision "
            f"{state['_mixed_precision']!r}; pass mixed_precision="
            f"{state['_mixed_precision']!r} or relaunch with --mixed_precision "
            f"{mixed_precision}.")
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


def set_fitted(generator, unet, adapter, vae, noise_scheduler, base_id, encoder,
               n_unet_params):
    """Make ``generator`` fitted: the same attributes after fit, load and from_official."""
    from .models import count_parameters

    generator.unet_, generator.adapter_, generator.vae_ = unet.eval(), adapter.eval(), vae.eval()
    generator.noise_scheduler_, generator.base_id_ = noise_scheduler, base_id
    generator.encoder_ = encoder
    generator.n_trainable_params_ = count_parameters(unet) + count_parameters(adapter)
    generator.trainable_fraction_ = generator.n_trainable_params_ / n_unet_params
    generator.image_size_ = image_size(vae, unet, generator.resolution)
    generator._pipeline = None
    return generator


def load_trained_state(unet, state, n_adapt_tokens):
    """Put a saved generator's finetuned weights into ``unet``; return its adapter.

    ``state`` holds ``unet.*`` (the recipe's parameters, onto a U-Net prepared
    by :func:`prepare_unet`) and ``adapter.*`` (f_adapt).
    """
    from .models import EEGAdapter

    unet_state = {k[5:]: v for k, v in state.items() if k.startswith("unet.")}
    missing = set(unet_state) - set(dict(unet.named_parameters()))
    if missing:
        raise ValueError(f"unknown parameters such as {sorted(missing)[:3]}")
    unet.load_state_dict(unet_state, strict=False)
    adapter_state = {k[8:]: v for k, v in state.items() if k.startswith("adapter.")}
    adapter = EEGAdapter(adapter_state["proj.weight"].shape[1],
                         unet.config.cross_attention_dim, n_adapt_tokens)
    adapter.load_state_dict(adapter_state)
    return adapter


def prepare_unet(unet, n_adapt_tokens, adapter_scale, recipe):
    """Install the EEG attention processors and mark the recipe's parameters trainable."""
    from .models import apply_recipe, install_eeg_processors

    install_eeg_processors(unet, n_adapt_tokens, adapter_scale)
    apply_recipe(unet, recipe)
    return unet


# What classifier-free guidance calls "no condition" (see eeg_context).
UNCONDITIONAL_CONTEXTS = ("zeros", "zero_latent")


def eeg_context(adapter, z, unconditional_context="zeros", drop=None):
    """The U-Net context ``[Z_latent, f_adapt(Z_latent)]``, with some rows unconditional.

    Parameters
    ----------
    adapter : EEGAdapter
        ``f_adapt``.
    z : torch.Tensor, shape (batch, n_tokens, embed_dim)
        ``Z_latent`` of each row.
    unconditional_context : ``'zeros'`` | ``'zero_latent'``
        What an unconditional row is: ``'zeros'``, every token of the
        context zero; ``'zero_latent'``, ``Z_latent`` zeroed *before* the
        adapter, so ``[0, f_adapt(0)]`` (the authors' code, in condition
        dropout and in sampling; also what a stock diffusers IP-Adapter reads
        for a zero image embedding).
    drop : torch.Tensor of bool, shape (batch,) | None
        The rows made unconditional (condition dropout; all of them for the
        negative context of guidance). None keeps every row.

    Returns
    -------
    context : torch.Tensor, shape (batch, n_tokens + n_adapt_tokens, dim)
    """
    import torch

    from ._inputs import check_option

    check_option(unconditional_context, "unconditional_context", UNCONDITIONAL_CONTEXTS)
    if drop is None:
        return torch.cat([z, adapter(z)], dim=1)
    keep = (~drop).to(z)[:, None, None]
    if unconditional_context == "zero_latent":
        z = z * keep
        return torch.cat([z, adapter(z)], dim=1)
    return torch.cat([z, adapter(z)], dim=1) * keep


VAE_SAMPLING = ("mean", "sample")


def encode_images(images, vae, size, sample=False):
    """VAE latents (scaled as SD does) of the stimuli, resized to ``size``.

    Returns the posterior means, and with ``sample=True`` also the posterior
    standard deviations (scaled alike), so that a latent can be drawn per
    batch as ``mean + std * noise`` (what ``latent_dist.sample()`` does)
    without running the VAE encoder again; else ``(mean, None)``.
    """
    import torch
    from PIL import Image

    from .clip import read_image

    means, stds = [], []
    with torch.no_grad():
        for start in range(0, len(images), 32):  # read 32 images at a time, not all
            pixels = np.stack([
                np.asarray(Image.fromarray(read_image(im)).resize((size, size),
                                                                  Image.BICUBIC))
                for im in images[start:start + 32]
            ])
            x = torch.as_tensor(pixels).permute(0, 3, 1, 2).float() / 127.5 - 1
            dist = vae.encode(x.to(vae.device)).latent_dist
            means.append(dist.mean.cpu() * vae.config.scaling_factor)
            if sample:
                stds.append(dist.std.cpu() * vae.config.scaling_factor)
    return torch.cat(means), (torch.cat(stds) if sample else None)


# VAE reconstruction error (mean squared, pixels in [-1, 1]) above which stimuli are not
# the synthetic kind the miniature model knows: its own stimuli give < 0.01, natural
# photographs 0.06 to 0.5 and flat shapes on white 0.8 (tests/test_own_data.py).
_MINIATURE_ERROR = 0.03


def check_stimuli(images, vae, size, base_id, verbose=None):
    """Say what the base model will make of the stimuli, before finetuning on them.

    Logs (info) when the stimuli are resized to the generator's ``size``, and
    warns when the miniature world's model (``base_id == 'tiny'``) is given
    stimuli it cannot draw: its VAE, trained on the synthetic shapes only,
    reproduces a sample of them badly.
    """
    import torch
    from mne.utils import logger, use_log_level

    from .clip import read_image

    sample = [read_image(images[i]) for i in
              np.unique(np.linspace(0, len(images) - 1, 16).astype(int))]
    height, width = sample[0].shape[:2]
    if (height, width) != (size, size):
        with use_log_level(verbose):
            logger.info(f"Stimuli of {width} x {height} px are resized to {size} x {size} "
                        f"px, the size base model {base_id!r} makes: generated images "
                        f"are {size} px.")
    if base_id != "tiny":
        return
    from PIL import Image

    x = torch.as_tensor(np.stack([np.asarray(Image.fromarray(im).resize(
        (size, size), Image.BICUBIC)) for im in sample])).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        x = x.to(vae.device)
        error = float(((vae.decode(vae.encode(x).latent_dist.mean).sample - x) ** 2)
                      .mean(dim=(1, 2, 3)).median())
    if error > _MINIATURE_ERROR:
        import warnings

        warnings.warn(
            "base_model='tiny' is the miniature world's Stable Diffusion: it knows only "
            "the synthetic shapes of make_synthetic, and these stimuli are of another kind "
            f"(its VAE redraws them with error {error:.2f}, synthetic ones < 0.01), so it "
            "will draw coloured blobs. For real images fit the encoder with "
            "clip_model='ViT-H-14' and use base_model='stabilityai/stable-diffusion-2-1' "
            "on a GPU (see 'Your own data' in the documentation).", UserWarning,
            stacklevel=3)


class EEGLatents:
    """``Z_latent`` of batches of epochs for finetuning, from a frozen encoder.

    Without dropout (``dropout=False``) the latents are computed once, in
    eval mode. With it, the encoder runs in training mode on every batch (a
    copy of its network: the encoder itself is not touched), so its dropout
    acts as augmentation, as in the authors' Stage 2 (``cond_models.train()``
    in ``src/models/eeg_LDM2.py``); nothing is precomputed and the EEG is read
    a batch at a time.
    """

    def __init__(self, encoder, X, dropout=False, subjects=None):
        import copy

        import torch

        self.dropout = bool(dropout)
        if self.dropout:
            self.encoder, self.data = encoder, encoder._prepare(X, subjects)
            self.module = copy.deepcopy(encoder.net_.module_).requires_grad_(False).train()
            first = subjects if subjects is None or np.ndim(subjects) == 0 else subjects[:1]
            self.n, self.embed_dim = len(self.data), encoder.latent(X[:1], first).shape[-1]
        else:
            self.z = torch.as_tensor(encoder.latent(X, subjects), dtype=torch.float32)
            self.n, self.embed_dim = self.z.shape[0], self.z.shape[-1]

    def __call__(self, idx, device):
        """``Z_latent`` of the epochs ``idx`` (a 1-d integer tensor), on ``device``."""
        import torch

        if not self.dropout:
            return self.z[idx].to(device)
        self.module.to(device)
        x = self.encoder._scale(self.data[idx.numpy()])
        with torch.no_grad():
            return self.module.encode(torch.as_tensor(x, device=device)).float()


def finetune(estimator, unet, adapter, vae, noise_scheduler, latents, images, seed):
    """Finetune ``unet`` (its trainable parameters) and ``adapter`` with the diffusion loss.

    Parameters
    ----------
    estimator : EEGImageGenerator
        Gives the training parameters (steps, batch, lr, accelerator, ...).
    unet, adapter, vae, noise_scheduler
        The prepared U-Net, ``f_adapt``, the frozen VAE and the training schedule.
    latents : EEGLatents
        The encoder's latent of each epoch (precomputed, or with dropout per batch).
    images : sequence
        The stimulus of each epoch.
    seed : int
        Seed of batches, noise and timesteps.

    Returns
    -------
    unet, adapter : torch modules
        Trained, unwrapped, in eval mode (EMA weights with ``ema_decay``).
    loss_curve : list of float
        Loss per optimisation step (mean over processes).
    """
    import torch
    from accelerate import Accelerator
    from diffusers.training_utils import EMAModel, compute_snr
    from tqdm import tqdm

    vae.requires_grad_(False).eval()
    if estimator.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    params = [p for p in unet.parameters() if p.requires_grad] + list(adapter.parameters())

    accelerator = estimator.accelerator
    if accelerator is None:
        _release_single_process_state(estimator.mixed_precision)
        accelerator = Accelerator(
            cpu=estimator.device == "cpu", mixed_precision=estimator.mixed_precision,
            gradient_accumulation_steps=estimator.grad_accumulation,
        )
    vae.to(accelerator.device)
    means, stds = encode_images(images, vae, image_size(vae, unet, estimator.resolution),
                                sample=estimator.vae_sampling == "sample")
    optimizer = torch.optim.AdamW(params, lr=estimator.lr, weight_decay=1e-2)
    # accelerate steps a prepared schedule once per process and optimiser step.
    warmup = max(1, estimator.warmup_steps * accelerator.num_processes)
    lr_schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / warmup))
    unet, adapter, optimizer, lr_schedule = accelerator.prepare(
        unet, adapter, optimizer, lr_schedule)
    ema = EMAModel(params, decay=estimator.ema_decay) if estimator.ema_decay else None
    # Each process draws its own batches (DDP averages their gradients).
    rng = torch.Generator().manual_seed(seed + accelerator.process_index)
    n_train_steps = noise_scheduler.config.num_train_timesteps
    loss_curve = []
    unet.train()
    adapter.train()
    steps = tqdm(range(estimator.max_steps * estimator.grad_accumulation),
                 desc="stage 2 (finetuning)", unit="step",
                 disable=not (show_progress(estimator.verbose)
                              and accelerator.is_local_main_process))
    with torch.random.fork_rng(devices=[]), steps:
        torch.manual_seed(seed)
        for _ in steps:
            idx = torch.randint(0, latents.n, (estimator.batch_size,), generator=rng)
            x0 = means[idx]
            if stds is not None:  # a draw from the VAE posterior, as the authors' trainer
                x0 = x0 + stds[idx] * torch.randn(x0.shape, generator=rng)
            x0 = x0.to(accelerator.device)
            noise = torch.randn(x0.shape, generator=rng).to(x0.device)
            t = torch.randint(0, n_train_steps, (len(idx),), generator=rng).to(x0.device)
            noisy = noise_scheduler.add_noise(x0, noise, t)
            if noise_scheduler.config.prediction_type == "v_prediction":
                target = noise_scheduler.get_velocity(x0, noise, t)
            else:
                target = noise
            with accelerator.accumulate(unet, adapter):
                # Condition dropout: the unconditional model of classifier-free guidance.
                drop = torch.rand(len(idx), generator=rng) < estimator.condition_dropout
                context = eeg_context(adapter, latents(idx, x0.device),
                                      estimator.unconditional_context, drop.to(x0.device))
                pred = unet(noisy, t, encoder_hidden_states=context).sample
                loss = ((pred.float() - target.float()) ** 2).mean(dim=(1, 2, 3))
                if estimator.snr_gamma is not None:
                    snr = compute_snr(noise_scheduler, t)
                    weight = torch.clamp(snr, max=estimator.snr_gamma)
                    if noise_scheduler.config.prediction_type == "v_prediction":
                        weight = weight / (snr + 1)
                    else:
                        weight = weight / snr
                    loss = loss * weight
                loss = loss.mean()
                accelerator.backward(loss)
                if accelerator.sync_gradients and estimator.grad_clip:
                    accelerator.clip_grad_norm_(params, estimator.grad_clip)
                optimizer.step()
                lr_schedule.step()
                optimizer.zero_grad()
            if accelerator.sync_gradients:
                if ema is not None:
                    ema.step(params)
                loss_curve.append(float(accelerator.reduce(
                    loss.detach(), reduction="mean").item()))
    if ema is not None:
        ema.copy_to(params)
    # Without accelerate's autocast wrapper: the fitted generator samples in float32,
    # as a saved-and-loaded one does (the wrapper kept the fit's mixed precision).
    unwrap = lambda model: accelerator.unwrap_model(model, keep_fp32_wrapper=False).eval()  # noqa: E731
    return unwrap(unet), unwrap(adapter), loss_curve
