"""Saved folders of both estimators: files, hashes, checks.

A saved estimator is a folder with a JSON config and a safetensors file of
weights (no pickle anywhere):

- ``SynapseEncoder``: ``config.json`` + ``model.safetensors``;
- ``EEGImageGenerator``: ``generator.json`` + ``generator.safetensors`` (the
  adapter and the finetuned U-Net parameters) + ``encoder/``, a saved encoder.

Both also hold a model card, ``README.md``, so a folder is ready for the
Hugging Face hub (:class:`HubMixin`: ``save_pretrained``, ``from_pretrained``,
``push_to_hub``). The config names the estimator, the format version and the
parameters, and stores the SHA-256 of the weights, checked on load. All files
of a save are replaced as one atomic update (:func:`save_folder`). The
estimators say what goes into their files and how their modules are rebuilt;
everything else (writing, reading, checking, the hub, the error messages) is
here, once.
"""

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path

from .utils import _fsync_dir, atomic_write, hash_file, is_main_process

# 2: encoders record their network's class ("architecture"); preset "paper" is the
# authors' network (in format 1 it was ours at full size, read now as "hybrid").
FORMAT_VERSION = 2
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
    # Paths (e.g. clip_pretrained=Path(...)) are stored as strings.
    return {weights_name: weights, config_name: json.dumps(config, indent=1, default=os.fspath)}


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
    _refuse_other_folder(path, name)
    for file in (config_name, weights_name):
        if not (path / file).is_file():
            raise FileNotFoundError(f"{path / file} does not exist; is {path} a saved {noun} "
                                    f"(written by {name}.save_pretrained)?")
    config = _read_config(path / config_name, noun)
    if "estimator" not in config:
        raise ValueError(f"{path / config_name} names no mne-synapse estimator: {path} is "
                         "another library's folder (a torch module saved with "
                         "save_pretrained? load it with that class's from_pretrained).")
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


# A hub repository id, "user/name" (a local path is tried first).
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")
_CARD_DOC = """license : str | None
            Hub license identifier for the card, e.g. ``'mit'``; a model
            finetuned from Stable Diffusion inherits its license
            (``'openrail++'`` for SD 2.x).
        datasets : str | list of str | None
            Hub ids of the training data, e.g. ``'luigi-s/EEG_Image_CVPR_ALL_subj'``.
        metrics : dict of str to float | None
            Scores to report in the card, by metric name.
        tags : list of str | None
            Tags added to the estimator's own."""


class HubMixin:
    """Hugging Face hub conventions, shared by both estimators.

    A saved folder is a hub model repository: the estimator's files plus a
    model card (``README.md``). A subclass defines ``_saved_files()`` (its
    files by name), ``_card()`` (what its card says, keyword arguments of
    ``mne_synapse._model_card.model_card``), ``_load_folder(folder, **kwargs)``
    (a classmethod).
    """

    def save_pretrained(self, save_directory, *, repo_id=None, license=None, datasets=None,
                        metrics=None, tags=None):
        """Save to a folder that is ready for the Hugging Face hub.

        The folder holds the estimator's config (JSON) and weights
        (safetensors; the SHA-256 is stored and checked on load) and a model
        card, ``README.md``. All files are replaced as one atomic update: a save
        interrupted at any point leaves the previous files or the new ones,
        never a mix. In a distributed run (``accelerate launch``) only the main
        process writes; call ``accelerator.wait_for_everyone()`` before others
        read.

        Parameters
        ----------
        save_directory : path-like
            The folder (created if needed).
        repo_id : str | None
            The hub name the card's loading snippet uses.
        %(card)s

        Returns
        -------
        path : pathlib.Path
            The folder.
        """
        from sklearn.utils.validation import check_is_fitted

        from ._model_card import model_card

        check_is_fitted(self)
        files = self._saved_files()
        card = self._card()
        card["tags"] = [*card["tags"], *(tags or ())]
        files["README.md"] = model_card(type(self).__name__, repo_id=repo_id, license=license,
                                        datasets=datasets, metrics=metrics, **card)
        return save_estimator(save_directory, files)

    def save(self, path):
        """Save to the folder ``path``: :meth:`save_pretrained` with a default card."""
        return self.save_pretrained(path)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *, revision=None, cache_dir=None,
                        token=None, force_download=False, local_files_only=False, **kwargs):
        """Load from a folder written by :meth:`save_pretrained`, or from the hub.

        Parameters
        ----------
        pretrained_model_name_or_path : path-like | str
            A folder, or a Hugging Face hub id (``'user/repo'``) that is
            downloaded (to the hub cache) when no folder of that name exists.
        revision, cache_dir, token, force_download, local_files_only
            Passed to :func:`huggingface_hub.snapshot_download`. With
            ``HF_HUB_OFFLINE=1`` only the hub cache is read.
        **kwargs
            Passed to :meth:`load`: ``device`` (both estimators) and
            ``base_model`` (``EEGImageGenerator``).

        Raises
        ------
        FileNotFoundError
            If there is no such folder and the hub cannot give it (offline,
            no network, no such repository).
        ValueError
            If the folder holds another estimator, another format version, or
            a corrupt or modified file.
        """
        folder = hub_folder(pretrained_model_name_or_path, cls.__name__, revision=revision,
                            cache_dir=cache_dir, token=token, force_download=force_download,
                            local_files_only=local_files_only)
        return cls._load_folder(folder, **kwargs)

    @classmethod
    def load(cls, path, **kwargs):
        """Load from a folder (or hub id): :meth:`from_pretrained` with its defaults."""
        return cls.from_pretrained(path, **kwargs)

    def push_to_hub(self, repo_id, *, commit_message="Upload with mne-synapse", private=None,
                    token=None, revision=None, create_pr=False, license=None, datasets=None,
                    metrics=None, tags=None):
        """Save to a temporary folder (:meth:`save_pretrained`) and upload it as one commit.

        Parameters
        ----------
        repo_id : str
            The hub repository, ``'user/repo'`` (created if needed).
        commit_message : str
            The commit message.
        private : bool | None
            Visibility of a new repository (None: the account's default).
        token : str | None
            Hub token (None: the one saved by ``hf auth login``).
        revision : str | None
            Branch to push to (None: ``main``).
        create_pr : bool
            Open a pull request instead of committing to the branch.
        %(card)s

        Returns
        -------
        commit : huggingface_hub.CommitInfo | None
            The commit (None on the non-main processes of a distributed run).
        """
        from huggingface_hub import HfApi, constants

        if constants.HF_HUB_OFFLINE:
            raise OSError(f"Cannot push to {repo_id!r}: the Hugging Face hub is offline "
                          "(HF_HUB_OFFLINE=1). Save with save_pretrained(folder) and upload "
                          "the folder where there is a network (hf upload).")
        if not is_main_process():
            return None
        with tempfile.TemporaryDirectory() as tmp:
            folder = self.save_pretrained(Path(tmp) / "model", repo_id=repo_id, license=license,
                                          datasets=datasets, metrics=metrics, tags=tags)
            api = HfApi(token=token)
            repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
            return api.upload_folder(repo_id=repo_id, folder_path=folder,
                                     commit_message=commit_message, revision=revision,
                                     create_pr=create_pr)


