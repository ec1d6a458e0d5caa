"""CLIP targets of Stage 1: image embeddings and caption token states.

SYNAPSE aligns the EEG latent to OpenCLIP ViT-H-14 (``laion2b_s32b_b79k``),
the text encoder of Stable Diffusion 2.x: ``Z_latent`` is pulled towards the
caption's *token states* (77 x 1024, what SD 2.x's cross-attention reads) and
its token mean towards the *image* embedding (1024). Embeddings are computed
once per (model, image) and cached in memory and, optionally, on disk, so
cross-validation does not re-encode the stimuli for every fold.
"""

import hashlib
from pathlib import Path

import numpy as np

from .utils import atomic_write, quiet_libraries

_HUB_HINT = {
    ("ViT-H-14", "laion2b_s32b_b79k"): "https://huggingface.co/laion/CLIP-ViT-H-14-laion2B-s32B-b79K",
}
# Process-wide memory cache: {(model key, kind, content hash): array}.
_MEMORY_CACHE = {}
# The weights each CLIP model gets when an estimator says clip_pretrained='auto'.
DEFAULT_PRETRAINED = {"tiny": "synthetic", "ViT-H-14": "laion2b_s32b_b79k"}


def _content_hash(array):
    array = np.ascontiguousarray(array)
    digest = hashlib.sha1(str((array.shape, array.dtype.str)).encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


def read_image(image):
    """Return an image as an (H, W, 3) uint8 array from an array or a file path.

    Raises a ``FileNotFoundError`` or ``ValueError`` that names the image when
    it is missing or unreadable.
    """
    if isinstance(image, (str, Path)):
        from PIL import Image, UnidentifiedImageError

        path = Path(image)
        if not path.is_file():
            raise FileNotFoundError(
                f"Stimulus image {str(path)!r} does not exist. Check the "
                "'image_path' column of epochs.metadata (or the images you passed)."
            )
        try:
            with Image.open(path) as img:
                return np.asarray(img.convert("RGB"))
        except (UnidentifiedImageError, OSError) as err:
            raise ValueError(
                f"Stimulus image {str(path)!r} is unreadable ({err}); replace it with a "
                "valid image file (PNG, JPEG, ...) or drop its epochs."
            ) from err
    array = np.asarray(image)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=-1)
    if array.ndim != 3 or array.shape[-1] not in (3, 4):
        raise ValueError(
            f"An image must be (height, width, 3) or a file path, got shape {array.shape}."
        )
    if array.dtype != np.uint8:
        if array.min() < 0 or array.max() > 255:
            raise ValueError("Float images must hold values in [0, 255] (or pass uint8).")
        scale = 255.0 if array.max() <= 1.0 else 1.0
        array = np.round(array * scale).astype(np.uint8)
    return array[..., :3]


