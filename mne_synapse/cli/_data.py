"""The data the command line reads: what MNE users have, as Epochs the verbs can use.

``--data`` (or ``[data] source``) takes ``synthetic``, an MNE epochs file
(``-epo.fif``, read lazily), a CVPR40 ``.pth`` file or the CVPR40 hub release
(a folder of parquet shards). The other ``[data]`` keys are the arguments of
that source's reader.
"""

import inspect
from pathlib import Path

from ._config import check_keys

FORMATS = ("'synthetic', an MNE epochs file (name ending in -epo.fif, read with "
           "mne.read_epochs), a CVPR40 .pth file (e.g. eeg_5_95_std.pth) or the CVPR40 "
           "hub release (a folder of .parquet shards)")
_FIF_ENDINGS = ("-epo.fif", "_epo.fif", "-epo.fif.gz", "_epo.fif.gz")


def data_kind(source):
    """``'synthetic'``, ``'fif'``, ``'pth'`` or ``'parquet'``; an error naming the formats else."""
    if source == "synthetic":
        return source
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"data {source!r} does not exist; give --data {FORMATS}")
    name = path.name.lower()
    if path.is_file() and (name.endswith(_FIF_ENDINGS) or name.endswith(".fif")):
        return "fif"
    if path.is_file() and name.endswith(".pth"):
        return "pth"
    if name.endswith(".parquet") or (path.is_dir() and any(path.rglob("*.parquet"))):
        return "parquet"
    raise ValueError(f"cannot read data {source!r}: --data takes {FORMATS}")


def read_epochs_file(fname, image_root=None, verbose=None):
    """Epochs of a ``-epo.fif`` file (not preloaded), their metadata completed for the verbs.

    ``metadata`` must have ``image_path``, the stimulus file of each epoch;
    relative paths are taken from ``image_root`` (default: the file's folder).
    Missing optional columns are derived: ``image_id`` (the path), ``label``
    (from ``class_name``) and ``split`` (``'unassigned'``: training uses
    every epoch). ``subject`` is left as it is: without it the encoder aligns
    all epochs as one recording (see "Your own data" in the documentation).
    """
    import mne

    epochs = mne.read_epochs(fname, preload=False, verbose=verbose)
    md = None if epochs.metadata is None else epochs.metadata.copy()
    if md is None or "image_path" not in md:
        raise ValueError(
            f"{fname}: epochs.metadata needs an 'image_path' column, the stimulus file of "
            f"each epoch (columns: {[] if md is None else list(md.columns)}); add it with "
            "epochs.metadata = ... and epochs.save(...), see 'Your own data' in the "
            "documentation")
    root = Path(image_root if image_root is not None else Path(fname).parent)
    md["image_path"] = [p if not isinstance(p, str) or Path(p).is_absolute() else
                        str(root / p) for p in md.image_path]
    if "image_id" not in md:
        md["image_id"] = md.image_path.astype(str)
    if "label" not in md and "class_name" in md:
        md["label"] = md.class_name.astype("category").cat.codes.astype(int)
    if "split" not in md:
        md["split"] = "unassigned"
    epochs.metadata = md
    return epochs


def load_data(spec, verbose=None):
    """Epochs with at least ``image_path``, ``image_id`` and ``split`` metadata.

    Readers of the known data sets add ``label``, ``class_name`` and ``subject``.
    """
    from .. import datasets

    spec = dict(spec)
    source = spec.pop("source")
    kind = data_kind(source)
    reader = dict(synthetic=datasets.make_synthetic, fif=read_epochs_file,
                  pth=datasets.load_cvpr40, parquet=datasets.load_cvpr40_parquet)[kind]
    first = next(iter(inspect.signature(reader).parameters))
    allowed = set(inspect.signature(reader).parameters) - {first, "verbose", "lazy"}
    if kind == "synthetic":
        allowed.add(first)
    check_keys("data", spec, allowed | {"source"})
    if kind == "synthetic":
        return reader(**spec, verbose=verbose).epochs
    return reader(source, **spec, verbose=verbose)
