"""The miniature world's Stable Diffusion: a 5 M-parameter latent diffusion model.

Stable Diffusion 2.1 cannot be downloaded everywhere (CI, laptops offline), so
the synthetic data set brings its own "SD", pretrained on procedurally drawn
stimuli and their captions and shipped with the package
(``mne_synapse/data/tiny_vae.safetensors`` and ``tiny_unet.safetensors``):

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
``prompt_embeds=`` (see :func:`build_tiny_sd_pipeline`). Make the files with
``python -m mne_synapse.tiny_sd`` (about half an hour on a laptop CPU).
"""

import json
import time
from pathlib import Path

import numpy as np

_DATA = Path(__file__).parent / "data"
SHIPPED_VAE = _DATA / "tiny_vae.safetensors"
SHIPPED_UNET = _DATA / "tiny_unet.safetensors"
IMAGE_SIZE = 32
CONTEXT_DIM = 64  # width of the tiny CLIP's token states
_MAKE_HINT = "`python -m mne_synapse.tiny_sd` (about half an hour on a CPU)"


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

    from .utils import atomic_write

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


def draw_stimuli(n_images, seed=0, image_size=IMAGE_SIZE):
    """Fresh stimuli of all 100 classes of the synthetic world.

    Returns ``(images, captions, labels)``: uint8 (n, size, size, 3), the
    captions and the class indices.
    """
    from .datasets import _drawing

    rng = np.random.default_rng(seed)
    n_classes = len(_drawing.SHAPES) * len(_drawing.COLOURS)
    labels = rng.integers(0, n_classes, n_images)
    params = [_drawing.sample_image_params(k, n_classes, rng) for k in labels]
    images = np.stack([_drawing.draw_image(p, image_size) for p in params])
    return images, [_drawing.caption(p) for p in params], labels


def to_pixels(images):
    """uint8 (n, H, W, 3) images -> float tensor (n, 3, H, W) in [-1, 1], as SD's VAE takes."""
    import torch

    return torch.as_tensor(np.asarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1


def to_images(pixels):
    """Inverse of :func:`to_pixels` (values clipped)."""
    import torch

    x = ((pixels.detach().float().clamp(-1, 1) + 1) * 127.5).round()
    return x.permute(0, 2, 3, 1).to(torch.uint8).numpy()


def _lr_lambda(n_steps, warmup):
    return lambda s: min(1.0, (s + 1) / warmup) * (0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * s / n_steps)))


