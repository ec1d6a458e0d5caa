"""Captions of stimulus images by an image-to-text model, as the SYNAPSE authors made them.

The authors captioned each stimulus with BLIP-2 (``Salesforce/blip2-flan-t5-xl``,
beam search with 3 beams, at most 75 tokens) and trained Stage 1 on those
captions. The captions are cached by image content and model, so each image is
captioned once.
"""

import hashlib
import logging
import os
from pathlib import Path

import numpy as np
from mne.utils import logger, verbose

from .utils import atomic_write, fingerprint, get_cache_dir, hash_file, show_progress

AUTHORS_CAPTIONER = "Salesforce/blip2-flan-t5-xl"


def _offline():
    return any(os.environ.get(name, "").lower() in ("1", "true", "yes", "on")
               for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _load(model, device):
    """Processor and model; a clear error, not a library traceback, when weights are absent."""
    import transformers
    from transformers import AutoModelForImageTextToText, AutoProcessor

    folder = Path(model).expanduser()
    if folder.is_dir():
        model = str(folder)
    elif folder.exists() or str(model).startswith((".", "/", "~")):
        raise FileNotFoundError(f"The captioning model folder {str(model)!r} does not exist.")
    advice = (f"Download it once with `hf download {model} --local-dir "
              f"<folder>` and pass model='<folder>'")
    previous = transformers.logging.get_verbosity()
    bars = transformers.logging.is_progress_bar_enabled()
    transformers.logging.set_verbosity(logging.CRITICAL)  # our error says it all
    transformers.logging.disable_progress_bar()  # ours counts the images
    try:
        # The local copy first: no network round trip (or hang) when it is there.
        for local_only in (True,) if folder.is_dir() or _offline() else (True, False):
            try:
                processor = AutoProcessor.from_pretrained(model, local_files_only=local_only)
                net = AutoModelForImageTextToText.from_pretrained(
                    model, local_files_only=local_only)
                break
            except OSError as err:
                reason = str(err).splitlines()[0]
        else:
            raise OSError(f"The captioning model {model!r} is not available here ({reason}). "
                          f"{advice}.")
    finally:
        transformers.logging.set_verbosity(previous)
        if bars:
            transformers.logging.enable_progress_bar()
    return processor, net.to(device).eval()


def _model_key(model):
    folder = Path(model).expanduser()
    if not folder.is_dir():
        return str(model)
    # A local folder is named by what is in it, so retrained weights are captioned anew.
    return "".join(hash_file(f) for f in sorted(folder.glob("*")) if f.is_file())


def _image_key(image):
    if isinstance(image, (str, os.PathLike)):
        return hash_file(image)
    array = np.ascontiguousarray(np.asarray(image))
    return hashlib.sha256(repr(array.shape).encode() + array.tobytes()).hexdigest()


def _open(image):
    from PIL import Image

    if isinstance(image, (str, os.PathLike)):
        with Image.open(image) as img:
            return img.convert("RGB")
    return Image.fromarray(np.asarray(image, dtype=np.uint8)).convert("RGB")


@verbose
def caption_images(images, model=AUTHORS_CAPTIONER, batch_size=8, num_beams=3,
                   max_new_tokens=75, device="cpu", cache=True, verbose=None):
    """Caption images with a transformers image-to-text model.

    Parameters
    ----------
    images : sequence of path-like | array
        Image files, or (H, W, 3) uint8 arrays (or PIL images).
    model : str
        A hub name (default: the authors' ``Salesforce/blip2-flan-t5-xl``,
        about 8 GB) or a local folder saved with ``save_pretrained``; any model
        ``transformers.AutoModelForImageTextToText`` loads (BLIP, BLIP-2,
        VisionEncoderDecoder, ...). Offline (``HF_HUB_OFFLINE=1``) only local
        copies are tried.
    batch_size : int
        Images per forward pass.
    num_beams : int
        Beams of the beam search (3, as the authors).
    max_new_tokens : int
        Longest caption in tokens (75, as the authors).
    device : str
        Where the model runs.
    cache : bool
        Reuse and store the captions in the mne-synapse cache, keyed by the
        image's content, the model and the generation settings.
    verbose : bool | str | int | None
        Control verbosity of the logging output (MNE style); the progress bar
        follows it.

    Returns
    -------
    captions : list of str
        One per image, in order.
    """
    import torch
    from tqdm import tqdm

    images = list(images)
    keys = [_image_key(image) for image in images]
    settings = dict(model=_model_key(model), num_beams=int(num_beams),
                    max_new_tokens=int(max_new_tokens))
    folder = get_cache_dir("captions") / fingerprint(settings)[:16] if cache else None
    found = {}
    for key in dict.fromkeys(keys):
        if folder is not None and (folder / f"{key}.txt").is_file():
            found[key] = (folder / f"{key}.txt").read_text(encoding="utf-8")
    todo = [k for k in dict.fromkeys(keys) if k not in found]
    logger.info(f"Captioning {len(todo)} image(s) with {model} ({len(found)} cached).")
    if todo:
        processor, net = _load(model, device)
        first = {key: image for key, image in zip(keys, images)}
        with tqdm(total=len(todo), desc="captions", unit="image",
                  disable=not show_progress(verbose)) as bar, torch.no_grad():
            for start in range(0, len(todo), batch_size):
                batch = todo[start:start + batch_size]
                inputs = processor(images=[_open(first[k]) for k in batch], return_tensors="pt")
                out = net.generate(**inputs.to(device), num_beams=num_beams,
                                   max_new_tokens=max_new_tokens)
                texts = processor.batch_decode(out, skip_special_tokens=True)
                for key, text in zip(batch, texts):
                    found[key] = text.strip()
                    if folder is not None:
                        atomic_write(folder / f"{key}.txt",
                                     lambda fid, t=found[key]: fid.write(t), mode="w")
                bar.update(len(batch))
    return [found[key] for key in keys]


@verbose
def add_captions(epochs, model=AUTHORS_CAPTIONER, image_column="image_path",
                 caption_column="caption", verbose=None, **kwargs):
    """Caption each epoch's stimulus into ``epochs.metadata`` (what the estimators embed).

    Parameters
    ----------
    epochs : mne.Epochs
        Epochs whose ``metadata[image_column]`` holds image paths, e.g. from
        :func:`~mne_synapse.datasets.load_cvpr40_parquet`.
    model : str
        See :func:`caption_images`.
    image_column, caption_column : str
        Metadata columns read and written (``caption`` is what
        :class:`~mne_synapse.SynapseEncoder` reads by default).
    verbose : bool | str | int | None
        Control verbosity of the logging output (MNE style).
    **kwargs
        Passed to :func:`caption_images` (``batch_size``, ``num_beams``, ...).

    Returns
    -------
    epochs : mne.Epochs
        The same object, its metadata updated in place.
    """
    metadata = epochs.metadata
    if metadata is None or image_column not in metadata.columns:
        raise ValueError(f"epochs.metadata has no {image_column!r} column of image paths.")
    paths = metadata[image_column].tolist()
    missing = [i for i, p in enumerate(paths) if not isinstance(p, str)]
    if missing:
        raise ValueError(f"{len(missing)} epochs have no image path (first: epoch "
                         f"{missing[0]}); drop them first.")
    unique = list(dict.fromkeys(paths))
    by_path = dict(zip(unique, caption_images(unique, model, verbose=verbose, **kwargs)))
    metadata[caption_column] = [by_path[p] for p in paths]
    epochs.metadata = metadata
    return epochs