class CLIPEmbedder:
    """Embed stimuli and captions with an OpenCLIP model.

    Parameters
    ----------
    model_name : str
        An OpenCLIP architecture (``open_clip.list_models()``), e.g.
        ``'ViT-H-14'`` (the paper's), or ``'tiny'``: the miniature world's
        64-d CLIP for 32 px stimuli (:mod:`mne_synapse.tiny_clip`).
    pretrained : str | path-like | None
        An OpenCLIP pretrained tag (``'laion2b_s32b_b79k'``) or the path of a
        local checkpoint file. For ``'tiny'``: ``'synthetic'`` (the weights
        shipped with the package), a file, or ``None`` for random weights.
    text_layer : ``'penultimate'`` | ``'last'``
        Which caption token states are the targets. ``'penultimate'``: the
        penultimate layer with CLIP's causal mask, then the final LayerNorm:
        what Stable Diffusion 2.x is conditioned on, so the default.
        ``'last'``: the authors' Stage-1 targets, the last layer then the final
        LayerNorm, computed *without* the causal mask (every token attends to
        every other).
    device : str
        Torch device for encoding.
    batch_size : int
        Images or captions per forward pass.
    cache_dir : path-like | None
        If given, embeddings are also cached there as ``.npy`` files.
    """

    def __init__(self, model_name="ViT-H-14", pretrained="laion2b_s32b_b79k",
                 text_layer="penultimate", device="cpu", batch_size=64, cache_dir=None):
        if text_layer not in ("penultimate", "last"):
            raise ValueError(f"text_layer must be 'penultimate' or 'last', got {text_layer!r}.")
        self.model_name = model_name
        self.pretrained = pretrained
        self.text_layer = text_layer
        self.device = device
        self.batch_size = batch_size
        self.cache_dir = cache_dir
        self._model = None

    # -- model -------------------------------------------------------------
    @property
    def model_key(self):
        """A string identifying the weights and options (the cache key)."""
        pretrained = self.pretrained
        if pretrained is not None and Path(str(pretrained)).is_file():
            stat = Path(pretrained).stat()
            pretrained = f"{Path(pretrained).resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
        # "last" was the causally masked last layer before it meant the authors'
        # unmasked states: a new key keeps old disk caches from being reused.
        layer = "last-unmasked" if self.text_layer == "last" else self.text_layer
        return f"{self.model_name}|{pretrained}|{layer}"

    @property
    def model(self):
        """The OpenCLIP model, loaded on first use."""
        if self._model is None:
            self._model, self._preprocess, self._tokenizer = self._load()
        return self._model

    def _load(self):
        import open_clip
        import torch

        if self.model_name == "tiny":
            from .miniature.tiny_clip import build_tiny_clip

            model, tokenizer = build_tiny_clip(self.pretrained)
            image_size = model.visual.image_size
            image_size = image_size[0] if isinstance(image_size, tuple) else image_size
            preprocess = open_clip.transform.image_transform(image_size, is_train=False)
        else:
            model, preprocess, tokenizer = self._load_open_clip(open_clip)
        return model.to(self.device).eval().requires_grad_(False), preprocess, tokenizer

    def _load_open_clip(self, open_clip):
        known = open_clip.list_models()
        if self.model_name not in known:
            import difflib

            close = difflib.get_close_matches(self.model_name, known, n=3)
            raise ValueError(
                f"Unknown CLIP model {self.model_name!r}. Did you mean {close}? "
                "See open_clip.list_models(), or use 'tiny'."
            )
        pretrained = self.pretrained
        if pretrained is not None and not Path(str(pretrained)).is_file():
            if any(sep in str(pretrained) for sep in ("/", "\\")) or str(pretrained).endswith(
                (".bin", ".pt", ".pth", ".safetensors")
            ):
                raise FileNotFoundError(
                    f"CLIP checkpoint {str(pretrained)!r} does not exist; check the path "
                    "or pass an OpenCLIP pretrained tag (open_clip.list_pretrained())."
                )
            tags = open_clip.list_pretrained_tags_by_model(self.model_name)
            if pretrained not in tags:
                raise ValueError(
                    f"Unknown pretrained tag {pretrained!r} for {self.model_name}; "
                    f"known tags: {tags}."
                )
        try:
            with quiet_libraries():  # open_clip logs an ERROR before it raises
                model, _, preprocess = open_clip.create_model_and_transforms(
                    self.model_name, pretrained=pretrained
                )
        except Exception as err:  # noqa: BLE001 - any loader failure means missing weights
            hint = _HUB_HINT.get((self.model_name, pretrained), "the Hugging Face hub (laion/...)")
            raise FileNotFoundError(
                f"Could not load CLIP weights {self.model_name} / {pretrained} ({err}). "
                "This machine may be offline. On a machine with internet run "
                f"`python -c \"import open_clip; open_clip.create_model('{self.model_name}', "
                f"pretrained='{pretrained}')\"` (weights land in ~/.cache/huggingface/hub), "
                f"or download the checkpoint from {hint} and pass its path as pretrained=."
            ) from err
        return model, preprocess, open_clip.get_tokenizer(self.model_name)

    @property
    def embed_dim(self):
        """Size of the image embedding."""
        return int(self.model.text_projection.shape[-1])

    @property
    def context_length(self):
        """Number of caption tokens (77 for OpenCLIP ViT-H-14)."""
        return int(self.model.positional_embedding.shape[0])

    @property
    def text_width(self):
        """Size of each caption token state (1024 for ViT-H-14)."""
        return int(self.model.ln_final.weight.shape[0])

    # -- embeddings ----------------------------------------------------------
    def _cached(self, kind, keys, compute):
        """Look ``keys`` up in memory, then on disk; ``compute`` the missing ones."""
        folder = None
        if self.cache_dir is not None:
            model_hash = hashlib.sha1(self.model_key.encode()).hexdigest()[:16]
            folder = Path(self.cache_dir) / model_hash / kind
        out, missing = {}, []
        for key in dict.fromkeys(keys):
            full_key = (self.model_key, kind, key)
            if full_key in _MEMORY_CACHE:
                out[key] = _MEMORY_CACHE[full_key]
            elif folder is not None and (folder / f"{key}.npy").is_file():
                out[key] = _MEMORY_CACHE[full_key] = np.load(folder / f"{key}.npy")
            else:
                missing.append(key)
        if missing:
            for key, value in zip(missing, compute(missing)):
                out[key] = _MEMORY_CACHE[(self.model_key, kind, key)] = value
                if folder is not None:
                    atomic_write(folder / f"{key}.npy", lambda fid, v=value: np.save(fid, v))
        return np.stack([out[key] for key in keys])

    def embed_images(self, images):
        """L2-normalised CLIP image embeddings, shape (n_images, embed_dim).

        Parameters
        ----------
        images : sequence of (H, W, 3) uint8 arrays or file paths
            The stimuli.
        """
        import torch
        from PIL import Image

        images = list(images)
        if not images:
            raise ValueError("No images to embed; pass at least one.")
        out = []
        # One batch of images in memory at a time: a stimulus set need not fit.
        for start in range(0, len(images), self.batch_size):
            arrays = [read_image(image) for image in images[start:start + self.batch_size]]
            keys = [_content_hash(a) for a in arrays]
            by_key = dict(zip(keys, arrays))

            def compute(missing, by_key=by_key):
                self.model  # noqa: B018 - loads the preprocessing transform too
                batch = torch.stack([self._preprocess(Image.fromarray(by_key[k]))
                                     for k in missing]).to(self.device)
                with torch.no_grad():
                    emb = self.model.encode_image(batch, normalize=True)
                return list(emb.float().cpu().numpy())

            out.append(self._cached("image", keys, compute))
        return np.concatenate(out)

    def embed_caption_tokens(self, captions):
        """Caption token states, shape (n_captions, context_length, text_width).

        These are what Stable Diffusion 2.x's cross-attention reads, and the
        alignment target of ``Z_latent``.
        """
        import torch

        captions = [str(c) for c in captions]
        keys = [hashlib.sha1(c.encode()).hexdigest() for c in captions]
        by_key = dict(zip(keys, captions))

        def compute(missing):
            model = self.model
            n_layers = len(model.transformer.resblocks)
            layer, mask = n_layers - 2, model.attn_mask
            if self.text_layer == "last":  # the authors' targets
                layer, mask = n_layers - 1, None
            results = []
            for start in range(0, len(missing), self.batch_size):
                texts = [by_key[k] for k in missing[start:start + self.batch_size]]
                tokens = self._tokenizer(texts).to(self.device)
                with torch.no_grad():
                    x = model.token_embedding(tokens) + model.positional_embedding
                    _, hidden = model.transformer.forward_intermediates(
                        x, attn_mask=mask, indices=[layer], stop_early=True
                    )
                    states = model.ln_final(hidden[0])
                results.extend(states.float().cpu().numpy())
            return results

        return self._cached("text", keys, compute)


