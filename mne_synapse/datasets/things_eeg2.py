"""Reader for the preprocessed THINGS-EEG2 release (Gifford et al., 2022).

Layout of the release: ``<data_dir>/sub-XX/preprocessed_eeg_training.npy`` and
``preprocessed_eeg_test.npy`` per subject, and the image set
``<image_root>/image_metadata.npy``, ``training_images/<concept>/<file>`` and
``test_images/<concept>/<file>``. Every ``.npy`` there is a *pickled dict*
(``np.save`` of a dict), so reading it unpickles; see :func:`load_things_eeg2`
for the opt-in and :func:`things_eeg2_to_npz` for a pickle-free copy.
"""

import numbers
import re
from pathlib import Path

import numpy as np
from mne.utils import logger, verbose, warn

_PARTITIONS = {  # partition -> (split name in metadata, metadata key prefix, image folder)
    "training": ("train", "train", "training_images"),
    "test": ("test", "test", "test_images"),
}
_EEG_KEYS = ("preprocessed_eeg_data", "ch_names", "times")


def _read_dict(fname, what, allow_pickle):
    """The dict stored in a THINGS-EEG2 ``.npz`` (safe) or pickled ``.npy`` file."""
    fname = Path(fname).expanduser()
    if not fname.is_file():
        raise FileNotFoundError(f"The {what} {str(fname)!r} does not exist; check the path.")
    if fname.suffix == ".npz":
        try:
            with np.load(fname, allow_pickle=False) as content:
                return {key: content[key] for key in content.files}
        except ValueError as err:  # an object array inside: would need unpickling
            raise ValueError(
                f"The {what} {str(fname)!r} holds Python objects, not plain arrays; "
                "rewrite it with things_eeg2_to_npz.") from err
        except (OSError, EOFError) as err:
            raise ValueError(f"The {what} {str(fname)!r} is not a valid .npz file "
                             f"({err}).") from err
    try:
        content = np.load(fname, allow_pickle=False)
    except ValueError as err:
        if not allow_pickle:
            raise ValueError(
                f"The {what} {str(fname)!r} is a pickled dict (the official THINGS-EEG2 "
                "format); unpickling a file can run arbitrary code, so it is refused "
                "by default. If you trust the file (e.g. downloaded from the official "
                "OSF repository), pass allow_pickle=True, or convert it once to a "
                "pickle-free .npz with mne_synapse.datasets.things_eeg2_to_npz (the "
                ".npz is then read in its place).") from err
        # The documented exception to "never unpickle": opted in by the caller.
        content = np.load(fname, allow_pickle=True)
    except (OSError, EOFError) as err:
        raise ValueError(f"The {what} {str(fname)!r} is not a valid .npy file "
                         f"({err}).") from err
    if isinstance(content, np.ndarray) and content.dtype == object and content.ndim == 0:
        content = content.item()
    if not isinstance(content, dict):
        raise ValueError(
            f"The {what} {str(fname)!r} holds a {type(content).__name__}"
            f"{' of shape ' + str(content.shape) if hasattr(content, 'shape') else ''}, "
            "not a dict; is it a THINGS-EEG2 file?")
    return content


def _find(folder, stem, what, allow_pickle):
    """Read ``stem.npz`` if present (no unpickling), else ``stem.npy``."""
    for suffix in (".npz", ".npy"):
        if (folder / (stem + suffix)).is_file():
            return _read_dict(folder / (stem + suffix), what, allow_pickle)
    raise FileNotFoundError(
        f"No {what}: neither {str(folder / stem)!r}.npy nor .npz exists. THINGS-EEG2 "
        "is laid out as <data_dir>/sub-XX/preprocessed_eeg_training.npy (and _test); "
        "<image_root>/image_metadata.npy.")


def _strings(value, key, what):
    items = value.tolist() if isinstance(value, np.ndarray) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(s, str) for s in items):
        raise ValueError(f"{key!r} of the {what} must be a list of str, got "
                         f"{type(value).__name__}.")
    return list(items)


