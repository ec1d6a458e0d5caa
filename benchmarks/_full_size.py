"""The paper's configuration with random weights, built offline as a user's download looks.

Shared by ``bench_full_size.py``, ``gpu_check.py`` and ``tests/test_full_size.py``:

- Stable Diffusion 2.1 (U-Net from the config shipped with mne-synapse, the
  VAE and scheduler configs below) written with ``save_pretrained`` to a local
  folder, passed as ``base_model=<folder>``;
- OpenCLIP ViT-H-14 with random weights written to a local checkpoint file,
  passed as ``clip_pretrained=<file>``;
- random EEG epochs of the paper's shape (128 electrodes x 440 samples), random
  stimulus images and captions.

``miniature=True`` keeps every shape that the code paths depend on (128 x 440
EEG, 77 x 1024 CLIP tokens, four VAE and U-Net levels) but shrinks the widths,
so that the same flow runs in seconds on a CPU.
"""

import json
import re
import time
from pathlib import Path

import numpy as np

# stabilityai/stable-diffusion-2-1, vae/config.json (scaling_factor: diffusers' default).
SD21_VAE_CONFIG = dict(
    act_fn="silu", block_out_channels=[128, 256, 512, 512],
    down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
    in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, norm_num_groups=32,
    sample_size=768, scaling_factor=0.18215,
)
# stabilityai/stable-diffusion-2-1, scheduler/scheduler_config.json.
SD21_SCHEDULER_CONFIG = dict(
    beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
    num_train_timesteps=1000, prediction_type="v_prediction", set_alpha_to_one=False,
    steps_offset=1, trained_betas=None,
)
# The paper's sizes: EEG, image side, CLIP model.
N_CHANS, N_TIMES, RESOLUTION, CLIP_MODEL = 128, 440, 512, "ViT-H-14"
# Miniature stand-ins: same depths and token shapes, small widths.
MINIATURE_RESOLUTION = 64
MINIATURE_CLIP = "ViT-H-14-miniature"
_MINIATURE_CLIP_CONFIG = dict(
    embed_dim=1024,
    vision_cfg=dict(image_size=32, layers=1, width=64, head_width=32, patch_size=16),
    text_cfg=dict(context_length=77, vocab_size=49408, width=1024, heads=16, layers=2),
)


def unet_config(miniature=False):
    """SD 2.1's U-Net config (shipped with mne-synapse), or its miniature."""
    from mne_synapse.models import load_unet_config

    config = load_unet_config("sd21")
    if miniature:
        config.update(block_out_channels=[32, 32, 64, 64], layers_per_block=1,
                      attention_head_dim=[2, 2, 4, 4], sample_size=8)
    return config


def write_sd21(folder, miniature=False, seed=0):
    """Write SD 2.1 (random weights) as a diffusers folder and return its path.

    The folder has ``unet/``, ``vae/`` and ``scheduler/``, as
    ``hf download stabilityai/stable-diffusion-2-1`` would give.
    """
    import torch
    from diffusers import (AutoencoderKL, DDIMScheduler, StableDiffusionPipeline,
                           UNet2DConditionModel)

    vae_config = dict(SD21_VAE_CONFIG)
    if miniature:
        vae_config.update(block_out_channels=[32] * 4, layers_per_block=1, sample_size=64)
    torch.manual_seed(seed)
    pipe = StableDiffusionPipeline(
        vae=AutoencoderKL(**vae_config), text_encoder=None, tokenizer=None,
        unet=UNet2DConditionModel.from_config(unet_config(miniature)),
        scheduler=DDIMScheduler(**SD21_SCHEDULER_CONFIG), safety_checker=None,
        feature_extractor=None, requires_safety_checker=False,
    )
    pipe.save_pretrained(folder)
    return Path(folder)


def write_clip_checkpoint(folder, miniature=False, device="cpu", seed=0):
    """Write OpenCLIP ViT-H-14 (random weights) to a local checkpoint file.

    Returns ``(model_name, path)`` for ``SynapseEncoder(clip_model=...,
    clip_pretrained=...)``, the path as a ``str`` (as a config file gives it). The weights are stored in half precision (half the
    file; OpenCLIP casts them on load). The model is built on ``device``
    (initialising a billion parameters is faster on a GPU).
    """
    import open_clip
    import torch
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    name = CLIP_MODEL
    if miniature:
        name = MINIATURE_CLIP
        config_file = folder / f"{name}.json"
        config_file.write_text(json.dumps(_MINIATURE_CLIP_CONFIG))
        open_clip.add_model_config(config_file)
    torch.manual_seed(seed)
    with torch.device(device):
        model = open_clip.create_model(name, pretrained=None, device=device)
    state = {k: v.detach().half().cpu().contiguous() for k, v in model.state_dict().items()}
    del model
    path = folder / "open_clip_model.safetensors"
    save_file(state, path)
    return name, str(path)


