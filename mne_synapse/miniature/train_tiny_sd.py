"""The program that trains the miniature world's Stable Diffusion and writes its weights.

``python -m mne_synapse.miniature.train_tiny_sd`` draws 20,000 fresh stimuli of
the synthetic world, trains the tiny VAE, then the tiny UNet by latent
diffusion conditioned on the tiny CLIP's caption token states, and writes
``tiny_vae.safetensors`` and ``tiny_unet.safetensors`` (into
``mne_synapse/miniature/weights/`` by default; about half an hour on a laptop CPU).
The models themselves are in :mod:`mne_synapse.miniature.tiny_sd`.
"""

import time
from pathlib import Path

import numpy as np

from .tiny_sd import (
    IMAGE_SIZE,
    SHIPPED_UNET,
    SHIPPED_VAE,
    WEIGHTS,
    build_tiny_sd,
    build_tiny_sd_pipeline,
    load_tiny_vae,
    save_tiny_unet,
    save_tiny_vae,
    tiny_scheduler_config,
)


def draw_stimuli(n_images, seed=0, image_size=IMAGE_SIZE):
    """Fresh stimuli of all 100 classes of the synthetic world.

    Returns ``(images, captions, labels)``: uint8 (n, size, size, 3), the
    captions and the class indices.
    """
    from ..datasets import _drawing

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
    from ..clip import CLIPEmbedder

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

    from ..clip import CLIPEmbedder
    from ..datasets._drawing import class_table

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

    from ..datasets._drawing import class_table, draw_image, sample_image_params

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


def main(argv=None):
    """Train both models and write their files (the command line program)."""
    import argparse

    parser = argparse.ArgumentParser(description="Train the tiny Stable Diffusion and write its weights.")
    parser.add_argument("--vae-steps", type=int, default=2500)
    parser.add_argument("--unet-steps", type=int, default=4000)
    parser.add_argument("--vae", default=None,
                        help="a trained tiny VAE file to use instead of training one")
    parser.add_argument("--n-images", type=int, default=20000)
    parser.add_argument("--output", default=str(WEIGHTS), help="folder for the two files")
    parser.add_argument("--grid", default=None, help="also save a PNG grid of real/generated images")
    parser.add_argument("--no-eval", action="store_true",
                        help="skip the check at the end (class accuracy of 100 reconstructed "
                             "and 100 generated images)")
    args = parser.parse_args(argv)
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
    if not args.no_eval:
        _evaluate(*build_tiny_sd(args.output), grid=args.grid)


if __name__ == "__main__":
    main()
