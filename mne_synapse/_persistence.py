"""Saved folders of both estimators: files, hashes, checks.

A saved estimator is a folder with a JSON config and a safetensors file of
weights (no pickle anywhere):

- ``SynapseEncoder``: ``config.json`` + ``model.safetensors``;
- ``EEGImageGenerator``: ``generator.json`` + ``generator.safetensors`` (the
  adapter and the finetuned U-Net parameters) + ``encoder/``, a saved encoder.

The config names the estimator, the format version and the parameters, and
stores the SHA-256 of the weights, checked on load. All files of a save are
replaced as one atomic update (:func:`save_folder`). The estimators say what
goes into their files and how their modules are rebuilt; everything else
(writing, reading, checking, the error messages) is here, once.
"""

import hashlib
import json
import os
from pathlib import Path

from .utils import _fsync_dir, atomic_write, hash_file, is_main_process

FORMAT_VERSION = 1
# (config, weights) file names and the word users know each estimator by.
_LAYOUT = {
    "SynapseEncoder": ("config.json", "model.safetensors", "encoder"),
    "EEGImageGenerator": ("generator.json", "generator.safetensors", "generator"),
}
ENCODER_FOLDER = "encoder"  # where a generator keeps its encoder


def estimator_files(name, params, state, **fields):
    """The files of a saved estimator, by name: its config (JSON) and its weights.

    Parameters
    ----------
    name : str
        ``'SynapseEncoder'`` or ``'EEGImageGenerator'``.
    params : dict
        ``get_params()`` values that are JSON (the others are the caller's to drop).
    state : dict of str to torch.Tensor
        The weights.
    **fields
        More config entries (signal sizes, statistics, the base model, ...).
    """
    from safetensors.torch import save

    config_name, weights_name, _ = _LAYOUT[name]
    weights = save({k: v.detach().cpu().contiguous() for k, v in state.items()})
    config = dict(format_version=FORMAT_VERSION, estimator=name, params=params, **fields,
                  weights_sha256=hashlib.sha256(weights).hexdigest())
    return {weights_name: weights, config_name: json.dumps(config, indent=1)}


def save_estimator(path, files):
    """Write ``files`` into the folder ``path`` atomically, on the main process only.

    In a distributed run (``accelerate launch``) the other processes write
    nothing; call ``accelerator.wait_for_everyone()`` before they read.
    """
    if not is_main_process():
        return Path(path)
    return save_folder(path, files)


def load_estimator(cls, path, device, required=()):
    """Read and check a saved estimator; return ``(estimator, config, state)``.

    ``estimator`` is ``cls`` built with the saved parameters (and ``device``),
    not yet fitted; ``state`` holds the weights (CPU tensors). ``required``
    lists the config keys the caller reads besides ``params``.

    Raises
    ------
    FileNotFoundError
        If ``path`` is not a saved ``cls``.
    ValueError
        If a file is corrupt, truncated or modified (hash mismatch), or was
        written by another format version or with parameters ``cls`` lacks.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    name = cls.__name__
    config_name, weights_name, noun = _LAYOUT[name]
    path = Path(path)
    if path.is_dir():
        finish_interrupted_save(path)
    if name == "SynapseEncoder" and (path / _LAYOUT["EEGImageGenerator"][0]).is_file():
        raise ValueError(f"{path} holds an EEGImageGenerator; load it with "
                         f"EEGImageGenerator.load (its encoder is in the "
                         f"{ENCODER_FOLDER!r} folder).")
    for file in (config_name, weights_name):
        if not (path / file).is_file():
            raise FileNotFoundError(f"{path / file} does not exist; is {path} a saved {noun} "
                                    f"(written by {name}.save)?")
    try:
        config = json.loads((path / config_name).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path / config_name} is corrupt ({err}); save the {noun} "
                         "again.") from err
    if not isinstance(config, dict):
        raise ValueError(f"{path / config_name} is not a {noun} config; save the {noun} "
                         "again.")
    if config.get("estimator") != name or config.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path} holds a {config.get('estimator')} saved in format "
            f"{config.get('format_version')}; this version reads {name} format "
            f"{FORMAT_VERSION}: save it again with a matching version of mne-synapse."
        )
    missing = [k for k in ("params", *required, "weights_sha256") if k not in config]
    if missing:
        raise ValueError(f"{path / config_name} lacks {missing}; save the {noun} again.")
    if hash_file(path / weights_name) != config["weights_sha256"]:
        raise ValueError(f"{path / weights_name} does not match the hash in {config_name} "
                         f"(truncated or overwritten); save the {noun} again.")
    params = dict(config["params"], device=device)
    unknown = sorted(set(params) - set(cls().get_params()))
    if unknown:
        raise ValueError(f"{path} was saved with parameters {unknown} that this version "
                         f"of {name} does not have; load it with the version that saved it.")
    estimator = cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in params.items()})
    try:
        state = load_file(path / weights_name)
    except SafetensorError as err:
        raise ValueError(f"{path / weights_name} is unreadable ({err}); save the {noun} "
                         "again.") from err
    return estimator, config, state


def mismatch_reason(err):
    """The last line of a weights-loading error (torch lists every key before it)."""
    return ([""] + str(err).strip().splitlines())[-1].strip()


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
