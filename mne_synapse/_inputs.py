"""Turn what users pass (Epochs or arrays, metadata, images) into checked arrays.

Shared by every estimator, so that a bad input gets the same clear error
wherever it enters.
"""

import numpy as np

from ._paper import INPUT_HINT
from .utils import check_finite


def is_epochs(X):
    from mne import BaseEpochs

    return isinstance(X, (BaseEpochs, _JoinedEpochs))


def get_data(X, name="X", lazy=False):
    """Return (data as float32 (n_epochs, n_chans, n_times), info or None, metadata or None).

    A list of Epochs (what scikit-learn's cross-validation makes of an Epochs
    object when it indexes it) is joined back into one. With ``lazy=True``, a
    memory-mapped array or ``mne.Epochs(preload=False)`` is returned as a
    :class:`LazyEEG` that reads epochs on demand instead of as one array.
    """
    info = metadata = None
    if isinstance(X, (list, tuple)) and len(X) and all(is_epochs(e) for e in X):
        X = _join_epochs(X)
    if hasattr(X, "toarray") or type(X).__module__.startswith("scipy.sparse"):
        raise TypeError(f"Sparse input is not supported; pass {name} as a dense array.")
    if lazy and (isinstance(X, np.memmap) or (is_epochs(X) and not getattr(X, "preload", True))):
        data = LazyEEG(X, name)
        if is_epochs(X):
            info, metadata = X.info, X.metadata
        return data, info, metadata
    if is_epochs(X):
        _check_not_empty(X, name)
        info, metadata = X.info, X.metadata
        data = X.get_data(picks="data", copy=False)
    elif hasattr(X, "__array__") or isinstance(X, (list, tuple)):
        try:
            data = np.asarray(X)
        except ValueError as err:  # ragged nested lists
            raise ValueError(
                f"{name} could not be read as an array ({err}). Pass a 3-D array "
                "(n_epochs, n_chans, n_times) of equal-length epochs, or mne.Epochs."
            ) from err
    else:
        raise TypeError(
            f"{name} must be mne.Epochs or an array of shape (n_epochs, n_chans, "
            f"n_times), got {type(X).__name__}."
        )
    data = _check_dtype(data, name)
    _check_shape(data.shape, name)
    check_finite(data, name)
    return data.astype(np.float32, copy=False), info, metadata


def _check_not_empty(epochs, name):
    if not getattr(epochs, "preload", True):
        epochs.drop_bad(verbose=False)  # mne.Epochs only know their length after this
    if len(epochs) == 0:
        raise ValueError(
            f"{name} holds no epochs: all were dropped or none were selected. See "
            "epochs.drop_log (epochs.plot_drop_log()) and loosen reject=/flat= or "
            "the event selection."
        )


def _check_dtype(data, name):
    if np.iscomplexobj(data):
        raise ValueError(f"Complex data not supported; pass the real EEG signal as {name}.")
    if not np.issubdtype(data.dtype, np.number):
        try:
            data = data.astype(np.float64)
        except (TypeError, ValueError) as err:
            raise TypeError(f"{name} must hold real numbers ({err}).") from err
    return data


def _check_shape(shape, name):
    if len(shape) == 2:
        raise ValueError(
            f"{name} is 2-D, shape {tuple(shape)}, but EEG epochs are 3-D (n_epochs, "
            f"n_chans, n_times): pass one epoch as {name}[np.newaxis], single-channel "
            f"epochs as {name}[:, np.newaxis, :], or mne.Epochs."
        )
    if len(shape) != 3:
        raise ValueError(
            f"{name} must be 3-D (n_epochs, n_chans, n_times) or mne.Epochs, got "
            f"an array of shape {tuple(shape)}."
        )
    if shape[0] == 0:
        raise ValueError(f"{name} holds no epochs; pass at least one.")
    if shape[1] == 0 or shape[2] == 0:
        raise ValueError(
            f"{name} has {shape[1]} channels x {shape[2]} times per epoch; pass "
            "epochs with at least one channel and one time sample."
        )


