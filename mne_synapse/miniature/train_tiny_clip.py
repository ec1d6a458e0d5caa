"""The program that trains the miniature world's CLIP and writes its weights.

``python -m mne_synapse.miniature.train_tiny_clip`` trains the tiny CLIP of
:mod:`mne_synapse.miniature.tiny_clip` contrastively on freshly drawn stimuli
and their captions (a few minutes on a CPU) and writes ``tiny_clip.safetensors``
(into ``mne_synapse/miniature/weights/`` by default; ``--output`` names another
folder, as for :mod:`~mne_synapse.miniature.train_tiny_sd`).
"""

from pathlib import Path

import numpy as np

from .tiny_clip import SHIPPED_WEIGHTS, build_tiny_clip, save_tiny_clip


def train_tiny_clip(n_images=20000, n_steps=1500, batch_size=128, lr=2e-3,
                    image_size=32, seed=0, verbose=True):
    """Train the tiny CLIP on procedurally drawn stimuli of all 100 classes.

    Every image is drawn fresh from the synthetic world (all shape x colour
    pairs, random texture, position, size, rotation, background) with its
    caption; the loss is OpenCLIP's symmetric contrastive loss.
    """
    import torch
    import torch.nn.functional as F
    from open_clip.transform import image_transform

    from ..datasets import _drawing

    rng = np.random.default_rng(seed)
    n_classes = len(_drawing.SHAPES) * len(_drawing.COLOURS)
    params = [_drawing.sample_image_params(k, n_classes, rng)
              for k in rng.integers(0, n_classes, n_images)]
    images = np.stack([_drawing.draw_image(p, image_size) for p in params])
    captions = [_drawing.caption(p) for p in params]
    model, tokenizer = build_tiny_clip(seed=seed)
    preprocess = image_transform(image_size, is_train=False)
    mean = torch.tensor(preprocess.transforms[-1].mean).view(1, 3, 1, 1)
    std = torch.tensor(preprocess.transforms[-1].std).view(1, 3, 1, 1)
    pixels = (torch.as_tensor(images).permute(0, 3, 1, 2).float() / 255 - mean) / std
    tokens = tokenizer(captions)

    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.1)
    warmup = max(1, n_steps // 20)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup)
                                                  * 0.5 * (1 + np.cos(np.pi * s / n_steps)))
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for step in range(n_steps):
        idx = torch.randint(0, n_images, (batch_size,), generator=generator)
        image_features, text_features, logit_scale = model(pixels[idx], tokens[idx])
        logits = logit_scale * image_features @ text_features.T
        # Identical captions are both positives (soft targets), not negatives.
        same = (tokens[idx][:, None] == tokens[idx][None]).all(-1).float()
        target = same / same.sum(1, keepdim=True)
        loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        if verbose and (step % 200 == 0 or step == n_steps - 1):
            print(f"step {step:5d}  loss {loss.item():.3f}", flush=True)
    return model.eval(), tokenizer


def main(argv=None):
    """Train the tiny CLIP and write its file (the command line program)."""
    import argparse

    parser = argparse.ArgumentParser(description="Train the tiny CLIP and write its weights.")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--n-images", type=int, default=20000)
    parser.add_argument("--output", default=str(SHIPPED_WEIGHTS.parent),
                        help=f"folder for {SHIPPED_WEIGHTS.name}")
    args = parser.parse_args(argv)
    if Path(args.output).suffix == ".safetensors":  # the file name of older versions
        parser.error(f"--output is a folder ({SHIPPED_WEIGHTS.name} is written into it), "
                     f"got {args.output!r}")
    model, tokenizer = train_tiny_clip(n_images=args.n_images, n_steps=args.steps)
    print("saved", save_tiny_clip(model, tokenizer, Path(args.output) / SHIPPED_WEIGHTS.name))


if __name__ == "__main__":
    main()
