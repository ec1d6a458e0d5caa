"""The miniature world's CLIP: a 0.3 M-parameter OpenCLIP for 32 px stimuli.

Real CLIP weights cannot be downloaded everywhere (CI, laptops offline), so the
synthetic data set brings its own CLIP, trained contrastively on procedurally
drawn stimuli and their captions by :func:`train_tiny_clip` (a few minutes on
a CPU) and shipped with the package (``mne_synapse/data/tiny_clip.safetensors``).
It is an ``open_clip.model.CLIP`` like ViT-H-14, only small, with a vocabulary
cut down to the words of the synthetic captions (other words map to one
unknown token).
"""

import json
from pathlib import Path

import numpy as np

SHIPPED_WEIGHTS = Path(__file__).parent / "data" / "tiny_clip.safetensors"
CONTEXT_LENGTH = 24
WIDTH = 64
_EXTRA_WORDS = (
    "a photo of the an image with at on large small top bottom left right centre "
    "dark grey background stripes dots checks plain picture drawing shape"
)


def synthetic_vocabulary():
    """Sorted BPE token ids of every word the synthetic captions use."""
    from open_clip.tokenizer import SimpleTokenizer

    from .datasets._drawing import COLOURS, SHAPES

    tokenizer = SimpleTokenizer(context_length=CONTEXT_LENGTH)
    words = " ".join([*SHAPES, *(c for c, _ in COLOURS), _EXTRA_WORDS])
    ids = set(tokenizer.encode(words)) | {tokenizer.sot_token_id, tokenizer.eot_token_id}
    return np.array(sorted(ids), dtype=np.int64)


class CompactTokenizer:
    """open_clip's tokenizer, with ids remapped to a small vocabulary.

    Index 0 is padding and 1 the unknown token; the end-of-text token keeps
    the largest index, which is how OpenCLIP finds it when pooling text.
    """

    def __init__(self, vocabulary):
        from open_clip.tokenizer import SimpleTokenizer

        self.vocabulary = np.asarray(vocabulary, dtype=np.int64)
        self._tokenizer = SimpleTokenizer(context_length=CONTEXT_LENGTH)

    @property
    def vocab_size(self):
        return len(self.vocabulary) + 2

    def __call__(self, texts):
        import torch

        ids = self._tokenizer(texts).numpy()
        pos = np.clip(np.searchsorted(self.vocabulary, ids), 0, len(self.vocabulary) - 1)
        known = self.vocabulary[pos] == ids
        compact = np.where(known, pos + 2, 1)
        compact[ids == 0] = 0
        return torch.as_tensor(compact)


def tiny_clip_config(vocab_size):
    """Keyword arguments of ``open_clip.model.CLIP`` for the tiny model."""
    return dict(
        embed_dim=WIDTH,
        vision_cfg=dict(image_size=32, layers=3, width=WIDTH, head_width=32, patch_size=8),
        text_cfg=dict(context_length=CONTEXT_LENGTH, vocab_size=vocab_size, width=WIDTH,
                      heads=2, layers=2),
    )


def build_tiny_clip(weights=None, seed=0):
    """Return ``(model, tokenizer)``: random (seeded) or loaded from ``weights``.

    Parameters
    ----------
    weights : path-like | ``'synthetic'`` | None
        A file written by :func:`save_tiny_clip`, ``'synthetic'`` for the
        weights shipped with the package, or None for random weights.
    seed : int
        Seed of the random initialisation.
    """
    import open_clip
    import torch

    state = None
    vocabulary = synthetic_vocabulary()
    if weights is not None:
        from safetensors import safe_open
        from safetensors.torch import load_file

        path = SHIPPED_WEIGHTS if str(weights) == "synthetic" else Path(weights)
        if not path.is_file():
            raise FileNotFoundError(
                f"Tiny CLIP weights {str(path)!r} not found. Make them with "
                "`python -m mne_synapse.tiny_clip` (a few minutes on a CPU)."
            )
        state = load_file(path)
        vocabulary = state.pop("vocabulary").numpy()
        with safe_open(path, "pt") as fid:
            meta = json.loads(fid.metadata()["config"])
    tokenizer = CompactTokenizer(vocabulary)
    config = tiny_clip_config(tokenizer.vocab_size)
    if state is not None and meta != json.loads(json.dumps(config)):
        raise ValueError(f"{path} holds a tiny CLIP of another architecture: {meta}.")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = open_clip.model.CLIP(**config)
    if state is not None:
        model.load_state_dict({k: v.float() for k, v in state.items()})
    return model, tokenizer


def save_tiny_clip(model, tokenizer, path):
    """Save weights (float16) and vocabulary to one safetensors file."""
    import torch
    from safetensors.torch import save

    from .utils import atomic_write

    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    state["vocabulary"] = torch.as_tensor(tokenizer.vocabulary)
    meta = {"config": json.dumps(tiny_clip_config(tokenizer.vocab_size))}
    atomic_write(path, lambda fid: fid.write(save(state, metadata=meta)))
    return Path(path)


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

    from .datasets import _drawing

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


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Train the tiny CLIP and write its weights.")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--output", default=str(SHIPPED_WEIGHTS))
    args = parser.parse_args()
    model, tokenizer = train_tiny_clip(n_steps=args.steps)
    print("saved", save_tiny_clip(model, tokenizer, args.output))
