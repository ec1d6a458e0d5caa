"""Reader for CVPR40 as released on the Hugging Face hub (parquet shards).

``luigi-s/EEG_Image_CVPR_ALL_subj`` holds the EEG already cropped to 20-460 ms
(time x channels) next to the stimulus JPEG and a caption, in shards
``data/{train,validation,test}-0000k-of-0000n.parquet``. The release is
several GB, so it is read shard by shard and a batch of rows at a time.
"""

import hashlib
import io
import numbers
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
from mne.utils import _check_option, logger, verbose

from ..utils import get_cache_dir
from .class_names import class_caption, cvpr40_class_name, names_a_wnid
from .cvpr40 import make_epochs, report_leaks
from .splits import audit_splits, authors_split, image_split

_REPO = "luigi-s/EEG_Image_CVPR_ALL_subj"
_DOWNLOAD = (f"hf download {_REPO} --repo-type dataset "
             "--local-dir cvpr40_hub")
_SHARD = re.compile(r"(?P<split>[a-z]+)(?:[-_.].*)?\.parquet", re.IGNORECASE)
_SPLIT_OPTIONS = ("image", "release", "authors")
_SPLIT_NAMES = {"train": "train", "validation": "val", "valid": "val", "val": "val",
                "test": "test"}
_ORDER = ("train", "val", "test")
_N_TIMES, _N_CHANS = 440, 128
_BATCH = 64  # rows decoded at a time: about 30 MB of EEG and images


def _shards(path):
    if isinstance(path, (str, os.PathLike)):
        path = Path(path).expanduser()
        if path.is_dir():
            folder = path / "data" if (path / "data").is_dir() else path
            files = sorted(folder.glob("*.parquet"))
            if not files:
                raise FileNotFoundError(
                    f"No parquet shards in {str(folder)!r}. Download the release with "
                    f"`{_DOWNLOAD}` and pass that folder.")
        else:
            files = [path]
    else:
        files = [Path(f).expanduser() for f in path]
        if not files:
            raise ValueError("No shard files given; pass a folder or a list of "
                             "'.parquet' files.")
    for f in files:
        if not f.is_file():
            raise FileNotFoundError(f"The shard {str(f)!r} does not exist; check the path.")
    named = []
    for f in files:
        match = _SHARD.fullmatch(f.name)
        split = match and _SPLIT_NAMES.get(match["split"].lower())
        if not split:
            raise ValueError(
                f"Cannot tell the split of the shard {f.name!r}: its name must start "
                f"with one of {sorted(_SPLIT_NAMES)} (as 'train-00000-of-00006.parquet').")
        named.append((split, f))
    return sorted(named, key=lambda s: (_ORDER.index(s[0]), s[1].name))


def _check_schema(fname, schema):
    import pyarrow as pa

    def is_list(t):
        return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)

    def is_str(t):
        return pa.types.is_string(t) or pa.types.is_large_string(t)

    def is_image(t):
        return (pa.types.is_struct(t) and t.get_field_index("bytes") >= 0
                and (pa.types.is_binary(t.field("bytes").type)
                     or pa.types.is_large_binary(t.field("bytes").type)))

    def is_eeg(t):
        return (is_list(t) and is_list(t.value_type)
                and pa.types.is_floating(t.value_type.value_type))

    expected = {"image": ("a struct {bytes, path}", is_image),
                "conditioning_image": ("a list of lists of floats", is_eeg),
                "caption": ("a string", is_str), "label_folder": ("a string", is_str),
                "label": ("an integer", pa.types.is_integer),
                "subject": ("an integer", pa.types.is_integer)}
    missing = [c for c in expected if c not in schema.names]
    if missing:
        raise ValueError(
            f"The shard {fname.name!r} has another schema: it lacks the column(s) "
            f"{missing} (has {schema.names}); is it from {_REPO}?")
    for column, (what, check) in expected.items():
        if not check(schema.field(column).type):
            raise ValueError(
                f"The shard {fname.name!r} has another schema: column {column!r} is "
                f"{schema.field(column).type}, expected {what}; is it from {_REPO}?")
    return np.dtype(schema.field("conditioning_image").type.value_type.value_type.to_pandas_dtype())


