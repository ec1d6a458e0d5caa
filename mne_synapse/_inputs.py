"""Turn what users pass (Epochs or arrays, metadata, images) into checked arrays.

Shared by every estimator, so that a bad input gets the same clear error
wherever it enters.
"""

import numpy as np

from .utils import check_finite


def is_epochs(X):
    from mne import BaseEpochs

    return isinstance(X, (BaseEpochs, _JoinedEpochs))


def get_data(X, name="X"):
    """Return (data as float32 (n_epochs, n_chans, n_times), info or None, metadata or None).

    2-D arrays are read as single-channel signals, shape (n_epochs, 1, n_times).
    A list of Epochs (what scikit-learn's cross-validation makes of an Epochs
    object when it indexes it) is joined back into one.
    """
    info = metadata = None
    if isinstance(X, (list, tuple)) and len(X) and all(is_epochs(e) for e in X):
        X = _join_epochs(X)
    if hasattr(X, "toarray") or type(X).__module__.startswith("scipy.sparse"):
        raise TypeError(f"Sparse input is not supported; pass {name} as a dense array.")
    if is_epochs(X):
        if len(X) == 0:
            raise ValueError(f"{name} holds no epochs (all dropped?).")
        info, metadata = X.info, X.metadata
        data = X.get_data(picks="data", copy=False)
    elif hasattr(X, "__array__") or isinstance(X, (list, tuple)):
        data = np.asarray(X)
    else:
        raise TypeError(
            f"{name} must be mne.Epochs or an array of shape (n_epochs, n_chans, "
            f"n_times), got {type(X).__name__}."
        )
    if np.iscomplexobj(data):
        raise ValueError(f"Complex data not supported; pass the real EEG signal as {name}.")
    if not np.issubdtype(data.dtype, np.number):
        try:
            data = data.astype(np.float64)
        except (TypeError, ValueError) as err:
            raise TypeError(f"{name} must hold real numbers ({err}).") from err
    if data.ndim == 2:
        data = data[:, None, :]
    if data.ndim != 3:
        raise ValueError(
            f"{name} must be 3-D (n_epochs, n_chans, n_times) or mne.Epochs, got "
            f"an array of shape {data.shape}."
        )
    if data.shape[0] == 0:
        raise ValueError(f"{name} holds no epochs.")
    check_finite(data, name)
    return data.astype(np.float32, copy=False), info, metadata


class _JoinedEpochs:
    """The parts of an Epochs object that estimators read: data, info, metadata."""

    def __init__(self, data, info, metadata):
        self._data, self.info, self.metadata = data, info, metadata

    def __len__(self):
        return len(self._data)

    def get_data(self, picks=None, copy=False):
        return self._data


def _join_epochs(parts):
    import pandas as pd

    names = list(parts[0].ch_names)
    if any(list(e.ch_names) != names for e in parts):
        raise ValueError("The Epochs in the list have different channels.")
    data = np.concatenate([e.get_data(picks="data") for e in parts])
    metadata = None
    if parts[0].metadata is not None:
        metadata = pd.concat([e.metadata for e in parts], ignore_index=True)
    return _JoinedEpochs(data, parts[0].info, metadata)


def check_same_signal(data, info, fitted, name="X"):
    """Raise if channels, times or sampling rate differ from those seen in fit."""
    if info is not None and fitted.get("sfreq") is not None:
        if not np.isclose(info["sfreq"], fitted["sfreq"]):
            raise ValueError(
                f"{name} is sampled at {info['sfreq']} Hz but the estimator was "
                f"fitted at {fitted['sfreq']} Hz; resample with "
                f"epochs.resample({fitted['sfreq']})."
            )
        if fitted.get("ch_names") is not None and list(info["ch_names"]) != fitted["ch_names"]:
            raise ValueError(
                f"{name}'s {len(info['ch_names'])} channel names or their order differ "
                f"from the {len(fitted['ch_names'])} seen in fit; pick and order them "
                "with epochs.reorder_channels(estimator.ch_names_)."
            )
    _, n_chans, n_times = data.shape
    if n_chans != fitted["n_chans"] or n_times != fitted["n_times"]:
        raise ValueError(
            f"{name} has {n_chans} channels x {n_times} times but the estimator "
            f"was fitted on {fitted['n_chans']} x {fitted['n_times']}. Pick the "
            "same channels and crop/resample to the same window as in fit."
        )


def resolve_stimuli(n_epochs, metadata, images, captions, y, image_column,
                    caption_column, caption_template, need_images, need_captions):
    """Per-epoch stimulus images (arrays or paths) and captions.

    Explicit ``images``/``captions`` win over ``metadata`` columns; captions
    fall back to ``caption_template`` over the class name (metadata column
    ``class_name``, else ``y``).
    """
    def per_epoch(values, what):
        values = list(values) if not isinstance(values, np.ndarray) else values
        if len(values) != n_epochs:
            raise ValueError(
                f"Got {len(values)} {what} for {n_epochs} epochs; pass one per epoch."
            )
        return values

    columns = [] if metadata is None else list(metadata.columns)
    if images is None and need_images:
        if image_column not in columns:
            raise ValueError(
                f"No stimulus images: epochs.metadata has no {image_column!r} column "
                f"(columns: {columns}). Add a column of image paths, pass "
                "images=... to fit, or set contrastive_weight=0 to train without images."
            )
        images = metadata[image_column].to_numpy()
        missing = [i for i, v in enumerate(images) if not isinstance(v, str)]
        if missing:
            raise ValueError(
                f"{len(missing)} epochs have no image path in metadata[{image_column!r}] "
                f"(first: epoch {missing[0]}); drop them or pass images=..."
            )
    if images is not None:
        images = per_epoch(images, "images")

    if captions is None and need_captions:
        if caption_column in columns:
            captions = metadata[caption_column].astype(str).to_numpy()
        elif "class_name" in columns:
            captions = [caption_template.format(c) for c in metadata["class_name"]]
        elif y is not None:
            captions = [caption_template.format(c) for c in np.asarray(y)]
        else:
            raise ValueError(
                "No captions: add a 'caption' or 'class_name' column to "
                "epochs.metadata, pass captions=... or class labels y, or set "
                "align_weight=0."
            )
    if captions is not None:
        captions = per_epoch(captions, "captions")
    return images, captions