class LazyEEG:
    """EEG read in pieces: a memory-mapped array or ``mne.Epochs(preload=False)``.

    Indexing it (``lazy[start:stop]``, ``lazy[[3, 1, 4]]``) reads just those
    epochs and returns them as a checked float32 array, so data larger than
    memory can be streamed through training one batch at a time.

    Parameters
    ----------
    source : np.memmap | mne.Epochs
        Where the epochs are read from.
    name : str
        The name of the input in error messages.
    """

    ndim = 3
    dtype = np.dtype(np.float32)

    def __init__(self, source, name="X"):
        self.source, self.name = source, name
        if is_epochs(source):
            _check_not_empty(source, name)
            first = source.get_data(picks="data", item=[0], verbose=False)
            self.shape = (len(source), *first.shape[1:])
        else:
            _check_dtype(np.empty(0, source.dtype), name)
            self.shape = tuple(source.shape)
        _check_shape(self.shape, name)

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, index):
        idx = np.arange(len(self))[index]
        scalar = np.ndim(idx) == 0
        idx = np.atleast_1d(idx)
        if is_epochs(self.source):
            data = self.source.get_data(picks="data", item=idx.tolist(), verbose=False)
        elif len(idx) and np.all(np.diff(idx) == 1):
            data = self.source[idx[0]:idx[-1] + 1]  # one contiguous read
        else:
            order = np.argsort(idx, kind="stable")  # read the file front to back
            data = np.asarray(self.source[idx[order]])[np.argsort(order, kind="stable")]
        data = _check_dtype(np.asarray(data), self.name).astype(np.float32, copy=False)
        check_finite(data, self.name)
        return data[0] if scalar else data


def channel_stats(data, chunk_size=64):
    """Per-channel mean and standard deviation over epochs and times.

    Reads ``data`` (an array or a :class:`LazyEEG`) a chunk of epochs at a
    time and merges the chunks in float64 (Chan et al.'s pairwise update), so
    the result is the same whether the data are in memory or on disk.

    Returns
    -------
    mean, std : ndarray, shape (n_chans, 1), float32
        ``std`` has 1e-12 added so that flat channels do not divide by zero.
    """
    n_chans, n_times = data.shape[1:]
    count, mean, m2 = 0, np.zeros(n_chans), np.zeros(n_chans)
    for start in range(0, len(data), chunk_size):
        x = np.asarray(data[start:start + chunk_size], dtype=np.float64)
        n = x.shape[0] * n_times
        x_mean = x.mean(axis=(0, 2))
        x_m2 = ((x - x_mean[:, None]) ** 2).sum(axis=(0, 2))
        delta = x_mean - mean
        total = count + n
        mean = mean + delta * (n / total)
        m2 = m2 + x_m2 + delta ** 2 * (count * n / total)
        count = total
    std = np.sqrt(m2 / count)
    return mean.astype(np.float32)[:, None], (std.astype(np.float32) + np.float32(1e-12))[:, None]


def check_device(device):
    """Raise a ValueError naming the fix if ``device`` is not a usable torch device."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device={device!r} is not a torch device ({err}); use 'cpu' "
                         "or 'cuda'.") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} but torch sees no CUDA GPU (torch.cuda.is_available() "
            "is False); use device='cpu' or install a CUDA build of torch."
        )
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device={device!r} but MPS is not available; use device='cpu'.")
    return dev


# -- parameters: one wording for every estimator's checks ------------------------------
def _is_number(value):
    """Finite and real; bools are not numbers here."""
    return (isinstance(value, (int, float, np.integer, np.floating))
            and not isinstance(value, (bool, np.bool_)) and bool(np.isfinite(value)))


def check_number(value, name, interval="[0, inf)"):
    """Raise a ValueError unless ``value`` is a finite number in ``interval`` (e.g. ``'[0, 1)'``)."""
    low, high = (float(v) for v in interval[1:-1].split(","))
    ok = _is_number(value) and (low <= value if interval[0] == "[" else low < value) and (
        value <= high if interval[-1] == "]" else value < high)
    if not ok:
        what = "a number >= 0 and finite" if interval == "[0, inf)" else f"a number in {interval}"
        raise ValueError(f"{name} must be {what}, got {value!r}.")
    return value


def check_int(value, name, low=1):
    """Raise a ValueError unless ``value`` is an integer >= ``low`` (bools are not)."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}.")
    return value


def check_option(value, name, options):
    """Raise a ValueError unless ``value`` is one of ``options``.

    A dict of options (a registry such as ``PRESETS``) is named by its sorted
    keys; a tuple is spelled out (``'a', 'b' or None``).
    """
    if value not in options:
        if isinstance(options, dict):
            allowed = f"one of {sorted(options)}"
        else:
            names = [repr(o) for o in options]
            allowed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
        raise ValueError(f"{name} must be {allowed}, got {value!r}.")
    return value


def check_module_kwargs(module_kwargs, module_class, from_data=(), refused=None):
    """Raise unless ``module_kwargs`` are keyword arguments of ``module_class``.

    ``from_data`` names the arguments the estimator takes from the data; they
    cannot be set by hand. ``refused`` maps other arguments the estimator
    cannot take to the reason.
    """
    import inspect

    if not isinstance(module_kwargs, dict):
        raise TypeError(f"module_kwargs must be a dict or None, got "
                        f"{type(module_kwargs).__name__}.")
    for key, reason in (refused or {}).items():
        if key in module_kwargs:
            raise ValueError(f"module_kwargs cannot set {key!r}: {reason}.")
    allowed = set(inspect.signature(module_class.__init__).parameters) - {"self", *from_data}
    unknown = sorted(set(module_kwargs) - allowed)
    if unknown:
        raise ValueError(
            f"module_kwargs has unknown or data-given key(s) {unknown}; "
            f"use {sorted(allowed)} ({sorted(from_data)} come from the data)."
        )
    return module_kwargs


