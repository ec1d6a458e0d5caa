"""Saved folders of both estimators: files, hashes, checks.

A saved estimator is a folder with a JSON config and a safetensors file of
weights (no pickle anywhere):

- ``SynapseEncoder``: ``config.json`` + ``model.safetensors``;
- ``EEGImageGenerator``: ``generator.json`` + ``generator.safetensors`` (the
  adapter and the finetuned U-Net parameters) + ``encoder/``, a saved encoder.

Both also hold a model card, ``README.md``, so a folder is ready for the
Hugging Face hub (:class:`~mne_synapse._hub.HubMixin`: ``save_pretrained``,
``from_pretrained``, ``push_to_hub``; the card: :mod:`mne_synapse._model_card`).
The config names the estimator, the format version and the parameters, and
stores the SHA-256 of the weights, checked on load. All files of a save are
replaced as one atomic update (:func:`save_folder`). What each estimator saves
and how its fitted state comes back are here too (:func:`encoder_files`,
:func:`restore_encoder`, :func:`generator_files`, :func:`restore_generator`);
everything else (writing, reading, checking, the error messages) is here, once.
"""

import hashlib
import json
import os
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


# -- each estimator's files, and how its fitted state comes back ---------------------
# Alignment matrices are stored beside the encoder's weights under this key prefix.
_WHITENER_PREFIX = "alignment_whitener."


def encoder_files(encoder):
    """The files of a fitted encoder's saved folder, by name: config + weights."""
    import torch

    state = dict(encoder.net_.module_.state_dict())
    for subject, matrix in (encoder.whiteners_ or {}).items():
        state[_WHITENER_PREFIX + subject] = torch.as_tensor(matrix)
    return estimator_files(
        "SynapseEncoder", encoder._saved_params(), state,
        architecture=type(encoder.net_.module_).__name__, module_kwargs=encoder.module_kwargs_,
        n_chans=encoder.n_chans_, n_times=encoder.n_times_, sfreq=encoder.sfreq_,
        ch_names=encoder.ch_names_,
        subject_aware=encoder.subject_aware_, aligned=encoder.whiteners_ is not None,
        signal_rms=getattr(encoder, "signal_rms_", None),
        scale_mean=encoder.scale_mean_.ravel().tolist(),
        scale_std=encoder.scale_std_.ravel().tolist())


def restore_encoder(cls, path, device):
    """The fitted encoder (of class ``cls``) saved in ``path`` by :func:`encoder_files`."""
    import numpy as np

    from ._inputs import check_device
    from ._training import set_fitted
    from .models import ARCHITECTURES, build_autoencoder

    check_device(device)
    self, config, state = load_estimator(
        cls, path, device, required=("architecture", "module_kwargs", "n_chans", "n_times",
                                     "sfreq", "ch_names", "scale_mean", "scale_std"))
    whiteners = {k[len(_WHITENER_PREFIX):]: state.pop(k).numpy()
                 for k in list(state) if k.startswith(_WHITENER_PREFIX)}
    built = ARCHITECTURES[self.preset].__name__ if self.preset in ARCHITECTURES else None
    if config["architecture"] != built:  # never a silent load into another network
        raise ValueError(f"{path} holds a {config['architecture']}, but preset="
                         f"{self.preset!r} builds a {built}; save the encoder again "
                         "with this version.")
    kwargs = config["module_kwargs"]
    if self.preset != "paper" and "power_filters" not in kwargs:
        kwargs = dict(kwargs, power_filters=0)  # saved before band-power tokens existed
    try:
        module = build_autoencoder(self.preset, **kwargs)
        module.load_state_dict(state)
    except (RuntimeError, TypeError, ValueError) as err:
        raise ValueError(f"Weights in {path} do not fit the saved architecture "
                         f"({mismatch_reason(err)}); save the encoder "
                         "again with this version.") from err
    return set_fitted(
        self, module, device, n_chans=config["n_chans"], n_times=config["n_times"],
        sfreq=config["sfreq"], ch_names=config["ch_names"],
        module_kwargs=kwargs,
        scale_mean=np.asarray(config["scale_mean"], np.float32)[:, None],
        scale_std=np.asarray(config["scale_std"], np.float32)[:, None],
        subject_aware=bool(config.get("subject_aware", False)),
        signal_rms=config.get("signal_rms"),
        whiteners=whiteners if config.get("aligned", False) else None)


def generator_files(generator):
    """Adapter + finetuned U-Net weights (a few MB, not the base model) and ``encoder/``."""
    files = {f"{ENCODER_FOLDER}/{name}": content
             for name, content in generator.encoder_._saved_files().items()}
    files.update(estimator_files("EEGImageGenerator", generator._saved_params(),
                                 generator._trained_state(), base_model=generator.base_id_))
    return files


def restore_generator(cls, encoder_cls, path, base_model=None, device="cpu"):
    """The fitted generator (of class ``cls``) saved in ``path`` by :func:`generator_files`.

    Its encoder, in ``encoder/``, is an ``encoder_cls``; ``base_model`` replaces
    the saved base model. The classes are passed in, so that this module never
    imports an estimator.
    """
    from ._finetuning import load_base_model, load_trained_state, prepare_unet, set_fitted
    from .models import count_parameters

    self, config, state = load_estimator(cls, path, device, required=("base_model",))
    encoder = restore_encoder(encoder_cls, Path(path) / ENCODER_FOLDER, device)
    if base_model is None and config["base_model"] == "in-memory":
        raise ValueError(f"{path} was finetuned from an in-memory pipeline; pass it "
                         "again as base_model=.")
    vae, unet, scheduler, base_id = load_base_model(base_model or config["base_model"])
    n_unet_params = count_parameters(unet, trainable_only=False)
    prepare_unet(unet, self.n_adapt_tokens, self.adapter_scale, self.recipe)
    try:
        adapter = load_trained_state(unet, state, self.n_adapt_tokens)
    except (RuntimeError, KeyError, ValueError) as err:
        raise ValueError(
            f"{path} does not fit base model {base_id} ({mismatch_reason(err)})"
            "; pass the base model it was finetuned from as base_model= (saved: "
            f"{config['base_model']!r}).") from err
    self.loss_curve_ = []
    unet, adapter, vae = unet.to(device), adapter.to(device), vae.to(device)
    return set_fitted(self, unet, adapter, vae, scheduler, base_id, encoder, n_unet_params)


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