def _check_eeg(content, what):
    missing = [key for key in _EEG_KEYS if key not in content]
    if missing:
        raise ValueError(
            f"The {what} lacks the key(s) {missing} (has {sorted(map(str, content))}); "
            f"a THINGS-EEG2 preprocessed file holds {list(_EEG_KEYS)}.")
    data = np.asarray(content["preprocessed_eeg_data"])
    if data.ndim != 4 or not np.issubdtype(data.dtype, np.number) or 0 in data.shape:
        raise ValueError(
            f"'preprocessed_eeg_data' of the {what} must be a non-empty numeric array "
            "(images, repetitions, channels, times), got shape "
            f"{data.shape} ({data.dtype}).")
    ch_names = _strings(content["ch_names"], "ch_names", what)
    times = np.asarray(content["times"], dtype=float).ravel()
    if len(ch_names) != data.shape[2] or len(times) != data.shape[3]:
        raise ValueError(
            f"'preprocessed_eeg_data' of the {what} has shape {data.shape}: "
            f"{data.shape[2]} channels x {data.shape[3]} times, but there are "
            f"{len(ch_names)} ch_names and {len(times)} times.")
    if len(times) < 2 or not np.all(np.isfinite(times)):
        raise ValueError(f"'times' of the {what} must hold at least 2 finite values.")
    step = np.diff(times)
    if step.min() <= 0 or not np.allclose(step, step.mean(), rtol=1e-3):
        raise ValueError(f"'times' of the {what} must be evenly spaced and increasing.")
    return data, ch_names, times


def _concepts(meta, partitions, what):
    """Per partition: (concepts, files) lists, checked against each other."""
    out = {}
    for partition in partitions:
        prefix = _PARTITIONS[partition][1]
        keys = [f"{prefix}_img_concepts", f"{prefix}_img_files"]
        missing = [key for key in keys if key not in meta]
        if missing:
            raise ValueError(f"The {what} lacks the key(s) {missing} (has "
                             f"{sorted(map(str, meta))}); is it image_metadata.npy?")
        concepts, files = (_strings(meta[key], key, what) for key in keys)
        if len(concepts) != len(files):
            raise ValueError(f"The {what} has {len(concepts)} {keys[0]} but "
                             f"{len(files)} {keys[1]}; they must pair one to one.")
        out[partition] = concepts, files
    return out


def _labels(meta):
    """Concept -> (label, class name), the same for every partition and subject.

    Official concepts read ``'00001_aardvark'``: the number is the THINGS concept
    (1-1854), so labels are comparable across partitions and subjects.
    """
    concepts = sorted({c for key in ("train_img_concepts", "test_img_concepts")
                       if key in meta for c in _strings(meta[key], key, "image metadata")})
    parsed = [re.fullmatch(r"(\d+)_(.+)", c) for c in concepts]
    if all(parsed):
        return {c: (int(m[1]) - 1, m[2].replace("_", " ")) for c, m in zip(concepts, parsed)}
    return {c: (i, c.replace("_", " ")) for i, c in enumerate(concepts)}


def _subject_list(data_dir, subjects):
    if subjects is None:
        found = sorted(int(p.name[4:]) for p in data_dir.glob("sub-*")
                       if p.is_dir() and p.name[4:].isdigit())
        if not found:
            raise FileNotFoundError(f"No sub-XX folders in {str(data_dir)!r}; is it the "
                                    "folder of the preprocessed THINGS-EEG2 data?")
        return found
    subjects = [subjects] if isinstance(subjects, numbers.Integral) else list(subjects)
    if not subjects or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool)
                               and s >= 1 for s in subjects):
        raise ValueError(f"subjects must be None, an int >= 1 or a non-empty list of "
                         f"them (THINGS-EEG2 has subjects 1-10), got {subjects!r}.")
    return [int(s) for s in subjects]