def train_tiny_vae(n_images=20000, n_steps=2500, batch_size=32, lr=1e-3, kl_weight=1e-6,
                   images=None, seed=0, verbose=True):
    """Train the tiny VAE on drawn stimuli of all 100 classes.

    Loss: L1 + MSE reconstruction (per pixel, images in [-1, 1]) plus
    ``kl_weight`` times the KL divergence summed over latent elements (a
    small KL, as in SD, keeps the latents near-Gaussian in scale). At the
    end ``scaling_factor`` (1 / std of sampled latents) is written into the
    config, as SD does.

    Parameters
    ----------
    images : uint8 array (n, 32, 32, 3) | None
        A pool of stimuli; drawn with :func:`draw_stimuli` if None.
    """
    import torch
    import torch.nn.functional as F

    if images is None:
        images = draw_stimuli(n_images, seed)[0]
    pixels = to_pixels(images)
    vae, _, _ = build_tiny_sd(None, seed=seed)
    vae.train()
    optimizer = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _lr_lambda(n_steps, max(1, n_steps // 20)))
    generator = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    for step in range(n_steps):
        x = pixels[torch.randint(0, len(pixels), (batch_size,), generator=generator)]
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.sample(generator=generator)).sample
        rec = F.l1_loss(recon, x) + F.mse_loss(recon, x)
        kl = posterior.kl().mean()
        loss = rec + kl_weight * kl
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        if verbose and (step % 50 == 0 or step == n_steps - 1):
            print(f"vae step {step:5d}  rec {rec.item():.4f}  kl {kl.item():.1f}  "
                  f"{(time.perf_counter() - start) / (step + 1):.2f} s/step", flush=True)
    vae.eval()
    mean, std = encode_latents(vae, pixels[:4096])
    latents = mean + std * torch.randn(mean.shape, generator=generator)
    vae.register_to_config(scaling_factor=float(1 / latents.std()))
    if verbose:
        print(f"vae scaling_factor {vae.config.scaling_factor:.4f}", flush=True)
    return vae


def encode_latents(vae, pixels, batch_size=512):
    """Mean and std of the VAE posterior (unscaled), in batches, without gradients."""
    import torch

    means, stds = [], []
    with torch.no_grad():
        for i in range(0, len(pixels), batch_size):
            dist = vae.encode(pixels[i:i + batch_size]).latent_dist
            means.append(dist.mean)
            stds.append(dist.std)
    return torch.cat(means), torch.cat(stds)


def caption_states(captions):
    """The tiny CLIP's caption token states (n, 24, 64): what conditions the UNet."""
    from .clip import CLIPEmbedder

    return CLIPEmbedder("tiny", "synthetic", batch_size=512).embed_caption_tokens(captions)


def train_tiny_unet(vae, n_images=20000, n_steps=4000, batch_size=64, lr=1e-3,
                    p_uncond=0.1, snr_gamma=5.0, images=None, captions=None,
                    seed=0, verbose=True):
    """Train the tiny UNet by latent diffusion (v-prediction, SD 2.1 schedule).

    VAE latents (posterior mean and std) and caption token states are
    precomputed for a pool of stimuli; each step samples latents from the
    posterior, scales them by ``vae.config.scaling_factor``, noises them at
    uniform random timesteps of a ``DDPMScheduler`` and regresses the
    velocity. The context is replaced by zeros with probability
    ``p_uncond`` (for classifier-free guidance). Loss weights: min-SNR
    (``min(snr, gamma) / (snr + 1)``, Hang et al. 2023) when ``snr_gamma`` is
    set, which speeds up training. AdamW, linear warm-up, cosine decay, grad
    clip 1.0.
    """
    import torch
    import torch.nn.functional as F
    from diffusers import DDPMScheduler

    if images is None:
        images, captions, _ = draw_stimuli(n_images, seed + 1)
    start = time.perf_counter()
    mean, std = encode_latents(vae.eval(), to_pixels(images))
    context = torch.as_tensor(caption_states(captions)).float()
    scale = vae.config.scaling_factor
    if verbose:
        print(f"precomputed {len(mean)} latents and caption states in "
              f"{time.perf_counter() - start:.0f} s", flush=True)
    _, unet, _ = build_tiny_sd(None, seed=seed)
    config = tiny_scheduler_config()
    noise_scheduler = DDPMScheduler(**{k: v for k, v in config.items() if k != "set_alpha_to_one"})
    alphas_cumprod = noise_scheduler.alphas_cumprod
    unet.train()
    optimizer = torch.optim.AdamW(unet.parameters(), lr=lr, weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _lr_lambda(n_steps, max(1, n_steps // 20)))
    generator = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    for step in range(n_steps):
        idx = torch.randint(0, len(mean), (batch_size,), generator=generator)
        latents = (mean[idx] + std[idx] * torch.randn(mean[idx].shape, generator=generator)) * scale
        noise = torch.randn(latents.shape, generator=generator)
        t = torch.randint(0, config["num_train_timesteps"], (batch_size,), generator=generator)
        noisy = noise_scheduler.add_noise(latents, noise, t)
        target = noise_scheduler.get_velocity(latents, noise, t)
        keep = (torch.rand(batch_size, generator=generator) >= p_uncond).float()
        ctx = context[idx] * keep[:, None, None]
        pred = unet(noisy, t, encoder_hidden_states=ctx).sample
        mse = F.mse_loss(pred, target, reduction="none").mean(dim=(1, 2, 3))
        if snr_gamma:
            snr = alphas_cumprod[t] / (1 - alphas_cumprod[t])
            loss = (mse * snr.clamp(max=snr_gamma) / (snr + 1)).mean()
        else:
            loss = mse.mean()
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        if verbose and (step % 50 == 0 or step == n_steps - 1):
            print(f"unet step {step:5d}  loss {loss.item():.4f}  v-mse {mse.mean().item():.4f}  "
                  f"{(time.perf_counter() - start) / (step + 1):.2f} s/step", flush=True)
    return unet.eval()


def class_accuracy(images, labels, n_classes=10):
    """Zero-shot class accuracy of images by the shipped tiny CLIP.

    Prompts are caption-style, ``"a {colour} {shape} at the centre on a dark
    background"``, for the first ``n_classes`` classes of the world.
    """
    import torch

    from .clip import CLIPEmbedder
    from .datasets._drawing import class_table

    clip = CLIPEmbedder("tiny", "synthetic")
    prompts = [f"a {colour} {shape} at the centre on a dark background"
               for shape, colour, _ in class_table(n_classes)]
    image_emb = clip.embed_images(list(images))
    with torch.no_grad():
        text_emb = clip.model.encode_text(clip._tokenizer(prompts), normalize=True).numpy()
    return float(np.mean((image_emb @ text_emb.T).argmax(1) == np.asarray(labels)))


def _evaluate(vae, unet, scheduler, n_per_class=10, steps=25, guidance=5.0, grid=None, seed=0):
    """Print class accuracies of VAE reconstructions and generated images."""
    import torch

    from .datasets._drawing import class_table, draw_image, sample_image_params

    rng = np.random.default_rng(seed + 1000)
    table = class_table(10)
    labels = np.repeat(np.arange(10), n_per_class)
    real = np.stack([draw_image(sample_image_params(k, 10, rng)) for k in labels])
    with torch.no_grad():
        x = to_pixels(real)
        recon = to_images(vae.decode(vae.encode(x).latent_dist.mean).sample)
    mse = float(np.mean((recon / 255.0 - real / 255.0) ** 2))
    prompts = [f"a {colour} {shape} at the centre on a dark background"
               for shape, colour, _ in table]
    embeds = torch.as_tensor(caption_states(prompts)).float()[labels]
    pipe = build_tiny_sd_pipeline(vae, unet, scheduler)
    start = time.perf_counter()
    out = pipe(prompt_embeds=embeds, negative_prompt_embeds=torch.zeros_like(embeds),
               height=IMAGE_SIZE, width=IMAGE_SIZE, num_inference_steps=steps,
               guidance_scale=guidance, output_type="np",
               generator=torch.Generator().manual_seed(seed)).images
    generated = np.round(out * 255).astype(np.uint8)
    print(f"generated {len(generated)} images in {time.perf_counter() - start:.1f} s", flush=True)
    print(f"VAE reconstruction: MSE {mse:.5f} (PSNR {10 * np.log10(1 / mse):.1f} dB), "
          f"class accuracy {class_accuracy(recon, labels):.2f} (real {class_accuracy(real, labels):.2f})")
    print(f"generated ({steps} DDIM steps, guidance {guidance}): "
          f"class accuracy {class_accuracy(generated, labels):.2f} (chance 0.10)", flush=True)
    if grid is not None:
        from PIL import Image

        rows = []
        for k in range(10):
            sel = labels == k
            rows.append(np.concatenate([*real[sel][:4], *recon[sel][:4], *generated[sel][:6]], 1))
        Image.fromarray(np.concatenate(rows, 0)).resize((14 * 64, 10 * 64), Image.NEAREST).save(grid)
        print("grid (4 real | 4 reconstructed | 6 generated per class row):", grid)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Train the tiny Stable Diffusion and write its weights.")
    parser.add_argument("--vae-steps", type=int, default=2500)
    parser.add_argument("--unet-steps", type=int, default=4000)
    parser.add_argument("--vae", default=None,
                        help="a trained tiny VAE file to use instead of training one")
    parser.add_argument("--n-images", type=int, default=20000)
    parser.add_argument("--output", default=str(_DATA), help="folder for the two files")
    parser.add_argument("--grid", default=None, help="also save a PNG grid of real/generated images")
    args = parser.parse_args()
    t0 = time.perf_counter()
    images, captions, _ = draw_stimuli(args.n_images, seed=0)
    print(f"drew {len(images)} stimuli in {time.perf_counter() - t0:.0f} s", flush=True)
    t1 = time.perf_counter()
    if args.vae is None:
        vae = train_tiny_vae(n_steps=args.vae_steps, images=images)
        print(f"VAE trained in {time.perf_counter() - t1:.0f} s; saved",
              save_tiny_vae(vae, Path(args.output) / SHIPPED_VAE.name), flush=True)
    else:
        vae = load_tiny_vae(args.vae)
        if Path(args.vae).resolve() != (Path(args.output) / SHIPPED_VAE.name).resolve():
            save_tiny_vae(vae, Path(args.output) / SHIPPED_VAE.name)
    t1 = time.perf_counter()
    unet = train_tiny_unet(vae, n_steps=args.unet_steps, images=images, captions=captions)
    print(f"UNet trained in {time.perf_counter() - t1:.0f} s; saved",
          save_tiny_unet(unet, Path(args.output) / SHIPPED_UNET.name), flush=True)
    print(f"total {time.perf_counter() - t0:.0f} s", flush=True)
    _evaluate(*build_tiny_sd(args.output), grid=args.grid)
