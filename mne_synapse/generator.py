"""Stage 2 of SYNAPSE: ``EEGImageGenerator``, EEG-conditioned Stable Diffusion.

The fitted :class:`~mne_synapse.SynapseEncoder` is frozen. A small adapter
``f_adapt`` turns ``Z_latent`` into 4 extra tokens ``Z_adapt``; decoupled
cross-attention processors read ``[Z_latent, Z_adapt]``; only the parameters
of a trainable *recipe* of the U-Net (plus the adapter) are finetuned with the
diffusion loss. Sampling goes through a diffusers ``StableDiffusionPipeline``
fed with ``prompt_embeds``, so any diffusers scheduler works.
"""

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from . import _hub, _inputs, _model_card, _param_checks, _persistence, _stimuli
from ._finetuning import load_base_model
from .utils import show_progress

__all__ = ["EEGImageGenerator", "load_base_model"]


class EEGImageGenerator(_hub.HubMixin, BaseEstimator):
    """Generate the images an EEG epoch saw (Stage 2 of SYNAPSE).

    Parameters
    ----------
    encoder : SynapseEncoder
        A fitted Stage-1 encoder (frozen here). If it is not fitted, a clone
        is fitted on the data given to :meth:`fit` first.
    base_model : str | path-like
        ``'tiny'`` (miniature world, shipped) or a Stable Diffusion model
        (hub name or local folder), e.g. ``'stabilityai/stable-diffusion-2-1'``.
    recipe : ``'paper'`` | ``'lean'``
        Which U-Net parameters are finetuned (see ``mne_synapse.models.RECIPES``);
        the adapter and new k/v projections are always trained.
    n_adapt_tokens, adapter_scale : int, float
        Tokens of ``Z_adapt`` and the weight of their attention branch.
    max_steps, batch_size, grad_accumulation, lr, warmup_steps, grad_clip : int, int, int, float, int, float
        AdamW finetuning (the authors: batch 8 x 4, lr 2e-5, constant, clip 1).
    snr_gamma : float | None
        Min-SNR loss weighting (paper: 0.5 for v-prediction); None disables it.
    condition_dropout : float
        Probability of replacing a context by the unconditional one while
        finetuning, so that classifier-free guidance has an unconditional
        model (the authors' ``cfg_scale`` key in ``Train_LDM.json`` is this
        probability, 0.1).
    unconditional_context : ``'zeros'`` | ``'zero_latent'``
        The unconditional context, of condition dropout and of guidance's
        negative branch alike: ``'zeros'``, all tokens zero; ``'zero_latent'``,
        ``Z_latent`` zeroed before the adapter, i.e. ``[0, f_adapt(0)]``, as
        the authors' trainer and pipeline do (and a stock diffusers
        IP-Adapter with a zero image embedding).
    encoder_dropout : bool
        Run the frozen encoder in training mode while finetuning, so that its
        dropout acts as augmentation and ``Z_latent`` is computed per batch
        (the authors' Stage 2); False computes it once, in eval mode.
        Generation always uses eval mode.
    vae_sampling : ``'mean'`` | ``'sample'``
        The stimulus latent finetuned on: the VAE posterior's mean, or a draw
        from the posterior per batch (the authors' trainer).
    ema_decay : float | None
        Exponential moving average of the trained weights (U-Net recipe and
        adapter), e.g. 0.9999 (with diffusers' ``EMAModel`` warm-up
        ``(1 + step) / (10 + step)``).
    mixed_precision : ``'no'`` | ``'fp16'`` | ``'bf16'``
        Autocast on GPUs (through ``accelerate``).
    gradient_checkpointing : bool
        Trade compute for U-Net memory (GPUs).
    num_inference_steps, guidance_scale : int, float
        Default sampling settings (paper: DDIM 250 steps, guidance 7.5).
    scheduler : str
        Class name of the diffusers sampling scheduler (``'DDIMScheduler'``,
        ``'DPMSolverMultistepScheduler'``, ...).
    resolution : int | None
        Side in pixels of the images finetuned on and generated (a multiple
        of 64 for SD); None: the base model's own (768 for SD 2.1, which the
        authors train and sample at 512).
    device : str
        Torch device.
    accelerator : accelerate.Accelerator | None
        Finetune on this accelerator, e.g. the one of an ``accelerate launch``
        run: data-parallel (DDP) over its processes, each drawing its own
        batches (so the effective batch is ``batch_size`` x processes), which
        also places the model (``device`` is then ignored). Its
        ``mixed_precision`` and ``gradient_accumulation_steps`` must equal the
        parameters above. None creates one from them (which also joins an
        ``accelerate launch`` run). See :doc:`/distributed`.
    random_state : int | None
        Seed of finetuning (generation takes its own ``random_state``).
    verbose : bool | str | int | None
        MNE-style verbosity; progress bars when at ``'info'``.

    Attributes
    ----------
    encoder_ : SynapseEncoder
        The frozen encoder.
    unet_, vae_, adapter_ : torch modules
        The finetuned U-Net (with EEG attention processors), the frozen VAE
        and ``f_adapt``.
    n_trainable_params_ : int
        Finetuned parameters (recipe + adapter).
    trainable_fraction_ : float
        ``n_trainable_params_`` over the parameters of the stock U-Net.
    loss_curve_ : list of float
        Diffusion loss per optimisation step (mean over processes).
    """

    def __init__(self, encoder=None, base_model="tiny", recipe="paper", n_adapt_tokens=4,
                 adapter_scale=1.0, max_steps=300, batch_size=8, grad_accumulation=1,
                 lr=1e-4, warmup_steps=20, grad_clip=1.0, snr_gamma=5.0,
                 condition_dropout=0.1, unconditional_context="zeros",
                 encoder_dropout=False, vae_sampling="mean", ema_decay=None, mixed_precision="no",
                 gradient_checkpointing=False, num_inference_steps=25, guidance_scale=3.0,
                 scheduler="DDIMScheduler", resolution=None, device="cpu", accelerator=None,
                 random_state=None, verbose=None):
        self.encoder = encoder
        self.base_model = base_model
        self.recipe = recipe
        self.n_adapt_tokens = n_adapt_tokens
        self.adapter_scale = adapter_scale
        self.max_steps = max_steps
        self.batch_size = batch_size
        self.grad_accumulation = grad_accumulation
        self.lr = lr
        self.warmup_steps = warmup_steps
        self.grad_clip = grad_clip
        self.snr_gamma = snr_gamma
        self.condition_dropout = condition_dropout
        self.unconditional_context = unconditional_context
        self.encoder_dropout = encoder_dropout
        self.vae_sampling = vae_sampling
        self.ema_decay = ema_decay
        self.mixed_precision = mixed_precision
        self.gradient_checkpointing = gradient_checkpointing
        self.num_inference_steps = num_inference_steps
        self.guidance_scale = guidance_scale
        self.scheduler = scheduler
        self.resolution = resolution
        self.device = device
        self.accelerator = accelerator
        self.random_state = random_state
        self.verbose = verbose

    # -- helpers -------------------------------------------------------------
    def _validate_params(self):
        _param_checks.check_generator_params(self)

    def _fitted_encoder(self, X, y, images, subjects):
        from sklearn.base import clone

        from .encoder import SynapseEncoder

        encoder = self.encoder if self.encoder is not None else SynapseEncoder()
        try:
            check_is_fitted(encoder, "net_")
            return encoder
        except Exception:  # noqa: BLE001 - NotFittedError: fit a clone here
            return clone(encoder).fit(X, y, images=images, subjects=subjects)

    def _contexts(self, z, torch):
        """The context of each row of ``z`` and the unconditional one (guidance's negative)."""
        from ._finetuning import eeg_context

        z = torch.as_tensor(z, device=next(self.adapter_.parameters()).device)
        drop = torch.ones(len(z), dtype=torch.bool, device=z.device)
        return (eeg_context(self.adapter_, z), eeg_context(self.adapter_, z,
                                                          self.unconditional_context, drop))

    # -- the authors' configuration and files ------------------------------------
    @classmethod
    def paper(cls, encoder=None, **overrides):
        """The authors' Stage-2 configuration (:data:`~mne_synapse.PAPER_STAGE2`), overridable.

        Each value and the file of their code it comes from is listed in
        :doc:`/method`. On a GPU (``device='cuda'``): it finetunes SD 2.1 in
        fp16 with gradient checkpointing, as they did.
        """
        from ._paper import PAPER_STAGE2

        return cls(**{**PAPER_STAGE2, "encoder": encoder, **overrides})

    @classmethod
    def from_official(cls, checkpoint_dir, encoder, base_model="stabilityai/stable-diffusion-2-1",
                      use_ema=False, device="cpu", **params):
        """A fitted generator from a ``checkpoint-N/`` folder of the authors' Stage-2 trainer.

        Parameters
        ----------
        checkpoint_dir : path-like
            Their folder: ``unet/`` (the whole U-Net with their IP processors),
            ``ip_adaption/`` (their adapter) and, with EMA, ``ema_unet/``.
        encoder : SynapseEncoder
            The fitted Stage-1 encoder it was trained with, e.g.
            ``SynapseEncoder.from_official(their encoder file)``.
        base_model : str | path-like
            The Stable Diffusion they finetuned (hub name or local folder).
        use_ema : bool
            Their EMA U-Net (``ema_unet/``) instead of ``unet/`` (which their
            ``gen_images.py`` samples with).
        device : str
            Torch device of the U-Net, VAE and adapter.
        **params
            Parameters instead of :meth:`paper`'s (e.g. ``num_inference_steps``).

        Returns
        -------
        generator : EEGImageGenerator
            Fitted: every tensor of their U-Net file and adapter in place; it
            generates, saves and loads like any fitted generator.

        Raises
        ------
        FileNotFoundError, ValueError
            A missing folder or file; a U-Net of another base model; a key,
            shape, token count or width that does not match (each named).
        """
        from .interop.official_stage2 import official_generator

        return official_generator(cls, checkpoint_dir, encoder, base_model, use_ema, device,
                                  params)

    # -- fit -------------------------------------------------------------------
    def fit(self, X, y=None, images=None, subjects=None):
        """Finetune the adapter and the recipe's U-Net parameters on EEG-image pairs.

        Parameters
        ----------
        X : mne.Epochs | ndarray, shape (n_epochs, n_chans, n_times)
            EEG; with Epochs, the stimulus of each epoch is read from
            ``metadata[encoder.image_column]``.
        y : None
            Unused (accepted so the estimator fits in Pipelines).
        images : sequence | None
            One stimulus per epoch (arrays or paths), overriding the metadata.
        subjects : array-like | None
            Subject of each epoch (or one for all), as in :meth:`SynapseEncoder.transform`.

        Returns
        -------
        self : EEGImageGenerator
        """
        import torch

        from ._finetuning import (EEGLatents, check_stimuli, finetune, image_size,
                                  prepare_unet, set_fitted)
        from .models import EEGAdapter, count_parameters

        self._validate_params()
        data, _, metadata = _inputs.get_data(X, lazy=True)
        column = getattr(self.encoder, "image_column", "image_path")
        images, _ = _stimuli.resolve_stimuli(  # before the encoder's, so errors name our options
            len(data), metadata, images, None, None, column, "caption", "{}", True, False)
        encoder = self._fitted_encoder(X, y, images, subjects)
        vae, unet, noise_scheduler, base_id = load_base_model(self.base_model)
        check_stimuli(images, vae, image_size(vae, unet), base_id, self.verbose)
        latents = EEGLatents(encoder, X, dropout=self.encoder_dropout, subjects=subjects)
        cross_dim = unet.config.cross_attention_dim
        if latents.embed_dim != cross_dim:
            raise ValueError(
                f"The encoder's latent has {latents.embed_dim} features per token but the "
                f"U-Net's cross-attention expects {cross_dim}. Fit the encoder with "
                "the CLIP model of this Stable Diffusion (SD 2.x: ViT-H-14, 1024)."
            )
        seed = int(np.random.RandomState(self.random_state).randint(2**31 - 1))
        n_unet_params = count_parameters(unet, trainable_only=False)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            prepare_unet(unet, self.n_adapt_tokens, self.adapter_scale, self.recipe)
            adapter = EEGAdapter(latents.embed_dim, cross_dim, self.n_adapt_tokens)
        unet, adapter, self.loss_curve_ = finetune(self, unet, adapter, vae, noise_scheduler,
                                                   latents, images, seed)
        return set_fitted(self, unet, adapter, vae, noise_scheduler, base_id, encoder,
                          n_unet_params)

    # -- generation ------------------------------------------------------------
    def _get_pipeline(self):
        from ._finetuning import sampling_pipeline

        if getattr(self, "_pipeline", None) is None:
            self._pipeline = sampling_pipeline(self.vae_, self.unet_, self.noise_scheduler_,
                                               self.scheduler)
        self._pipeline.set_progress_bar_config(disable=not show_progress(self.verbose))
        return self._pipeline

    def generate(self, X, n_images=1, num_inference_steps=None, guidance_scale=None,
                 random_state=None, batch_size=16, output_type="pil", subjects=None):
        """Generate images from EEG.

        Parameters
        ----------
        X : mne.Epochs | ndarray, shape (n_epochs, n_chans, n_times)
            EEG epochs (channels and times as in fit).
        n_images : int
            Images per epoch (paper: 5).
        num_inference_steps, guidance_scale : int | None, float | None
            Override the defaults set in the constructor.
        random_state : int | RandomState | None
            Seed of the initial noise: an int ``s`` draws it from
            ``torch.Generator().manual_seed(s)``, as a stock diffusers pipeline
            given that generator does (see :meth:`export_diffusers`).
        batch_size : int
            Epochs per pipeline call.
        output_type : ``'pil'`` | ``'np'``
            ``'pil'``: a list (one per epoch) of lists of ``n_images`` PIL
            images; ``'np'``: a uint8 array (n_epochs, n_images, H, W, 3).
        subjects : array-like | None
            Subject of each epoch (or one for all), as in :meth:`SynapseEncoder.transform`.

        Returns
        -------
        images : list of list of PIL.Image | ndarray
        """
        import torch

        check_is_fitted(self, "unet_")
        if not isinstance(n_images, (int, np.integer)) or n_images < 1:
            raise ValueError(f"n_images must be an integer >= 1, got {n_images!r}.")
        if output_type not in ("pil", "np"):
            raise ValueError(f"output_type must be 'pil' or 'np', got {output_type!r}.")
        z = self.encoder_.latent(X, subjects)
        pipe = self._get_pipeline()
        generator = _inputs.noise_generator(random_state)
        steps = num_inference_steps or self.num_inference_steps
        guidance = self.guidance_scale if guidance_scale is None else guidance_scale
        out = []
        with torch.no_grad():
            for start in range(0, len(z), batch_size):
                context, negative = self._contexts(z[start:start + batch_size], torch)
                result = pipe(
                    prompt_embeds=context, negative_prompt_embeds=negative,
                    num_images_per_prompt=n_images, num_inference_steps=steps,
                    guidance_scale=guidance, height=self.image_size_, width=self.image_size_,
                    generator=generator, output_type="np",
                ).images
                out.append(np.round(result * 255).astype(np.uint8))
        images = np.concatenate(out).reshape(len(z), n_images, *out[0].shape[1:])
        if output_type == "np":
            return images
        from PIL import Image

        return [[Image.fromarray(im) for im in row] for row in images]

    def export_diffusers(self, folder, overwrite=False):
        """Write a folder stock diffusers uses without mne-synapse: U-Net, VAE, IP-Adapter.

        See :func:`mne_synapse.interop.diffusers_export.export_diffusers` (the
        layout, the calls, the refusals) and :doc:`/sharing`.
        """
        from .interop.diffusers_export import export_diffusers

        return export_diffusers(self, folder, overwrite=overwrite)

    # -- persistence -------------------------------------------------------------
    def _trained_state(self):
        state = {f"unet.{k}": v for k, v in self.unet_.named_parameters() if v.requires_grad}
        state.update({f"adapter.{k}": v for k, v in self.adapter_.state_dict().items()})
        return {k: v.detach().cpu().contiguous() for k, v in state.items()}

    def _saved_params(self):
        params = {k: v for k, v in self.get_params(deep=False).items()
                  if k not in ("encoder", "accelerator")}
        return dict(params, base_model=self.base_id_)

    def _saved_files(self):
        """Adapter + finetuned U-Net weights (a few MB, not the base model) and ``encoder/``."""
        return _persistence.generator_files(self)

    def _card(self):
        return _model_card.generator_card(self)

    @classmethod
    def _load_folder(cls, path, base_model=None, device="cpu"):
        from .encoder import SynapseEncoder

        return _persistence.restore_generator(cls, SynapseEncoder, path, base_model, device)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_pipeline"] = None  # rebuilt on demand; holds the same modules
        return state


