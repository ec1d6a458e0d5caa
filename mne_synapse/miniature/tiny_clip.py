"""The miniature world's CLIP: a 0.3 M-parameter OpenCLIP for 32 px stimuli.

Real CLIP weights cannot be downloaded everywhere (CI, laptops offline), so the
synthetic data set brings its own CLIP, trained contrastively on procedurally
drawn stimuli and their captions (a few minutes on
a CPU, see :mod:`mne_synapse.miniature.train_tiny_clip`) and shipped with the
package (``mne_synapse/miniature/weights/tiny_clip.safetensors``).
It is an ``open_clip.model.CLIP`` like ViT-H-14, only small, with a vocabulary
cut down to the words of the synthetic captions (other words map to one
unknown token).
"""

import json
from pathlib import Path

import numpy as np

SHIPPED_WEIGHTS = Path(__file__).parent / "weights" / "tiny_clip.safetensors"
CONTEXT_LENGTH = 24
WIDTH = 64
_EXTRA_WORDS = (
    "a photo of the an image with at on large small top bottom left right centre "
    "dark grey background stripes dots checks plain picture drawing shape"
)


def synthetic_vocabulary():
    """Sorted BPE token ids of every word the synthetic captions use."""
    from open_clip.tokenizer import SimpleTokenizer

    from ..datasets._drawing import COLOURS, SHAPES

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
                "`python -m mne_synapse.miniature.train_tiny_clip` (a few minutes on a CPU)."
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

    from ..utils import atomic_write

    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    state["vocabulary"] = torch.as_tensor(tokenizer.vocabulary)
    meta = {"config": json.dumps(tiny_clip_config(tokenizer.vocab_size))}
    atomic_write(path, lambda fid: fid.write(save(state, metadata=meta)))
    return Path(path)
