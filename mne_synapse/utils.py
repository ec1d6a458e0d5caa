"""Small shared helpers: cache folder, verbosity, hashing, validation, atomic writes."""

import hashlib
import json
import os
import re
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


def show_progress(verbose):
    """Whether to draw progress bars: at info level (MNE's rules) and on a terminal only.

    A bar redrawn into a log file or a notebook capture is hundreds of lines of
    noise, so a stream that is not a terminal gets none, whatever ``verbose``.
    """
    import sys

    return is_verbose(verbose) and _is_terminal(sys.stderr)


def _is_terminal(stream):
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


# Colour codes (skorch colours the best loss of its epoch table).
_ANSI_CODES = re.compile(r"\x1b\[[0-9;]*m")


class LogSink:
    """Write lines (skorch's epoch table) through MNE's logger at info level.

    What prints then follows ``verbose`` and MNE's log level (``mne.set_log_level``,
    ``mne.set_log_file``) like any MNE message, and colour codes are kept only
    when the log goes to a terminal.

    Parameters
    ----------
    verbose : bool | str | int | None
        MNE-style verbosity of the estimator (None: MNE's current level).
    """

    def __init__(self, verbose=None):
        self.verbose = verbose

    def __call__(self, text):
        from mne.utils import logger, use_log_level

        if not any(_is_terminal(getattr(h, "stream", None)) for h in logger.handlers):
            text = _ANSI_CODES.sub("", text)
        with use_log_level(self.verbose):
            logger.info(text)


class quiet_libraries:
    """Silence what libraries we call say that users cannot act on.

    Inside the block, Python warnings are ignored and records logged straight
    to the root logger (``logging.error(...)``, as open_clip does before raising)
    are dropped, so that our own error message, raised after the block, is the
    first thing a user reads. Loggers of other names are left alone.
    """

    def __enter__(self):
        import logging
        import warnings

        self._root = logging.getLogger()
        # A NullHandler keeps logging.error() from installing a handler of its own.
        self._null = logging.NullHandler() if not self._root.handlers else None
        if self._null is not None:
            self._root.addHandler(self._null)
        self._root.addFilter(_drop_record)
        self._warnings = warnings.catch_warnings()
        self._warnings.__enter__()
        warnings.simplefilter("ignore")
        return self

    def __exit__(self, *exc):
        self._warnings.__exit__(*exc)
        self._root.removeFilter(_drop_record)
        if self._null is not None:
            self._root.removeHandler(self._null)
        return False


def _drop_record(record):
    return False


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


def fingerprint(params, *arrays):
    """SHA-256 hex digest of a JSON-serialisable dict and arrays (cache keys, run identities)."""
    digest = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode())
    for array in arrays:
        if array is None:
            digest.update(b"none")
            continue
        array = np.ascontiguousarray(array)
        digest.update(f"{array.shape}{array.dtype.str}".encode())
        digest.update(array.tobytes())
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
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; use normal permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return path


def write_folder(path, write_fn, overwrite=False):
    """Write a whole folder so that nothing half written is ever at ``path``.

    ``write_fn(tmp)`` fills a temporary folder beside ``path``; its files are
    fsynced and it is renamed to ``path``. An existing ``path`` is refused
    unless it is empty or ``overwrite``; then it is moved aside, replaced and
    deleted (a crash between the two renames leaves it as ``.<name>.old-*``).

    Returns
    -------
    path : pathlib.Path
        The folder.
    """
    import shutil

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"{path} is a file; pass a folder.")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise FileExistsError(f"{path} exists and is not empty; pass overwrite=True to "
                              "replace it, or another folder.")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    old = None
    try:
        write_fn(tmp)
        for file in tmp.rglob("*"):
            if file.is_file():
                with open(file, "rb+") as fid:
                    os.fsync(fid.fileno())
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700 folders
        if path.is_dir():
            old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.old-"))
            os.replace(path, old / path.name)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not path.exists():
            os.replace(old / path.name, path)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    _fsync_dir(path.parent)
    return path


def _umask():
    umask = os.umask(0)
    os.umask(umask)
    return umask


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


def hash_file(path, chunk_size=1 << 20):
    """SHA-256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fid:
        for chunk in iter(lambda: fid.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()
