"""The Hugging Face hub side of a saved estimator folder, shared by both estimators.

:class:`HubMixin` gives ``save_pretrained`` (the folder of :mod:`._persistence`
plus a model card, :mod:`._model_card`), ``from_pretrained`` (a folder, or a hub
id downloaded to the hub cache, :func:`hub_folder`) and ``push_to_hub``.
"""

import tempfile
from pathlib import Path

from ._model_card import hub_id
from ._persistence import save_estimator
from .utils import is_main_process

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