def _eeg(column, fname, first_row):
    """(n, channels, times) from a batch's (n, times, channels) nested lists."""
    import pyarrow.compute as pc

    outer = pc.fill_null(pc.list_value_length(column), 0).to_numpy()
    inner_column = pc.list_flatten(column)
    inner = pc.fill_null(pc.list_value_length(inner_column), 0).to_numpy()
    bounds = np.concatenate([[0], np.cumsum(outer)])
    for row, n_times in enumerate(outer):
        lengths = inner[bounds[row]:bounds[row + 1]]
        if n_times != _N_TIMES or (lengths != _N_CHANS).any():
            n_chans = "/".join(str(n) for n in np.unique(lengths)) or "0"
            raise ValueError(
                f"Row {first_row + row} of {fname.name!r}: its EEG is {n_times} x "
                f"{n_chans} but CVPR40's is {_N_TIMES} x {_N_CHANS} (times x channels, "
                "cropped 20-460 ms at 1 kHz).")
    values = pc.list_flatten(inner_column)
    if values.null_count:
        raise ValueError(f"{fname.name!r} has missing EEG values near row {first_row}.")
    data = values.to_numpy(zero_copy_only=False).reshape(len(outer), _N_TIMES, _N_CHANS)
    return data.transpose(0, 2, 1)


def _stimulus(content, fname, row, images_dir, staging, known):
    """(index, path) of a stimulus, written once (staged) as ``<SHA-256>.<ext>``."""
    from PIL import Image

    if not content:
        raise ValueError(f"Row {row} of {fname.name!r} has no image bytes.")
    digest = hashlib.sha256(content).hexdigest()
    if digest not in known:
        try:
            with Image.open(io.BytesIO(content)) as image:
                image.load()
                ext = {"JPEG": ".jpg", "PNG": ".png"}.get(image.format, ".img")
        except Exception as err:  # noqa: BLE001 - PIL raises many types on bad bytes
            raise ValueError(
                f"Row {row} of {fname.name!r}: the image bytes are not a readable "
                f"image ({err}); the shard is corrupt, download it again.") from err
        final = images_dir / (digest + ext)
        if not final.is_file():
            (staging / final.name).write_bytes(content)
        known[digest] = (len(known), str(final))
    return known[digest]


def _image_disjoint(X, metadata, random_state):
    """Keep the release's splits if no stimulus is in two; else re-split by image.

    Returns the audit of the splits kept, or None after a re-split.
    """
    leaks = audit_splits(X, metadata)
    shared = leaks[leaks["kind"] == "image"]
    if shared.empty:
        logger.info("split='image': the release's splits are image-disjoint; kept.")
        return leaks
    # Images are grouped by content hash (their file name); sorting by it makes an
    # image's split the same whichever subjects or shards are read.
    digests = metadata["image_path"].map(lambda p: Path(p).stem)
    metadata["split"] = image_split(metadata["label"], digests, random_state)
    pairs = ", ".join(sorted({"/".join(s) for s in shared["splits"]}))
    logger.info(f"split='image': the release's splits share {len(shared)} stimulus "
                f"image(s) ({pairs}); re-split instead, image-disjoint: 80/10/10 of each "
                f"class's images by content hash (random_state={random_state}).")
    return None


