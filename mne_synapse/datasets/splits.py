"""CVPR40 splits: an image-disjoint re-split, the SYNAPSE authors' random one, and a leak audit.

Leaks are this data set's known problem: it was recorded in blocks of one class
(see :ref:`block-design`), so a split that puts trials of the same image, or the
same trial twice, in training and test inflates every score.
"""

import hashlib
from pathlib import Path

import numpy as np
from mne.utils import logger, verbose

from ..utils import hash_file

_SPLITS = ("train", "val", "test")


def authors_split(labels, random_state=0):
    """The SYNAPSE authors' split: random 80/10/10 over the trials of each class.

    It reproduces the authors' preprocessing notebook: the trials of each class
    are shuffled, the first ``int(0.8 n)`` go to training, the next
    ``int(0.2 n // 2)`` to validation and the rest to test. The notebook's
    shuffle is not seeded; here it is, with ``random_state``, so the split is
    the same on every run (not the authors' exact trials).

    It is **not image-disjoint**: the same image's trials (one per subject) land
    in training and test. Use it only to compare with published numbers that
    were computed on it; the readers' default splits are image-disjoint
    (:func:`image_split` divides the images of each class 80/10/10 instead).

    Parameters
    ----------
    labels : array-like of int | str, shape (n_trials,)
        The class of each trial.
    random_state : int | np.random.Generator | None
        Seed of the shuffle (0 by default).

    Returns
    -------
    split : ndarray of str, shape (n_trials,)
        ``'train'``, ``'val'`` or ``'test'`` for each trial.
    """
    return _per_class_split(np.asarray(labels), random_state, _notebook_sizes)


def image_split(labels, images, random_state=0):
    """An image-disjoint split: 80/10/10 of the images of each class, with all their trials.

    The images of each class are shuffled as in :func:`authors_split`; the
    first ``round(0.8 n)`` go to training, the next ``round(0.1 n)`` to
    validation and the rest to test (without the notebook's float
    truncation, which gives 40 / 4 / 6 of 50). Every trial goes where its
    image goes, so no image is in two splits. With CVPR40's 50 images per
    class that is 40 / 5 / 5 images of each class.

    Parameters
    ----------
    labels : array-like of int | str, shape (n_trials,)
        The class of each trial.
    images : array-like, shape (n_trials,)
        What identifies each trial's stimulus image, such as the content hash
        of its file or ``image_index`` as the readers return it.
    random_state : int | np.random.Generator | None
        Seed of the shuffle (0 by default).

    Returns
    -------
    split : ndarray of str, shape (n_trials,)
        ``'train'``, ``'val'`` or ``'test'`` for each trial.
    """
    labels, images = np.asarray(labels), np.asarray(images)
    if len(labels) != len(images):
        raise ValueError(f"labels has {len(labels)} trials but images {len(images)}.")
    _, first, image_of_trial = np.unique(images, return_index=True, return_inverse=True)
    image_labels = labels[first]
    mixed = np.flatnonzero(image_labels[image_of_trial] != labels)
    if len(mixed):
        raise ValueError(f"The image of trial {mixed[0]} ({images[mixed[0]]!r}) is shown "
                         "in trials of several classes; an image must have one class.")
    split = _per_class_split(image_labels, random_state, _rounded_sizes)
    return split[image_of_trial]


def _notebook_sizes(n):
    """Training and validation sizes of the authors' notebook, floats and all."""
    return int(n * 0.8), int(n * (1 - 0.8) // 2)


def _rounded_sizes(n):
    return int(round(0.8 * n)), int(round(0.1 * n))


def _per_class_split(labels, random_state, sizes):
    """Shuffle the items of each class (seeded); train / val / test of ``sizes(n)``."""
    rng = np.random.default_rng(random_state)
    split = np.empty(len(labels), dtype=object)
    for label in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == label))
        n_train, n_val = sizes(len(idx))
        split[idx[:n_train]] = "train"
        split[idx[n_train:n_train + n_val]] = "val"
        split[idx[n_train + n_val:]] = "test"
    return split


