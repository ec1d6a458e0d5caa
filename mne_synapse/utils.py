"""Small shared helpers: cache folder, validation and atomic file writes."""

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

CACHE_CONFIG_KEY = "MNE_SYNAPSE_CACHE"


def get_cache_dir(subdir=None):
    """Return the folder where mne-synapse caches data sets and embeddings.

    The location is, in order: the ``MNE_SYNAPSE_CACHE`` environment variable,
    the ``MNE_SYNAPSE_CACHE`` key of the MNE config (``mne.set_config``), or
    ``~/mne_data/mne_synapse``. It is never inside the package or repository.

    Parameters
    ----------
    subdir : str | None
        A sub-folder to return (created if needed).

    Returns
    -------
    path : pathlib.Path
        The cache folder.
    """
    root = os.environ.get(CACHE_CONFIG_KEY)
    if not root:
        import mne

        root = mne.get_config(CACHE_CONFIG_KEY) or str(
            Path("~/mne_data/mne_synapse").expanduser()
        )
    path = Path(root).expanduser()
    if subdir is not None:
        path = path / subdir
    path.mkdir(parents=True, exist_ok=True)
    return path


def is_verbose(verbose):
    """Whether an MNE-style ``verbose`` value asks for info-level output."""
    import logging

    import mne

    if verbose is None:
        return mne.utils.logger.level <= logging.INFO
    if isinstance(verbose, bool):
        return verbose
    if isinstance(verbose, str):
        return logging.getLevelName(verbose.upper()) <= logging.INFO
    return verbose <= logging.INFO


def is_main_process():
    """False on all but the first process of a distributed run (``accelerate launch``).

    Estimators write files only on the main process, so that the processes of
    a data-parallel run do not all write the same files.
    """
    import sys

    if "torch" not in sys.modules:  # no torch, no process group
        return True
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def hash_params(params):
    """Stable short hash of a JSON-serialisable dict (used as a cache key)."""
    blob = json.dumps(params, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def hash_file(path, chunk_size=1 << 20):
    """SHA-256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fid:
        for chunk in iter(lambda: fid.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_write(path, write_fn, mode="wb"):
    """Write a file so that an interrupted write never leaves it half-written.

    ``write_fn(fid)`` writes into a temporary file in the same folder, which is
    flushed, fsynced and then renamed over ``path`` (an atomic operation on
    POSIX and Windows), so a crash leaves either the old file or the new one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as fid:
            write_fn(fid)
            fid.flush()
            os.fsync(fid.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; use normal permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return path


def _fsync_dir(folder):
    """Make a rename in ``folder`` durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# A save of several files is committed by writing this journal; see save_folder.
_JOURNAL = ".save-journal.json"
_STAGED = ".staged"


def save_folder(path, files):
    """Write several files into a folder as one atomic update.

    Each file is first written (atomically) next to its final name with a
    ``.staged`` suffix; then a journal listing them is written atomically:
    that is the commit point. Then the staged files are renamed over the old
    ones and the journal is removed. A save interrupted before the commit
    leaves the previous files untouched (the staged ones are ignored and
    cleaned up by the next save); one interrupted after it is completed by
    :func:`finish_interrupted_save`, which every loader calls first. Either
    way the folder never holds a mix of old and new files once a loader has
    looked at it.

    Parameters
    ----------
    path : path-like
        The folder (created if needed).
    files : dict of str to bytes | str
        Contents by path relative to ``path`` (sub-folders allowed).
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    _roll_forward(path)
    # Left by a save that never committed: staged files and their temporaries.
    for stale in [*path.rglob(f"*{_STAGED}"), *path.rglob(".*.tmp")]:
        stale.unlink()
    for name, content in files.items():
        mode = "w" if isinstance(content, str) else "wb"
        atomic_write(path / (name + _STAGED), lambda fid, c=content: fid.write(c), mode=mode)
    atomic_write(path / _JOURNAL, lambda fid: fid.write(json.dumps(sorted(files))), mode="w")
    _roll_forward(path)
    return path


def finish_interrupted_save(path):
    """Complete a :func:`save_folder` that was interrupted after its commit point.

    Loaders call this first. Returns True if there was a save to complete.
    """
    try:
        return _roll_forward(Path(path))
    except OSError as err:
        raise ValueError(
            f"A save into {path} was interrupted after it was committed and cannot be "
            f"completed here ({err}); make the folder writable and load it again."
        ) from err


def _roll_forward(path):
    journal = path / _JOURNAL
    if not journal.is_file():
        return False
    try:
        names = json.loads(journal.read_text())
    except ValueError:
        # The journal is written atomically, so it is complete or absent;
        # an unreadable one was not written by save_folder.
        raise ValueError(
            f"{journal} is unreadable; delete it and the '*{_STAGED}' files next "
            "to it to get the previously saved files back."
        ) from None
    for name in names:
        staged = path / (name + _STAGED)
        if staged.is_file():  # already renamed if a completion was interrupted too
            os.replace(staged, path / name)
    for folder in {(path / name).parent for name in names}:
        _fsync_dir(folder)
    journal.unlink()
    return True


def check_finite(X, name="X"):
    """Raise a ValueError naming the fix if ``X`` holds NaN or infinite values."""
    X = np.asarray(X)
    if not np.all(np.isfinite(X)):
        n_bad = int(np.size(X) - np.count_nonzero(np.isfinite(X)))
        raise ValueError(
            f"{name} contains {n_bad} NaN or infinite values. Interpolate bad "
            "channels or drop bad epochs first (e.g. epochs.drop_bad(), "
            "raw.interpolate_bads())."
        )
    return X