@verbose
def load_things_eeg2(data_dir, image_root=None, subjects=None, partition="both",
                     average_repetitions=False, image_metadata=None,
                     caption_template="a photo of a {}", allow_pickle=False, verbose=None):
    """Load preprocessed THINGS-EEG2 as epochs with image-concept metadata.

    Parameters
    ----------
    data_dir : path-like
        Folder of the preprocessed EEG, with one ``sub-XX`` folder per subject
        holding ``preprocessed_eeg_training.npy`` and ``preprocessed_eeg_test.npy``:
        dicts with ``preprocessed_eeg_data`` (images, repetitions, channels, times;
        training 16540 x 4 x 17 x 100, test 200 x 80 x 17 x 100 at 100 Hz),
        ``ch_names`` and ``times``. A ``.npz`` of the same name (see
        :func:`things_eeg2_to_npz`) is read in place of the ``.npy``.
    image_root : path-like | None
        Folder of the THINGS-EEG2 image set: ``image_metadata.npy`` (or ``.npz``),
        ``training_images/<concept>/<file>`` and ``test_images/<concept>/<file>``.
        If None, ``image_metadata`` must be given and ``image_path`` is missing.
    subjects : int | list of int | None
        Subjects to load (1-10); None loads every ``sub-XX`` folder found.
    partition : ``'training'`` | ``'test'`` | ``'both'``
        Which file(s) to read per subject.
    average_repetitions : bool
        If True, average the repetitions of each image into one epoch (the usual
        protocol for the test set: 80 repetitions); else one epoch per repetition.
    image_metadata : path-like | None
        The image metadata file, if not ``<image_root>/image_metadata.npy``. It holds
        ``train_img_concepts``, ``train_img_files``, ``test_img_concepts`` and
        ``test_img_files``, one entry per image in the order of the EEG files.
    caption_template : str
        Formatted with the class name into the ``caption`` column.
    allow_pickle : bool
        The official files are pickled dicts, and unpickling a file can run
        arbitrary code: unlike the rest of mne-synapse (which loads ``.pth`` with
        ``weights_only=True`` and weights from safetensors), reading them needs
        this explicit opt-in. Pass True only for files you trust, e.g. downloaded
        from the official OSF repository. The safe alternative: convert each file
        once with :func:`things_eeg2_to_npz`; the ``.npz`` files are then read
        with ``allow_pickle=False``.
    verbose : bool | str | int | None
        Control verbosity of the logging output (MNE style).

    Returns
    -------
    epochs : mne.EpochsArray
        Epochs ordered by subject, partition (training first), image, repetition,
        with the ``standard_1020`` montage (named ``colin27_1020`` since MNE
        1.13), ``sfreq`` and ``tmin`` from ``times`` (100 Hz and -0.2 s in the
        release). ``epochs.metadata`` has the columns
        ``subject``, ``label`` (THINGS concept index, 0-1853), ``concept``
        (e.g. ``'00001_aardvark'``), ``class_name`` (``'aardvark'``), ``image_id``
        (image file stem), ``image_index`` (row of the image in its partition's
        EEG and metadata lists), ``image_path`` (str, or None when there is no
        ``image_root`` or the file is missing), ``caption``, ``repetition``
        (0-based; -1 for averaged epochs), ``n_averaged`` and ``split``
        (``'train'`` or ``'test'``). The event code is ``label + 1`` and
        ``event_id`` maps concept to code. Training and test concepts are
        disjoint: the test set serves zero-shot evaluation.

    Notes
    -----
    The values are kept as stored: after the release's multivariate noise
    normalisation they are in arbitrary units, not volts. One subject's
    training partition is 66,160 epochs (0.9 GB as float64);
    ``average_repetitions=True`` or selecting ``subjects`` loads less.

    References
    ----------
    Gifford, Dwivedi, Roig & Cichy (2022). A large and rich EEG dataset for
    modeling human visual object recognition. NeuroImage 264, 119754.

    Examples
    --------
    >>> epochs = load_things_eeg2("things_eeg2/preprocessed", "things_eeg2/images",
    ...                           subjects=1, allow_pickle=True)  # doctest: +SKIP
    >>> test = epochs[epochs.metadata["split"] == "test"]  # doctest: +SKIP
    """
    import mne
    import pandas as pd

    if partition not in ("training", "test", "both"):
        raise ValueError(f"partition must be 'training', 'test' or 'both', got {partition!r}.")
    partitions = ["training", "test"] if partition == "both" else [partition]
    data_dir = Path(data_dir).expanduser()
    if not data_dir.is_dir():
        raise FileNotFoundError(f"data_dir {str(data_dir)!r} is not a folder.")
    subjects = _subject_list(data_dir, subjects)
    root = None if image_root is None else Path(image_root).expanduser()
    if image_metadata is not None:
        meta = _read_dict(image_metadata, "image metadata", allow_pickle)
    elif root is not None:
        meta = _find(root, "image_metadata", "image metadata", allow_pickle)
    else:
        raise ValueError("Pass image_root (the THINGS-EEG2 image set folder) or "
                         "image_metadata (its image_metadata.npy): the EEG files do "
                         "not name the images.")
    lists = _concepts(meta, partitions, "image metadata")
    labels = _labels(meta)

    pieces, frames, signal, n_missing = [], [], None, 0
    for subject in subjects:
        for part in partitions:
            split, _, folder = _PARTITIONS[part]
            what = f"{part} file of subject {subject}"
            data, ch_names, times = _check_eeg(
                _find(data_dir / f"sub-{subject:02d}", f"preprocessed_eeg_{part}", what,
                      allow_pickle), what)
            if signal is None:
                signal = ch_names, times
            elif ch_names != signal[0] or len(times) != len(signal[1]) or not np.allclose(
                    times, signal[1]):
                raise ValueError(f"The {what} has other channels or times than the first "
                                 "file read; all files must share them.")
            concepts, files = lists[part]
            n_images, n_reps = data.shape[:2]
            if n_images != len(concepts):
                raise ValueError(
                    f"The {what} has EEG for {n_images} images but the image metadata "
                    f"lists {len(concepts)} {split} images; do the EEG and the image "
                    "metadata come from the same release?")
            if average_repetitions:
                pieces.append(data.mean(axis=1, dtype=np.float64))
                image_index, repetition = np.arange(n_images), np.full(n_images, -1)
            else:
                pieces.append(data.reshape(n_images * n_reps, *data.shape[2:]))
                image_index = np.repeat(np.arange(n_images), n_reps)
                repetition = np.tile(np.arange(n_reps), n_images)
            paths = [None] * n_images
            if root is not None:
                paths = [str(root / folder / c / f) if (root / folder / c / f).is_file()
                         else None for c, f in zip(concepts, files)]
                n_missing += sum(p is None for p in paths)
            table = pd.DataFrame(dict(
                concept=concepts, label=[labels[c][0] for c in concepts],
                class_name=[labels[c][1] for c in concepts],
                image_id=[Path(f).stem for f in files], image_path=paths))
            frame = table.iloc[image_index].reset_index(drop=True)
            frame.insert(0, "subject", subject)
            frame["image_index"] = image_index
            frame["caption"] = [caption_template.format(c) for c in frame["class_name"]]
            frame["repetition"] = repetition
            frame["n_averaged"] = n_reps if average_repetitions else 1
            frame["split"] = split
            frames.append(frame)
    if n_missing:
        warn(f"{n_missing} image file(s) listed in the image metadata are not in "
             f"{str(root)!r}; their image_path is None.")

    metadata = pd.concat(frames, ignore_index=True)[[
        "subject", "label", "concept", "class_name", "image_id", "image_index",
        "image_path", "caption", "repetition", "n_averaged", "split"]]
    data = pieces[0] if len(pieces) == 1 else np.concatenate(pieces)
    data = data.astype(np.float64, copy=False)
    del pieces
    ch_names, times = signal
    sfreq = round(float((len(times) - 1) / (times[-1] - times[0])), 6)
    info = mne.create_info(ch_names, sfreq, "eeg")
    # MNE 1.13 renamed 'standard_1020' (same positions) to 'colin27_1020'.
    names = mne.channels.get_builtin_montages()
    montage = "colin27_1020" if "colin27_1020" in names else "standard_1020"
    info.set_montage(mne.channels.make_standard_montage(montage), on_missing="warn")
    codes = metadata["label"].to_numpy() + 1
    # Spaced sample positions keep events unique, as MNE requires.
    events = np.column_stack([np.arange(len(codes)) * (len(times) + 1),
                              np.zeros(len(codes), int), codes])
    event_id = dict(zip(metadata["concept"], codes.tolist()))
    epochs = mne.EpochsArray(data, info, events=events, tmin=float(times[0]),
                             event_id=event_id, metadata=metadata, baseline=None,
                             verbose=False)
    logger.info(f"Loaded {len(epochs)} THINGS-EEG2 epochs: subjects {subjects}, "
                f"partition {partition!r}, {len(event_id)} concepts, "
                f"{len(ch_names)} channels x {len(times)} times at {sfreq} Hz.")
    return epochs