def register_miniature_clip(folder):
    """Make the miniature CLIP's architecture known to OpenCLIP in this process."""
    import open_clip

    open_clip.add_model_config(Path(folder) / f"{MINIATURE_CLIP}.json")


def eeg_data(n_epochs, n_images, seed=0):
    """Random EEG (n_epochs, 128, 440) in volts, one stimulus and caption per epoch."""
    rng = np.random.default_rng(seed)
    X = (rng.standard_normal((n_epochs, N_CHANS, N_TIMES)) * 1e-5).astype(np.float32)
    pictures = rng.integers(0, 256, (n_images, 64, 64, 3), dtype=np.uint8)
    which = np.arange(n_epochs) % n_images
    images = [pictures[k] for k in which]
    captions = [f"a photo of object number {k}" for k in which]
    return X, images, captions


def write_cvpr40(folder, n_images_per_class=2, n_repetitions=2, n_classes=2, seed=0):
    """A small data set in the CVPR40 format, as users download it (see ``load_cvpr40``).

    ``eeg_5_95_std.pth`` (128 electrodes x 500 samples per trial, 1 kHz),
    ``block_splits_by_image_all.pth`` (image-disjoint: the last image of each
    class is the test split) and JPEG stimuli under ``images/<wnid>/``.
    Returns the three paths as a dict (``fname``, ``splits_fname``, ``image_root``).
    """
    import torch
    from PIL import Image

    folder = Path(folder)
    rng = np.random.default_rng(seed)
    wnids = [f"n{1000000 + 7 * c:08d}" for c in range(n_classes)]
    names = [f"{wnid}_{100 + k}" for wnid in wnids for k in range(n_images_per_class)]
    dataset, splits = [], {"train": [], "val": [], "test": []}
    for image, name in enumerate(names):
        label, k = divmod(image, n_images_per_class)
        stim = folder / "images" / wnids[label] / f"{name}.JPEG"
        stim.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(stim)
        for _ in range(n_repetitions):
            splits["test" if k == n_images_per_class - 1 else "train"].append(len(dataset))
            dataset.append(dict(eeg=torch.randn(N_CHANS, 500), image=image, label=label,
                                subject=1 + len(dataset) % 2))
    paths = dict(fname=folder / "eeg_5_95_std.pth",
                 splits_fname=folder / "block_splits_by_image_all.pth",
                 image_root=folder / "images")
    torch.save(dict(dataset=dataset, labels=wnids, images=names), paths["fname"])
    torch.save(dict(splits=[splits]), paths["splits_fname"])
    return paths


def encoder_params(clip_model, clip_pretrained, **overrides):
    """``SynapseEncoder`` parameters of the paper's Stage 1 (AdamW 1e-4, batch 32)."""
    return dict(dict(preset="paper", clip_model=clip_model, clip_pretrained=clip_pretrained,
                     batch_size=32, lr=1e-4, max_epochs=1, random_state=0, verbose=False),
                **overrides)


def generator_params(base_model, miniature=False, **overrides):
    """``EEGImageGenerator`` parameters of the paper's Stage 2 at 512 px (the authors'
    unconditional context, ``[0, f_adapt(0)]``)."""
    return dict(dict(base_model=str(base_model), recipe="paper",
                     resolution=MINIATURE_RESOLUTION if miniature else RESOLUTION,
                     lr=2e-5, snr_gamma=0.5, unconditional_context="zero_latent", batch_size=1,
                     max_steps=1, guidance_scale=7.5, random_state=0, verbose=False),
                **overrides)