def noise_generator(random_state):
    """The torch generator of sampling noise: ``torch.Generator().manual_seed(s)`` for an int ``s``.

    That is what diffusers users pass a pipeline, so equal seeds give equal
    noise here and there; None or a ``RandomState`` draws the seed.
    """
    import torch
    from sklearn.utils import check_random_state

    if not isinstance(random_state, (int, np.integer)) or isinstance(random_state, bool):
        random_state = check_random_state(random_state).randint(2**31 - 1)
    return torch.Generator().manual_seed(int(random_state))


def check_accelerator(accelerator, grad_accumulation=None, mixed_precision=None):
    """Raise unless ``accelerator`` is None or an ``accelerate.Accelerator``.

    With ``grad_accumulation`` and ``mixed_precision`` (an estimator's), the
    accelerator must use the same (a ValueError says how to match them).
    """
    if accelerator is not None and not hasattr(accelerator, "prepare"):
        raise TypeError(f"accelerator must be an accelerate.Accelerator or None, got "
                        f"{type(accelerator).__name__}.")
    acc = accelerator
    if acc is not None and grad_accumulation is not None and (
            acc.gradient_accumulation_steps != grad_accumulation
            or str(acc.mixed_precision) != mixed_precision):
        raise ValueError(
            f"The accelerator accumulates {acc.gradient_accumulation_steps} step(s) in "
            f"mixed precision {str(acc.mixed_precision)!r}, but grad_accumulation="
            f"{grad_accumulation} and mixed_precision={mixed_precision!r}; "
            "set the same on both, e.g. Accelerator(gradient_accumulation_steps="
            f"{grad_accumulation}, mixed_precision={mixed_precision!r}).")
    return accelerator


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
            raise ValueError(channel_advice(list(info["ch_names"]), fitted["ch_names"], name))
    _, n_chans, n_times = data.shape
    if n_chans != fitted["n_chans"] or n_times != fitted["n_times"]:
        raise ValueError(
            f"{name} has {n_chans} channels x {n_times} times but the estimator "
            f"was fitted on {fitted['n_chans']} x {fitted['n_times']}. Pick the "
            "same channels and crop/resample to the same window as in fit."
        )


def check_paper_input(sizes, n_chans, n_times):
    """Raise, saying how to crop and which channels, unless the EEG fits the authors' network."""
    if (n_chans, n_times) != (sizes["n_chans"], sizes["n_times"]):
        raise ValueError(
            f"preset='paper' is the authors' network for EEG of {sizes['n_chans']} "
            f"electrodes x {sizes['n_times']} samples, got {n_chans} x {n_times}: "
            f"{INPUT_HINT}. To train their architecture at another size pass "
            "module_kwargs={'n_chans': ..., 'n_times': ...} (their released weights need "
            "128 x 440), or use preset='hybrid', which takes any montage and length.")


def channel_advice(names, fitted, name="X"):
    """What to do when the channels of ``name`` are not those seen in fit, in their order."""
    missing = [ch for ch in fitted if ch not in names]
    if not missing:
        return (f"{name}'s {len(names)} channels differ from the {len(fitted)} seen in fit "
                "(other channels or another order); select and order them with "
                "epochs.pick(estimator.ch_names_).")
    shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
    return (f"{name} lacks {len(missing)} of the {len(fitted)} channels seen in fit ({shown}). "
            "Interpolate them: epochs.interpolate_to(montage) onto the montage of the "
            "fitted channels (or add them, mark them bad and epochs.interpolate_bads()), "
            "then epochs.pick(estimator.ch_names_); or refit on the channels you have.")


def signal_rms(data, n_epochs=64):
    """Root mean square of the first ``n_epochs`` epochs: the order of magnitude of the units."""
    return float(np.sqrt(np.mean(np.square(np.asarray(data[:n_epochs], dtype=np.float64)))))


def check_scale(rms, fitted_rms, name="X", factor=100.0):
    """Warn when ``rms`` is orders of magnitude off the one seen in fit (volts vs microvolts)."""
    if not fitted_rms or not rms:
        return
    ratio = rms / fitted_rms
    if ratio > factor or ratio < 1 / factor:
        import warnings

        warnings.warn(
            f"{name}'s amplitude (RMS {rms:.3g}) is {ratio:.0e} times that seen in fit "
            f"({fitted_rms:.3g}): are the units different? mne.Epochs hold volts; arrays "
            "from braindecode or other tools are often in microvolts (x 1e6). Pass the "
            "data in the units of fit.", UserWarning, stacklevel=4)