def things_eeg2_to_npz(fname, out=None, overwrite=False):
    """Convert a pickled THINGS-EEG2 ``.npy`` dict into a pickle-free ``.npz``.

    Works for the EEG files (``preprocessed_eeg_training.npy``, ...) and for
    ``image_metadata.npy``. This unpickles ``fname`` once, so run it only on
    files you trust (e.g. downloaded from the official OSF repository); the
    ``.npz`` holds plain arrays (numbers, fixed-width strings) and is read by
    :func:`load_things_eeg2` without unpickling.

    Parameters
    ----------
    fname : path-like
        The ``.npy`` file.
    out : path-like | None
        The ``.npz`` to write; defaults to ``fname`` with the suffix ``.npz``,
        where :func:`load_things_eeg2` looks first.
    overwrite : bool
        Replace an existing ``out``.

    Returns
    -------
    out : pathlib.Path
        The written file.
    """
    from ..utils import atomic_write

    fname = Path(fname).expanduser()
    out = fname.with_suffix(".npz") if out is None else Path(out).expanduser()
    if out.exists() and not overwrite:
        raise FileExistsError(f"{str(out)!r} exists; pass overwrite=True to replace it.")
    content = _read_dict(fname, "file", allow_pickle=True)
    arrays = {}
    for key, value in content.items():
        array = np.asarray(value)
        if array.dtype == object:
            try:
                array = np.asarray(_strings(value, key, "file"))
            except ValueError as err:
                raise ValueError(f"Cannot convert {key!r} of {str(fname)!r}: it holds "
                                 "objects other than numbers and strings.") from err
        arrays[str(key)] = array
    atomic_write(out, lambda fid: np.savez(fid, **arrays))
    return out
