"""The miniature world's Stable Diffusion: a 5 M-parameter latent diffusion model.

Stable Diffusion 2.1 cannot be downloaded everywhere (CI, laptops offline), so
the synthetic data set brings its own "SD", pretrained on procedurally drawn
stimuli and their captions and shipped with the package
(``mne_synapse/miniature/weights/tiny_vae.safetensors`` and ``tiny_unet.safetensors``):

- a diffusers ``AutoencoderKL`` mapping 32 x 32 x 3 images to 8 x 8 x 4
  latents (its ``scaling_factor`` is 1 / std of the latents, as in SD);
- a diffusers ``UNet2DConditionModel`` on those latents, with cross-attention
  (``attn2``) at both levels and in the middle block, reading the tiny CLIP's
  caption token states (24 x 64, penultimate layer + ``ln_final``, like SD 2.x
  reads OpenCLIP ViT-H-14's 77 x 1024);
- SD 2.1's noise schedule (scaled-linear betas, 1000 steps) and its
  ``v_prediction`` objective, with condition dropout (zeros) so that
  classifier-free guidance with a zero context works.

The parts are used exactly like SD's, e.g. in a diffusers
``StableDiffusionPipeline`` without text encoder, called with
``prompt_embeds=`` (see :func:`build_tiny_sd_pipeline`). The program that
makes the files is :mod:`mne_synapse.miniature.train_tiny_sd`.
"""

import json
from pathlib import Path

WEIGHTS = Path(__file__).parent / "weights"
SHIPPED_VAE = WEIGHTS / "tiny_vae.safetensors"
SHIPPED_UNET = WEIGHTS / "tiny_unet.safetensors"
IMAGE_SIZE = 32
CONTEXT_DIM = 64  # width of the tiny CLIP's token states
_MAKE_HINT = "`python -m mne_synapse.miniature.train_tiny_sd` (about half an hour on a CPU)"


def tiny_vae_config():
    """Keyword arguments of diffusers' ``AutoencoderKL``: 32 x 32 x 3 -> 8 x 8 x 4."""
    return dict(
        in_channels=3, out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(32, 32, 64), layers_per_block=1, latent_channels=4,
        norm_num_groups=16, sample_size=IMAGE_SIZE,
    )


def tiny_unet_config():
    """Keyword arguments of diffusers' ``UNet2DConditionModel`` on 8 x 8 x 4 latents."""
    return dict(
        sample_size=IMAGE_SIZE // 4, in_channels=4, out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(64, 128), layers_per_block=1,
        cross_attention_dim=CONTEXT_DIM, attention_head_dim=8, norm_num_groups=32,
    )


def tiny_scheduler_config():
    """Noise schedule and objective: those of SD 2.1 (for DDPM/DDIM schedulers)."""
    return dict(
        num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
        beta_schedule="scaled_linear", prediction_type="v_prediction",
        clip_sample=False, set_alpha_to_one=False, steps_offset=1,
    )


def _jsonable(config):
    return json.loads(json.dumps(dict(config)))


def _architecture(config):
    """A diffusers config without bookkeeping keys and the VAE's latent statistics."""
    skip = {"scaling_factor", "shift_factor", "latents_mean", "latents_std"}
    return {k: v for k, v in _jsonable(config).items() if not k.startswith("_") and k not in skip}


def _load(path, which, expected):
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"Tiny SD {which} weights {str(path)!r} not found. Make them with {_MAKE_HINT}."
        )
    with safe_open(path, "pt") as fid:
        meta = fid.metadata() or {}
    if "config" not in meta:
        raise ValueError(f"{path} holds no diffusers config: not a tiny SD {which} file.")
    config = json.loads(meta["config"])
    defaults = _architecture(expected)
    if {k: config.get(k) for k in defaults} != defaults:
        raise ValueError(f"{path} holds a tiny SD {which} of another architecture: {config}.")
    return load_file(path), config, meta


def build_tiny_sd(weights=None, seed=0):
    """Return ``(vae, unet, scheduler)`` of the miniature world's Stable Diffusion.

    Parameters
    ----------
    weights : ``'synthetic'`` | path-like | tuple | None
        ``'synthetic'`` for the files shipped with the package, a folder
        holding ``tiny_vae.safetensors`` and ``tiny_unet.safetensors``, a
        ``(vae_file, unet_file)`` pair, or None for random weights (seeded).
    seed : int
        Seed of the random initialisation (``weights=None``).

    Returns
    -------
    vae : diffusers.AutoencoderKL
        In eval mode, float32; ``vae.config.scaling_factor`` is set.
    unet : diffusers.UNet2DConditionModel
        In eval mode, float32.
    scheduler : diffusers.DDIMScheduler
        For sampling; the training schedule is :func:`tiny_scheduler_config`
        with a ``DDPMScheduler``.
    """
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel

    if weights is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            vae = AutoencoderKL(**tiny_vae_config())
            unet = UNet2DConditionModel(**tiny_unet_config())
        return vae.eval(), unet.eval(), DDIMScheduler(**tiny_scheduler_config())
    if isinstance(weights, (tuple, list)):
        vae_path, unet_path = weights
    elif str(weights) == "synthetic":
        vae_path, unet_path = SHIPPED_VAE, SHIPPED_UNET
    else:
        folder = Path(weights)
        vae_path, unet_path = folder / SHIPPED_VAE.name, folder / SHIPPED_UNET.name
    vae = load_tiny_vae(vae_path)
    unet_state, unet_config, meta = _load(unet_path, "UNet", tiny_unet_config())
    unet = UNet2DConditionModel.from_config(unet_config)
    unet.load_state_dict({k: v.float() for k, v in unet_state.items()})
    scheduler_config = json.loads(meta.get("scheduler", json.dumps(tiny_scheduler_config())))
    return vae, unet.eval(), DDIMScheduler(**scheduler_config)


def load_tiny_vae(path):
    """The tiny VAE of a file written by :func:`save_tiny_vae`, in eval mode."""
    from diffusers import AutoencoderKL

    state, config, _ = _load(path, "VAE", tiny_vae_config())
    vae = AutoencoderKL.from_config(config)
    vae.load_state_dict({k: v.float() for k, v in state.items()})
    return vae.eval()


def build_tiny_sd_pipeline(vae, unet, scheduler=None):
    """A diffusers ``StableDiffusionPipeline`` without text encoder or safety checker.

    Call it with ``prompt_embeds=`` (caption token states, (n, 24, 64)),
    ``negative_prompt_embeds=`` (zeros: the unconditional context of
    training), ``height=32, width=32``.
    """
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    if scheduler is None:
        scheduler = DDIMScheduler(**tiny_scheduler_config())
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=None, tokenizer=None, unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _save(model, path, extra_meta=None):
    import torch
    from safetensors.torch import save

    from ..utils import atomic_write

    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    meta = {"config": json.dumps({k: v for k, v in _jsonable(model.config).items()
                                  if not k.startswith("_")})}
    meta.update(extra_meta or {})
    atomic_write(path, lambda fid: fid.write(save(state, metadata=meta)))
    return Path(path)


def save_tiny_vae(vae, path=SHIPPED_VAE):
    """Save the VAE's weights (float16) with its diffusers config as metadata."""
    return _save(vae, path)


def save_tiny_unet(unet, path=SHIPPED_UNET):
    """Save the UNet's weights (float16), its config and the scheduler config."""
    return _save(unet, path, {"scheduler": json.dumps(tiny_scheduler_config())})