@verbose
def load_cvpr40_parquet(path, subjects=None, split="image", random_state=0,
                        captions="auto", lazy=False, cache_dir=None, verbose=None):
    """Load CVPR40 from its parquet release on the Hugging Face hub.

    Parameters
    ----------
    path : path-like | list of path-like
        The downloaded release (a folder whose ``data/`` holds the shards, or
        the folder of shards itself), or a list of shard files. Each shard's
        split is read from its name (``train-...``, ``validation-...``,
        ``test-...``).
    subjects : int | list of int | None
        Subjects to keep (1-6). None keeps all.
    split : ``'image'`` | ``'release'`` | ``'authors'``
        ``'image'`` (default) is image-disjoint: the shards' splits if no
        stimulus image (by content hash) is in two of them, else an
        image-disjoint re-split of the kept trials, 80/10/10 of each class's
        images (:func:`~mne_synapse.datasets.image_split`); the log says
        which. ``'release'`` keeps the shards' splits as published, leaks and
        all (warned). ``'authors'`` re-splits all kept trials at random
        80/10/10 per class as the SYNAPSE authors did
        (:func:`~mne_synapse.datasets.authors_split`): **not image-disjoint**,
        for comparison with published numbers only. Every way the splits are
        audited for shared images and trials (see Returns).
    random_state : int | None
        Seed of the ``'authors'`` split and of the ``'image'`` re-split.
    captions : ``'auto'`` | ``'release'`` | ``'class'``
        The ``caption`` column: the release's captions (``'release'``), the
        class caption such as ``'a photo of an airliner'`` (``'class'``), or
        the release's, replaced by the class caption where it is empty or
        contains a wnid such as ``'n02690373'`` (``'auto'``).
    lazy : bool
        If True, the EEG is written once into the cache as a float ``.npy``
        (values as stored) and returned memory-mapped with the metadata; the
        estimators then read it a batch at a time.
    cache_dir : path-like | None
        Where the stimulus images (and the lazy EEG) are written; by default
        ``cvpr40_parquet`` in the mne-synapse cache.
    verbose : bool | str | int | None
        Control verbosity of the logging output (MNE style).

    Returns
    -------
    epochs : mne.EpochsArray
        128 channels x 440 samples (``biosemi128`` names and montage, as
        :func:`~mne_synapse.datasets.load_cvpr40`), sfreq 1000 Hz, tmin
        0.02 s, values as stored (standardised, not volts). ``metadata``
        has the columns of :func:`~mne_synapse.datasets.load_cvpr40`:
        ``subject``, ``label``, ``wnid`` (the release's ``label_folder``),
        ``class_name``, ``image_id`` (the image's file name, without
        extension), ``image_index`` (order of first appearance),
        ``image_path`` (the stimulus written into the cache, named by the
        SHA-256 of its bytes), ``split`` (see ``split``), ``trial_index``
        (row over all shards, in train, validation, test order) and
        ``caption``. Images and trials found in
        more than one split are logged, with a warning unless
        ``split='authors'``. With ``lazy=True``, ``(data, metadata)``
        instead: ``data`` a read-only memory-mapped array (n_trials, 128,
        440); fit with ``SynapseEncoder().fit(data,
        images=metadata['image_path'], captions=metadata['caption'])``.

    Notes
    -----
    Without ``lazy``, the EEG is float64 in memory: the whole release (about
    12,000 trials) takes about 5.4 GB; select ``subjects`` or pass
    ``lazy=True`` to hold less.

    Nothing half-written is left in the cache: images are staged and moved
    into place only once every shard has been read, and the lazy EEG is
    renamed into place when complete.

    Examples
    --------
    In a shell: ``hf download luigi-s/EEG_Image_CVPR_ALL_subj
    --repo-type dataset --local-dir cvpr40_hub``, then

    >>> epochs = load_cvpr40_parquet("cvpr40_hub")  # doctest: +SKIP
    """
    import pandas as pd
    import pyarrow.parquet as pq

    _check_option("split", split, _SPLIT_OPTIONS)
    _check_option("captions", captions, ("auto", "release", "class"))
    shards = _shards(path)
    files = {f: pq.ParquetFile(f) for _, f in shards}
    dtypes = {_check_schema(f, pf.schema_arrow) for f, pf in files.items()}
    subject_of = [pf.read(columns=["subject"]).column(0).to_numpy() for pf in files.values()]
    available = sorted(set(np.concatenate(subject_of).tolist()))
    if subjects is not None:
        subjects = [subjects] if isinstance(subjects, numbers.Integral) else list(subjects)
        unknown = sorted(set(subjects) - set(available))
        if unknown or not subjects:
            raise ValueError(f"Unknown subject(s) {unknown} (of {subjects}); the "
                             f"shards have subjects {available}.")
    keep = [np.isin(s, available if subjects is None else subjects) for s in subject_of]
    n_keep = int(sum(k.sum() for k in keep))

    cache = Path(cache_dir).expanduser() if cache_dir else get_cache_dir("cvpr40_parquet")
    images_dir = cache / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha1(repr((shards, subjects)).encode()).hexdigest()[:16]
    eeg_fname = cache / f"eeg-{key}.npy"
    tmp = eeg_fname.with_name(f".{eeg_fname.name}.{os.getpid()}.tmp")
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=images_dir))
    try:
        shape = (n_keep, _N_CHANS, _N_TIMES)
        data = (np.lib.format.open_memmap(tmp, mode="w+", dtype=np.result_type(*dtypes),
                                          shape=shape) if lazy else np.empty(shape))
        rows, known, out, trial = [], {}, 0, 0
        for (shard_split, fname), kept in zip(shards, keep):
            start = 0
            for batch in files[fname].iter_batches(batch_size=_BATCH):
                mask = kept[start:start + batch.num_rows]
                eeg = _eeg(batch.column("conditioning_image"), fname, start)[mask]
                data[out:out + len(eeg)] = eeg
                out += len(eeg)
                columns = {c: batch.column(c).to_pylist() for c in
                           ("caption", "label_folder", "label", "subject")}
                image = batch.column("image")
                contents = image.field("bytes").to_pylist()
                names = (image.field("path").to_pylist() if image.type.get_field_index("path") >= 0
                         else [None] * batch.num_rows)
                for k in np.flatnonzero(mask):
                    index, image_path = _stimulus(contents[k], fname, start + k, images_dir,
                                                  staging, known)
                    rows.append(dict(
                        subject=columns["subject"][k], label=columns["label"][k],
                        wnid=columns["label_folder"][k],
                        image_id=Path(names[k] or image_path).stem,
                        image_index=index, image_path=image_path,
                        split=shard_split, trial_index=trial + k,
                        caption=columns["caption"][k]))
                start += batch.num_rows
                trial += batch.num_rows
        for staged in staging.iterdir():
            os.replace(staged, images_dir / staged.name)
        if lazy:
            data.flush()
            del data
            os.replace(tmp, eeg_fname)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    metadata = pd.DataFrame(rows)
    wnid_of = dict(zip(metadata["label"], metadata["wnid"]))
    if len(wnid_of) != metadata["wnid"].nunique():
        raise ValueError("The shards give one label to several wnids ('label' and "
                         "'label_folder' disagree); they are not one CVPR40 release.")
    metadata.insert(3, "class_name", metadata["wnid"].map(cvpr40_class_name))
    metadata = metadata[["subject", "label", "wnid", "class_name", "image_id", "image_index",
                         "image_path", "split", "trial_index", "caption"]]
    class_captions = metadata["class_name"].map(class_caption)
    if captions == "class":
        metadata["caption"] = class_captions
    elif captions == "auto":
        useless = metadata["caption"].map(lambda c: not c or names_a_wnid(str(c)))
        metadata.loc[useless, "caption"] = class_captions[useless]

    logger.info(f"Read {n_keep} CVPR40 trials of subjects "
                f"{sorted(set(metadata['subject']))} from {len(shards)} shard(s), "
                f"{len(known)} stimulus images, {len(wnid_of)} classes.")
    if lazy:
        data = np.load(eeg_fname, mmap_mode="r")
    leaks = None
    if split == "authors":
        metadata["split"] = authors_split(metadata["label"], random_state)
    elif split == "image":
        leaks = _image_disjoint(data, metadata, random_state)
    report_leaks(data, metadata, split == "authors", leaks)
    if lazy:
        return data, metadata
    return make_epochs(data, metadata, wnid_of, 1000.0, 0.02)