for _method in (HubMixin.save_pretrained, HubMixin.push_to_hub):
    _method.__doc__ = _method.__doc__ % dict(card=_CARD_DOC)


def hub_id(name):
    """``name`` if it can only be a hub repository id (``'user/repo'``, no such local path), else None."""
    if isinstance(name, str) and _REPO_ID.fullmatch(name) and not Path(name).exists():
        return name
    return None


def hub_folder(name_or_path, noun, revision=None, cache_dir=None, token=None,
               force_download=False, local_files_only=False):
    """The local folder of a saved estimator: the folder itself, or a hub download.

    A string naming no local folder that looks like a hub id (``'user/repo'``)
    is fetched with :func:`huggingface_hub.snapshot_download`; offline
    (``HF_HUB_OFFLINE=1``) only the hub cache is read, so it fails at once.
    """
    path = Path(name_or_path)
    if path.is_dir():
        return path
    if path.exists():
        raise NotADirectoryError(f"{path} is a file; pass the folder written by "
                                 f"{noun}.save_pretrained.")
    repo_id = hub_id(name_or_path)
    if repo_id is None:
        raise FileNotFoundError(f"{name_or_path} does not exist, and is not a Hugging Face hub "
                                f"id ('user/repo') either; pass the folder written by "
                                f"{noun}.save_pretrained.")
    from huggingface_hub import constants, snapshot_download

    from . import __version__

    offline = bool(constants.HF_HUB_OFFLINE)
    try:
        return Path(snapshot_download(
            repo_id, revision=revision, cache_dir=cache_dir, token=token,
            force_download=force_download, local_files_only=local_files_only or offline,
            library_name="mne-synapse", library_version=__version__))
    except (OSError, ValueError) as err:
        why = ("the Hugging Face hub is offline (HF_HUB_OFFLINE=1) and the hub cache does "
               "not hold it" if offline else
               "local_files_only=True and the hub cache does not hold it" if local_files_only
               else "the Hugging Face hub could not give it")
        reason = (str(err).strip().splitlines() or [""])[0]
        raise FileNotFoundError(
            f"Cannot load the {noun} {repo_id!r}: no folder of that name exists here and {why} "
            f"({type(err).__name__}: {reason}). Pass a local folder, or download the repository "
            f"where there is a network (hf download {repo_id} --local-dir <folder>) and pass "
            "that folder.") from err


def _read_config(file, noun):
    try:
        config = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{file} is corrupt ({err}); save the {noun} again.") from err
    if not isinstance(config, dict):
        raise ValueError(f"{file} is not a {noun} config; save the {noun} again.")
    return _from_format_1(config) if config.get("format_version") == 1 else config


def _refuse_other_folder(path, name):
    """Raise if ``path`` is a folder of another kind, naming what loads it."""
    if (path / "model_index.json").is_file():
        raise ValueError(f"{path} is a stock diffusers pipeline (model_index.json), e.g. "
                         "written by EEGImageGenerator.export_diffusers; load it with "
                         "diffusers.StableDiffusionPipeline.from_pretrained.")
    other = "EEGImageGenerator" if name == "SynapseEncoder" else "SynapseEncoder"
    file = path / _LAYOUT[other][0]
    if file.is_file():
        try:
            held = json.loads(file.read_text()).get("estimator")
        except (ValueError, UnicodeDecodeError, AttributeError):
            held = None
        if held == other:
            where = (f" (its encoder is in the {ENCODER_FOLDER!r} folder)"
                     if other == "EEGImageGenerator" else "")
            raise ValueError(f"{path} is a saved {other}, not a saved {name}; load it "
                             f"with {other}.from_pretrained{where}.")


def _from_format_1(config):
    """A format-1 config in format 2: before the authors' network, every encoder was ours."""
    config = dict(config, format_version=FORMAT_VERSION)
    if config.get("estimator") == "SynapseEncoder" and isinstance(config.get("params"), dict):
        preset = {"paper": "hybrid"}.get(config["params"].get("preset"))
        config["params"] = dict(config["params"], **({"preset": preset} if preset else {}))
        config.setdefault("architecture", "SynapseAutoencoder")
    return config


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
