"""Scores of generated images: FID, KID, Inception Score, CLIP similarity, SSIM, pixel r.

Scores computed through a network return a :class:`~mne_synapse.metrics.Score`
that names the network: FID values from different feature extractors are not
comparable.
"""

import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ._score import Score

# torch-fidelity's Inception-v3 (the FID standard) and where torch.hub keeps it.
_INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
_INCEPTION_URL = ("https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
                  + _INCEPTION_FILE)


# -- images and extractors ---------------------------------------------------------
def _as_uint8_images(images, what="images"):
    """A list of (H, W, 3) uint8 arrays from arrays, PIL images or paths."""
    from ..clip import read_image

    if isinstance(images, np.ndarray) and images.ndim == 5:
        raise ValueError(
            f"{what} has shape {images.shape}: pass one image per row, e.g. "
            "generated[:, 0] of EEGImageGenerator.generate(..., output_type='np')."
        )
    images = [read_image(np.asarray(im) if not isinstance(im, (str, Path)) else im)
              for im in images]
    if len(images) == 0:
        raise ValueError(f"{what} is empty.")
    return images


def _resize(image, size):
    from PIL import Image

    if image.shape[:2] == tuple(size):
        return image
    return np.asarray(Image.fromarray(image).resize(tuple(size)[::-1], Image.BICUBIC))


