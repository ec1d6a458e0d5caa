"""Resumable Stage-1 training: one atomic checkpoint per epoch, as a skorch callback.

Imported only when ``SynapseEncoder(checkpoint_dir=...)`` fits. The checkpoint
holds everything the next epochs depend on (weights, optimizer and criterion
state, history, the global torch RNG that drives dropout and augmentation,
and the generator that orders the batches), so a resumed run ends with the
same weights as one that was never stopped.
"""

import json
from pathlib import Path

import torch
from skorch.callbacks import Callback
from skorch.history import History

from ._param_checks import without_options_off
from .utils import atomic_write, fingerprint

_FORMAT_VERSION = 1
FILE_NAME = "checkpoint.pt"


# Parameters a resumed run may change: they do not alter the trajectory.
_RESUMABLE = {"max_epochs", "verbose", "device", "callbacks", "checkpoint_dir", "cache_dir"}


def checkpoint_file(encoder, seed, shape, pair_of_epoch, unique_pairs, image_table, text_table):
    """``(file, fingerprint)`` of the checkpoint of an encoder's training run.

    The fingerprint hashes everything the trajectory depends on: the
    parameters (but :data:`_RESUMABLE`, and options that are off, so that
    checkpoints from before they existed still resume), the seed, the signal and the CLIP
    targets; the file lives in a sub-folder of ``checkpoint_dir`` named by it.
    """
    # A schedule over max_epochs changes with it: then a longer run is another run.
    resumable = _RESUMABLE - ({"max_epochs"} if encoder.lr_schedule else set())
    params = {k: v for k, v in without_options_off(encoder.get_params()).items()
              if k not in resumable}
    run = fingerprint(
        dict(params, seed=seed, shape=shape, sfreq=encoder.sfreq_, ch_names=encoder.ch_names_),
        encoder.scale_mean_, encoder.scale_std_, pair_of_epoch, unique_pairs,
        None if image_table is None else image_table.numpy(),
        None if text_table is None else text_table.numpy())
    return Path(encoder.checkpoint_dir) / run[:16] / FILE_NAME, run


def _json_default(value):
    return value.item() if hasattr(value, "item") else str(value)


class EpochCheckpoint(Callback):
    """Write the training state to ``fname`` after every epoch, atomically.

    Parameters
    ----------
    fname : path-like
        The checkpoint file.
    fingerprint : str
        the :func:`checkpoint_file` fingerprint of the run; a checkpoint of another run is refused.
    generator : torch.Generator
        The generator of the training batch order.
    """

    def __init__(self, fname, fingerprint, generator):
        self.fname = fname
        self.fingerprint = fingerprint
        self.generator = generator

    def on_epoch_end(self, net, **kwargs):
        state = dict(
            format_version=_FORMAT_VERSION, fingerprint=self.fingerprint,
            epoch=len(net.history), module=net.module_.state_dict(),
            optimizer=net.optimizer_.state_dict(), criterion=net.criterion_.state_dict(),
            history=json.dumps(net.history.to_list(), default=_json_default),
            torch_rng=torch.get_rng_state(), generator_rng=self.generator.get_state(),
        )
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        atomic_write(self.fname, lambda fid: torch.save(state, fid))


def restore(net, fname, fingerprint, generator):
    """Load the state saved by :class:`EpochCheckpoint` into an initialised net.

    Returns the number of epochs already trained (0 without a checkpoint).
    Loading uses ``torch.load(weights_only=True)``: tensors and plain Python
    values only, no arbitrary unpickling.
    """
    fname = Path(fname)
    if not fname.is_file():
        return 0
    fix = "delete it to train from scratch"
    try:
        state = torch.load(fname, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any reader failure means a bad file
        raise ValueError(
            f"The training checkpoint {fname} is unreadable ({type(err).__name__}: "
            f"{err}); {fix}."
        ) from err
    if not isinstance(state, dict) or state.get("format_version") != _FORMAT_VERSION:
        version = state.get("format_version") if isinstance(state, dict) else None
        raise ValueError(
            f"The training checkpoint {fname} has format {version}; this version of "
            f"mne-synapse writes format {_FORMAT_VERSION}: {fix}."
        )
    if state.get("fingerprint") != fingerprint:
        raise ValueError(
            f"The training checkpoint {fname} belongs to a run with other parameters "
            f"or data; {fix} or use another checkpoint_dir."
        )
    try:
        net.module_.load_state_dict(state["module"])
        net.optimizer_.load_state_dict(state["optimizer"])
        net.criterion_.load_state_dict(state["criterion"])
        net.history = History(json.loads(state["history"]))
        torch.set_rng_state(state["torch_rng"])
        generator.set_state(state["generator_rng"])
    except (KeyError, RuntimeError, ValueError, TypeError) as err:
        raise ValueError(
            f"The training checkpoint {fname} does not fit this model ({err}); {fix}."
        ) from err
    if "cuda_rng" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    _restore_best_scores(net)
    return int(state["epoch"])


def _restore_best_scores(net):
    """Let scoring callbacks know the best score so far, so '_best' flags continue."""
    for _, callback in net.callbacks_:
        name = getattr(callback, "name_", getattr(callback, "name", None))
        lower = getattr(callback, "lower_is_better", None)
        if not hasattr(callback, "best_score_") or lower is None or not isinstance(name, str):
            continue
        scores = [row[name] for row in net.history if name in row]
        if scores:
            callback.best_score_ = min(scores) if lower else max(scores)
