"""Configuration of the ``mne-synapse`` command line: files, ``--set`` overrides, data.

A configuration is a dict of sections (see :data:`SECTIONS`) read from a TOML
file (stdlib ``tomllib``) or a YAML file (needs ``pyyaml``); command-line flags
override it. Errors in the configuration raise :class:`UsageError`, which the
command line reports with exit status 2 (like a bad flag).
"""

import json
from pathlib import Path

SECTIONS = {
    "data": "'source' (synthetic, an -epo.fif file, a CVPR40 .pth file or parquet release) "
            "+ the arguments of its reader",
    "encoder": "SynapseEncoder parameters",
    "generator": "EEGImageGenerator parameters",
    "generate": "sampling: n_images, num_inference_steps, guidance_scale, batch_size, split, limit",
    "evaluate": "n_way, split, num_inference_steps",
}
_SAMPLING_KEYS = {
    "generate": ("n_images", "num_inference_steps", "guidance_scale", "batch_size", "split",
                 "limit"),
    "evaluate": ("n_way", "split", "num_inference_steps", "batch_size"),
}
# Saved next to the models, so that later verbs find the data they were fitted on.
DATA_RECORD = "cli_data.json"
_PATH_KEYS = ("source", "image_root", "splits_fname", "cache_dir")


class UsageError(ValueError):
    """A problem with the command line or configuration file (exit status 2)."""


def named_config(name):
    """A configuration shipped with the package, by name (``--config paper``)."""
    from .._paper import PAPER_GENERATE, PAPER_STAGE1, PAPER_STAGE2

    if name == "paper":  # the authors' values, each documented in mne_synapse/_paper.py
        return {"encoder": dict(PAPER_STAGE1), "generator": dict(PAPER_STAGE2),
                "generate": dict(PAPER_GENERATE)}
    return None


def read_config(path):
    """Read a TOML (``.toml``) or YAML (``.yaml``/``.yml``) file, or a named configuration."""
    if path is None:
        return {}
    if not Path(path).expanduser().exists() and named_config(path) is not None:
        return named_config(path)
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"config file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".toml":
        import tomllib

        try:
            config = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as err:
            raise UsageError(f"config file {str(path)!r} is not valid TOML: {err}") from None
    elif suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise UsageError("YAML configs need pyyaml (pip install pyyaml); "
                             "or write the config as TOML") from None
        try:
            config = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise UsageError(f"config file {str(path)!r} is not valid YAML: {err}") from None
    else:
        raise UsageError(f"config file {str(path)!r} must end in .toml, .yaml or .yml")
    if not isinstance(config, dict):
        raise UsageError(f"config file {str(path)!r} must hold sections such as [encoder]")
    unknown = sorted(set(config) - set(SECTIONS))
    bad = [name for name, value in config.items() if not isinstance(value, dict)]
    if unknown or bad:
        raise UsageError(
            f"config file {str(path)!r}: {'unknown' if unknown else 'non-table'} section(s) "
            f"{unknown or bad}; sections are " + ", ".join(f"[{s}] ({d})" for s, d in
                                                            SECTIONS.items()))
    return {name: dict(values) for name, values in config.items()}


def parse_value(text):
    """A ``--set`` value: a TOML value (``3``, ``1e-4``, ``true``, ``[1, 2]``) or a bare string."""
    import tomllib

    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(config, assignments):
    """Apply ``SECTION.KEY=VALUE`` strings (from ``--set``) to a config, in place."""
    for assignment in assignments or ():
        key, sep, value = assignment.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot or not name:
            raise UsageError(f"--set expects SECTION.KEY=VALUE (e.g. encoder.lr=1e-3), "
                             f"got {assignment!r}")
        if section not in SECTIONS:
            raise UsageError(f"--set {assignment!r}: unknown section {section!r}; sections "
                             f"are {', '.join(SECTIONS)}")
        config.setdefault(section, {})[name] = parse_value(value.strip())
    return config


def check_keys(section, values, allowed):
    """Raise a UsageError naming the valid keys if ``values`` has others."""
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise UsageError(f"unknown key(s) {unknown} in [{section}]; valid keys: "
                         f"{', '.join(sorted(allowed))}")


def estimator_params(section, config, cls, defaults, flags):
    """Constructor arguments of ``cls``: defaults < config section < flags (when not None)."""
    values = dict(config.get(section, {}))
    check_keys(section, values, cls().get_params(deep=False))
    return {**defaults, **values, **{k: v for k, v in flags.items() if v is not None}}


def sampling_options(section, config, **flags):
    """Options of a sampling section, flags (when not None) winning over the config."""
    values = dict(config.get(section, {}))
    check_keys(section, values, _SAMPLING_KEYS[section])
    values.update({k: v for k, v in flags.items() if v is not None})
    return values


def _absolute(spec):
    """Absolute paths keep a data record valid when a later verb runs elsewhere."""
    spec = dict(spec)
    for key in _PATH_KEYS:
        if isinstance(spec.get(key), str) and spec[key] != "synthetic":
            spec[key] = str(Path(spec[key]).expanduser().resolve())
    return spec


def data_spec(config, data_flag, folder=None):
    """Where the data come from: ``--data`` > ``[data]`` > the record in ``folder``.

    Later layers update earlier ones; a layer naming another ``source`` starts afresh.
    """
    layers = []
    if folder is not None and (Path(folder) / DATA_RECORD).is_file():
        layers.append(json.loads((Path(folder) / DATA_RECORD).read_text())["data"])
    layers.append(config.get("data", {}))
    if data_flag is not None:
        layers.append({"source": data_flag})
    spec = {"source": "synthetic"}
    for layer in map(_absolute, layers):
        if layer.get("source", spec["source"]) != spec["source"]:
            spec = {}  # options of another source do not carry over
        spec.update(layer)
    return spec


def write_data_record(folder, spec):
    """Record the data a model was fitted on (read back by :func:`data_spec`)."""
    path = Path(folder) / DATA_RECORD
    path.write_text(json.dumps({"data": spec}, indent=1))