def _to_tensor(images):
    """Float (N, 3, H, W) tensor in [0, 1] from (H, W, 3) uint8 arrays of one size."""
    import torch

    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        raise ValueError(f"Images must share one size, got {sorted(shapes)}; resize them first.")
    return torch.as_tensor(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0


def _describe(feature, name):
    if name is not None:
        return str(name)
    owner = getattr(feature, "__self__", None)  # a bound method, e.g. embed_images
    if owner is not None:
        detail = [str(getattr(owner, a)) for a in ("model_name", "pretrained") if hasattr(owner, a)]
        return f"{type(owner).__name__}({', '.join(detail)}).{feature.__name__}"
    return getattr(feature, "__qualname__", type(feature).__name__)


def _has_torch_fidelity():
    import importlib.util

    return importlib.util.find_spec("torch_fidelity") is not None


def _check_inception():
    """Fail at once, with what to do, when the standard Inception cannot load offline."""
    import torch

    hint = ("or pass any torch.nn.Module feature extractor (e.g. "
            "metrics.fid(real, fake, feature=my_module)).")
    if not _has_torch_fidelity():
        raise ModuleNotFoundError(
            "The default 'inception' feature extractor needs torch-fidelity: "
            f"pip install torch-fidelity, then download its weights, {hint}")
    weights = Path(torch.hub.get_dir()) / "checkpoints" / _INCEPTION_FILE
    if not weights.is_file():
        raise FileNotFoundError(
            f"The Inception-v3 weights of the default 'inception' feature extractor are "
            f"not at {weights}. Download {_INCEPTION_URL} there, {hint}")


def _feature_module(feature, name, kind):
    """(module or torchmetrics feature spec, description, uses the default Inception)."""
    from torch import nn

    if isinstance(feature, str):
        if feature != "inception":
            raise ValueError(f"feature must be 'inception', an nn.Module or a callable, "
                             f"got {feature!r}.")
        _check_inception()
        spec = "logits_unbiased" if kind == "classifier" else 2048
        return spec, name or f"Inception-v3 (torch-fidelity, {spec})", True
    if isinstance(feature, nn.Module):
        return feature.eval(), _describe(feature, name), False
    if callable(feature):
        return _CallableModule(feature, kind), _describe(feature, name), False
    raise TypeError(f"feature must be 'inception', an nn.Module or a callable, got "
                    f"{type(feature).__name__}.")


_CALLABLE_MODULE = []


def _CallableModule(fn, kind):
    """Wrap ``fn(list of uint8 images)`` as a module; a classifier's probabilities become logits."""
    if not _CALLABLE_MODULE:  # defined on first use: torch is not imported with this module
        import torch
        from torch import nn

        class CallableModule(nn.Module):
            def __init__(self, fn, kind):
                super().__init__()
                self.fn, self.kind = fn, kind

            def forward(self, x):
                arrays = (x.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
                out = torch.as_tensor(np.asarray(self.fn(list(arrays)), dtype=np.float64))
                return out.clamp_min(1e-12).log() if self.kind == "classifier" else out

        _CALLABLE_MODULE.append(CallableModule)
    return _CALLABLE_MODULE[0](fn, kind)


def _device(module):
    import torch

    params = list(module.parameters()) if hasattr(module, "parameters") else []
    return params[0].device if params else torch.device("cpu")


@contextmanager
def _quiet():
    """Hide torchmetrics' warning that features are buffered: these metrics need them all."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*will save all extracted features")
        warnings.filterwarnings("ignore", message=".*degrees of freedom is <= 0")
        yield


def _feed(metric, images, batch_size, **kwargs):
    """Update a torchmetrics image metric batch by batch, on its network's device."""
    import torch

    device = _device(metric)
    metric.to(device)
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            metric.update(images[start:start + batch_size].to(device), **kwargs)


# -- generation ---------------------------------------------------------------------
def fid(real, generated, feature, name=None, batch_size=64):
    """Fréchet distance between feature distributions (FID; torchmetrics).

    Parameters
    ----------
    real, generated : array, shape (n, H, W, 3) | list of images
        uint8 images (or paths); every image of a set has one size.
    feature : torch.nn.Module | callable | ``'inception'``
        The feature extractor. A module receives float tensors (N, 3, H, W)
        in [0, 1] and returns (N, d); any other callable receives a list of
        (H, W, 3) uint8 arrays (e.g. ``CLIPEmbedder.embed_images``). A module
        is put in eval mode. ``'inception'`` is the standard extractor; it needs torch-fidelity and
        its downloaded weights (a clear error says what is missing).
    name : str | None
        How to name the extractor in the result (default: from ``feature``).
    batch_size : int
        Images per forward pass.

    Returns
    -------
    score : Score
        ``value`` is the FID (0 for equal distributions), ``extractor`` its network.
    """
    from torchmetrics.image.fid import FrechetInceptionDistance

    real = _to_tensor(_as_uint8_images(real, "real"))
    generated = _to_tensor(_as_uint8_images(generated, "generated"))
    if min(len(real), len(generated)) < 2:
        raise ValueError("FID needs at least 2 real and 2 generated images.")
    module, label, _ = _feature_module(feature, name, "features")
    metric = FrechetInceptionDistance(feature=module, normalize=True,
                                      input_img_size=tuple(real.shape[1:]))
    _feed(metric, real, batch_size, real=True)
    _feed(metric, generated, batch_size, real=False)
    return Score("FID", max(float(metric.compute()), 0.0), label)


def kid(real, generated, feature, name=None, subset_size=None, n_subsets=100,
        batch_size=64, random_state=None):
    """Kernel distance between feature distributions (KID; torchmetrics).

    Unbiased polynomial-kernel MMD over random subsets; near 0 (either sign)
    for equal distributions. Parameters as in :func:`fid`, and:

    Parameters
    ----------
    real, generated, feature, name, batch_size
        See :func:`fid`.
    subset_size : int | None
        Images per subset (default: ``min(1000, n_real, n_generated)``).
    n_subsets : int
        Number of subsets.
    random_state : int | None
        Seed of the subsets.

    Returns
    -------
    score : Score
        ``value`` is the mean over subsets and ``std`` their spread.
    """
    import torch
    from torchmetrics.image.kid import KernelInceptionDistance

    real = _to_tensor(_as_uint8_images(real, "real"))
    generated = _to_tensor(_as_uint8_images(generated, "generated"))
    subset_size = subset_size or min(1000, len(real), len(generated))
    if subset_size < 2 or subset_size > min(len(real), len(generated)):
        raise ValueError(f"subset_size must be in [2, {min(len(real), len(generated))}] "
                         f"(the smaller set), got {subset_size}.")
    module, label, _ = _feature_module(feature, name, "features")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(np.random.RandomState(random_state).randint(2**31 - 1))
        with _quiet():
            metric = KernelInceptionDistance(feature=module, subsets=n_subsets,
                                             subset_size=subset_size, normalize=True)
        _feed(metric, real, batch_size, real=True)
        _feed(metric, generated, batch_size, real=False)
        mean, std = metric.compute()
    return Score("KID", float(mean), label, std=float(std))


def inception_score(generated, classifier, name=None, n_splits=10, batch_size=64,
                    random_state=None):
    """Inception Score of generated images under a classifier (torchmetrics).

    ``exp(E[KL(p(y|x) || p(y))])``: 1 when the classifier sees every image
    alike, up to the number of classes for confident, balanced labels.

    Parameters
    ----------
    generated : array, shape (n, H, W, 3) | list of images
        uint8 images.
    classifier : torch.nn.Module | callable | ``'inception'``
        A module returns logits (N, n_classes) from float tensors (N, 3, H, W)
        in [0, 1]; another callable returns class *probabilities* from a list
        of uint8 arrays (e.g. a scikit-learn ``predict_proba`` on embeddings).
    name, batch_size
        See :func:`fid`.
    n_splits : int
        Splits of the images (the score is averaged over them).
    random_state : int | None
        Seed of the split assignment.

    Returns
    -------
    score : Score
    """
    import torch
    from torchmetrics.image.inception import InceptionScore

    images = _to_tensor(_as_uint8_images(generated, "generated"))
    if not 1 <= n_splits <= len(images):
        raise ValueError(f"n_splits must be in [1, {len(images)}], got {n_splits}.")
    module, label, default = _feature_module(classifier, name, "classifier")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(np.random.RandomState(random_state).randint(2**31 - 1))
        # normalize=True turns [0, 1] floats into uint8, which only the Inception wants.
        with _quiet():  # (also the std of a single split)
            metric = InceptionScore(feature=module, splits=n_splits, normalize=default)
            _feed(metric, images, batch_size)
            mean, std = metric.compute()
    return Score("IS", float(mean), label, std=float(std) if n_splits > 1 else None)


def _paired(generated, stimuli):
    generated = _as_uint8_images(generated, "generated")
    stimuli = _as_uint8_images(stimuli, "stimuli")
    if len(generated) != len(stimuli):
        raise ValueError(f"Got {len(generated)} generated images for {len(stimuli)} stimuli; "
                         "pass one stimulus per generated image.")
    # Stimuli (e.g. ImageNet photos) are compared at the generated resolution.
    return generated, [_resize(s, g.shape[:2]) for s, g in zip(stimuli, generated)]


def clip_similarity(generated, stimuli, embed, name=None):
    """Mean cosine similarity of each generated image and its stimulus.

    Parameters
    ----------
    generated, stimuli : array, shape (n, H, W, 3) | list of images
        Paired images (stimuli are resized to the generated size).
    embed : callable | torch.nn.Module
        Image embedding, e.g. ``CLIPEmbedder('tiny', 'synthetic').embed_images``
        (a callable on a list of uint8 arrays) or a module as in :func:`fid`.
    name : str | None
        How to name the embedding in the result.

    Returns
    -------
    score : Score
    """
    import torch

    if isinstance(embed, str):
        raise TypeError("embed must be an image-embedding callable or nn.Module, e.g. "
                        "CLIPEmbedder('tiny', 'synthetic').embed_images.")
    generated, stimuli = _paired(generated, stimuli)
    module, label, _ = _feature_module(embed, name, "features")
    with torch.no_grad():
        a, b = (module(_to_tensor(x).to(_device(module))).double().cpu().numpy()
                for x in (generated, stimuli))
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    return Score("CLIP similarity", float(np.mean(np.sum(a * b, axis=1))), label)


def ssim(generated, stimuli):
    """Mean structural similarity of each generated image and its stimulus (torchmetrics).

    Parameters
    ----------
    generated, stimuli : array, shape (n, H, W, 3) | list of images
        Paired images (stimuli are resized to the generated size).

    Returns
    -------
    ssim : float
        1 for identical images.
    """
    from torchmetrics.functional.image import structural_similarity_index_measure

    generated, stimuli = _paired(generated, stimuli)
    size = min(generated[0].shape[:2])
    kernel = min(11, size - 1 + size % 2)  # odd and no larger than the image
    return float(structural_similarity_index_measure(
        _to_tensor(generated), _to_tensor(stimuli), data_range=1.0, kernel_size=kernel))


def pixel_correlation(generated, stimuli):
    """Mean Pearson correlation of the pixels of each generated image and its stimulus.

    Parameters
    ----------
    generated, stimuli : array, shape (n, H, W, 3) | list of images
        Paired images (stimuli are resized to the generated size).

    Returns
    -------
    r : float
    """
    generated, stimuli = _paired(generated, stimuli)
    a = np.stack(generated).reshape(len(generated), -1).astype(float)
    b = np.stack(stimuli).reshape(len(stimuli), -1).astype(float)
    a -= a.mean(1, keepdims=True)
    b -= b.mean(1, keepdims=True)
    denom = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return float(np.mean(np.sum(a * b, axis=1) / np.where(denom > 0, denom, np.inf)))