def _image_keys(metadata):
    """Content hash of each epoch's stimulus file; its ``image_id`` where there is no file."""
    hashes = {}
    keys = []
    for path, image_id in zip(metadata["image_path"], metadata["image_id"]):
        if isinstance(path, str) and Path(path).is_file():
            if path not in hashes:
                hashes[path] = hash_file(path)
            keys.append(hashes[path])
        else:
            keys.append(f"id:{image_id}")
    return keys


def _trial_keys(X, chunk_size=256):
    from .._inputs import is_epochs

    n = len(X)
    keys = []
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        if is_epochs(X):
            chunk = X.get_data(item=list(range(start, stop)), verbose=False)
        else:
            chunk = np.asarray(X[start:stop])
        keys += [hashlib.sha1(np.ascontiguousarray(row, np.float64).tobytes()).hexdigest()
                 for row in chunk]
    return keys


def _shared(keys, split, kind):
    by_key = {}
    for i, (key, name) in enumerate(zip(keys, split)):
        if name in _SPLITS:
            by_key.setdefault(key, []).append(i)
    rows = []
    for key, idx in by_key.items():
        names = sorted({split[i] for i in idx}, key=_SPLITS.index)
        if len(names) > 1:
            rows.append(dict(kind=kind, key=key, splits=tuple(names), n_epochs=len(idx),
                             epochs=idx))
    return rows


@verbose
def audit_splits(X, metadata=None, verbose=None):
    """Find stimulus images and trials that appear in more than one split.

    An image is identified by the content hash of its file (``image_path``), or
    by its ``image_id`` where it has no file; a trial by the hash of its EEG
    values, so a trial stored twice is found too. Epochs whose ``split`` is not
    ``'train'``, ``'val'`` or ``'test'`` are ignored. The result is logged.

    Parameters
    ----------
    X : mne.Epochs | array, shape (n_epochs, n_chans, n_times)
        The epochs (their ``metadata`` is used), or their data (a memory-mapped
        array is read in chunks).
    metadata : pandas.DataFrame | None
        One row per epoch with ``split``, ``image_path`` and ``image_id``;
        required when ``X`` is an array.
    verbose : bool | str | int | None
        Control verbosity of the logging output (MNE style).

    Returns
    -------
    leaks : pandas.DataFrame
        One row per image or trial found in several splits, with columns
        ``kind`` (``'image'`` or ``'trial'``), ``key`` (the hash), ``splits``
        (tuple of split names), ``n_epochs`` and ``epochs`` (their positions).
        Empty when the splits are clean.
    """
    import pandas as pd

    from .._inputs import is_epochs

    if metadata is None:
        metadata = X.metadata if is_epochs(X) else None
    if metadata is None or not {"split", "image_path", "image_id"} <= set(metadata.columns):
        raise ValueError("audit_splits needs metadata with 'split', 'image_path' and "
                         "'image_id' columns (as the CVPR40 readers return); pass "
                         "metadata=... with an array.")
    if len(metadata) != len(X):
        raise ValueError(f"metadata has {len(metadata)} rows for {len(X)} epochs.")
    split = metadata["split"].tolist()
    rows = (_shared(_image_keys(metadata), split, "image")
            + _shared(_trial_keys(X), split, "trial"))
    leaks = pd.DataFrame(rows, columns=["kind", "key", "splits", "n_epochs", "epochs"])
    for kind in ("image", "trial"):
        found = leaks[leaks["kind"] == kind]
        if len(found):
            pairs = sorted({"/".join(s) for s in found["splits"]})
            logger.info(f"Split audit: {len(found)} {kind}(s) in more than one split "
                        f"({', '.join(pairs)}), {int(found['n_epochs'].sum())} epochs.")
        else:
            logger.info(f"Split audit: no {kind} is in more than one split.")
    return leaks