def bare_sampler(gen, X, dtype=None):
    """A bare diffusers pipeline with the fitted generator's U-Net, VAE and context.

    Returns ``run(steps)`` sampling one image per epoch of ``X`` (DDIM,
    guidance 7.5, the generator's image size, seed 0): ``generate()`` minus
    mne-synapse. ``dtype``: run U-Net and VAE as copies in that precision.
    """
    import copy

    import torch
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    unet, vae = gen.unet_, gen.vae_
    if dtype is not None:
        unet, vae = copy.deepcopy(unet).to(dtype), copy.deepcopy(vae).to(dtype)
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=None, tokenizer=None, unet=unet,
        scheduler=DDIMScheduler.from_config(gen.noise_scheduler_.config),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    device = next(unet.parameters()).device
    z = torch.as_tensor(gen.encoder_.latent(X), device=device)
    with torch.no_grad():
        context = torch.cat([z, gen.adapter_(z)], dim=1).to(unet.dtype)
        negative = torch.zeros_like(context)
        if gen.unconditional_context == "zero_latent":  # the authors' [0, f_adapt(0)]
            negative = torch.cat([z * 0, gen.adapter_(z * 0)], dim=1).to(unet.dtype)

    def run(steps):
        return pipe(prompt_embeds=context, negative_prompt_embeds=negative,
                    num_inference_steps=steps, guidance_scale=7.5, height=gen.image_size_,
                    width=gen.image_size_, generator=torch.Generator().manual_seed(0),
                    output_type="np").images
    return run


class PeakMemory:
    """Peak memory of a stretch of work, in GB.

    CUDA: ``torch.cuda.max_memory_allocated`` (and ``..._reserved``). CPU: the
    resident set's high-water mark (Linux ``VmHWM``, reset through
    ``/proc/self/clear_refs``).
    """

    def __init__(self, device):
        self.cuda = str(device).startswith("cuda")

    def reset(self):
        import torch

        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            return
        with open("/proc/self/clear_refs", "w") as fid:
            fid.write("5")

    def sync(self):
        if self.cuda:
            import torch

            torch.cuda.synchronize()

    def peak(self):
        """``(peak allocated, peak reserved)`` on CUDA; ``(peak resident, same)`` on CPU."""
        import torch

        if self.cuda:
            torch.cuda.synchronize()
            return (torch.cuda.max_memory_allocated() / 2**30,
                    torch.cuda.max_memory_reserved() / 2**30)
        with open("/proc/self/status") as fid:
            rss = int(re.search(r"VmHWM:\s+(\d+)", fid.read()).group(1)) / 2**20
        return rss, rss


class UNetStepClock:
    """Time the training steps of ``EEGImageGenerator.fit`` from the outside.

    A step starts with the U-Net's training forward pass (one per step when
    ``grad_accumulation=1``), so the times between those calls are the
    seconds per optimisation step, all included (forward, backward, clipping,
    AdamW, EMA). At the first call the peak memory so far (loading, VAE
    encoding of the stimuli) is kept as ``setup_peak`` and reset, so that
    ``memory.peak()`` after the fit is the peak of training alone.
    """

    def __init__(self, memory):
        self.memory = memory
        self.times, self.setup_peak, self._handle = [], None, None

    def __enter__(self):
        from torch.nn.modules.module import register_module_forward_pre_hook

        self._handle = register_module_forward_pre_hook(self._find_unet)
        return self

    def __exit__(self, *exc):
        self._handle.remove()

    def _find_unet(self, module, args):
        if type(module).__name__ == "UNet2DConditionModel" and self._training(module):
            # Hook this U-Net only: a global hook would slow every module call.
            self._handle.remove()
            self._handle = module.register_forward_pre_hook(self._tick)
            self._tick(module, args)

    @staticmethod
    def _training(module):
        import torch

        return module.training and torch.is_grad_enabled()

    def _tick(self, module, args):
        if not self._training(module):
            return
        self.memory.sync()
        if not self.times:
            self.setup_peak = self.memory.peak()
            self.memory.reset()
        self.times.append(time.perf_counter())

    def seconds_per_step(self, n_warmup):
        """Median time of the steps after ``n_warmup`` (the last step is not timed)."""
        steps = np.diff(self.times)[n_warmup:]
        return float(np.median(steps)) if len(steps) else float("nan")


def stage1_clock(memory):
    """A skorch callback timing Stage-1 batches and the peak memory of training alone.

    Its ``times`` are the ends of the training batches (after
    ``on_train_begin``, which resets the peak memory: the CLIP targets are
    computed before).
    """
    from skorch.callbacks import Callback

    class Stage1Clock(Callback):
        def initialize(self):
            self.times = getattr(self, "times", [])
            return self

        def on_train_begin(self, net, **kwargs):
            memory.sync()
            self.setup_peak = memory.peak()
            memory.reset()
            self.times.append(time.perf_counter())

        def on_batch_end(self, net, batch=None, training=None, **kwargs):
            if training:
                memory.sync()
                self.times.append(time.perf_counter())

        def seconds_per_step(self, n_warmup):
            steps = np.diff(self.times)[n_warmup:]
            return float(np.median(steps)) if len(steps) else float("nan")

    return Stage1Clock()