def default_pretrained(model_name, pretrained="auto"):
    """``pretrained``, or the default weights of ``model_name`` when it is ``'auto'``."""
    if pretrained != "auto":
        return pretrained
    if model_name not in DEFAULT_PRETRAINED:
        raise ValueError(
            f"No default weights for CLIP model {model_name!r}; pass "
            "clip_pretrained= (an OpenCLIP tag or a checkpoint path)."
        )
    return DEFAULT_PRETRAINED[model_name]


def clip_targets(clip, images, captions, n_epochs):
    """The CLIP targets of Stage 1, each distinct image and caption embedded once.

    Parameters
    ----------
    clip : CLIPEmbedder
        The CLIP model.
    images, captions : sequence | None
        One stimulus image (array or path) and one caption per epoch, or None
        when the loss needs none.
    n_epochs : int
        The number of epochs.

    Returns
    -------
    image_table, text_table : ndarray | None
        Image embeddings and caption token states, one row per distinct item.
    unique_pairs : ndarray of int, shape (n_pairs, 2)
        The distinct (image row, caption row) pairs.
    pair_of_epoch : ndarray of int, shape (n_epochs,)
        The pair of each epoch.
    sizes : dict
        ``n_tokens`` and ``embed_dim`` of the targets (empty without targets).
    """
    image_table, image_idx = _embed_unique(images, clip.embed_images)
    text_table, text_idx = _embed_unique(captions, clip.embed_caption_tokens)
    sizes = {}
    if image_table is not None or text_table is not None:
        if image_table is not None and clip.embed_dim != clip.text_width:
            raise ValueError(
                f"CLIP model {clip.model_name} has image embeddings of size "
                f"{clip.embed_dim} but text states of size {clip.text_width}; "
                "SYNAPSE needs them equal (e.g. ViT-H-14: 1024 and 1024)."
            )
        sizes = dict(n_tokens=clip.context_length, embed_dim=clip.text_width)
    none = np.zeros(n_epochs, dtype=np.int64)
    pairs = np.stack([none if image_idx is None else image_idx,
                      none if text_idx is None else text_idx], axis=1)
    unique_pairs, pair_of_epoch = np.unique(pairs, axis=0, return_inverse=True)
    return image_table, text_table, unique_pairs, pair_of_epoch, sizes


def _embed_unique(items, embed_fn):
    """Embeddings of the distinct ``items`` (None without items) and each item's row."""
    if items is None:
        return None, None
    keys = [str(v) if isinstance(v, (str, Path)) else _content_hash(read_image(v))
            for v in items]
    _, first, inverse = np.unique(np.asarray(keys), return_index=True, return_inverse=True)
    table = embed_fn([items[i] for i in first])
    return np.asarray(table, dtype=np.float32), inverse.astype(np.int64)
