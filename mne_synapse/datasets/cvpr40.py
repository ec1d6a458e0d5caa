"""Reader for the CVPR40 / EEG-ImageNet files (Spampinato et al., 2017).

The data are distributed as torch pickles (``eeg_5_95_std.pth`` and friends)
holding a list of trial dicts, plus a separate file of image-disjoint splits.
"""

import numbers
import pickle
import re
from pathlib import Path

import mne
import numpy as np
from mne.utils import _check_option, logger, verbose, warn

from .class_names import class_caption, cvpr40_class_name
from .splits import audit_splits, authors_split

_SPLITS = ("train", "val", "test")
_IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")


def _safe_torch_load(fname, what):
    import torch  # lazy: importing torch costs seconds

    fname = Path(fname).expanduser()
    if not fname.is_file():
        raise FileNotFoundError(
            f"The {what} {str(fname)!r} does not exist; check the path.")
    try:
        return torch.load(fname, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # Never retry with weights_only=False: that runs arbitrary code. Only
        # torch's specific reason is quoted, not its advice to do just that.
        found = re.search(r"GLOBAL (\S+)", str(err))
        raise ValueError(
            f"The {what} {str(fname)!r} contains objects beyond tensors, "
            "lists, dicts, numbers and strings (or is not a valid torch "
            "file), so it is refused for safety. Re-save it with only "
            "those types." + (f" It holds {found[1]}." if found else "")
        ) from err
    except Exception as err:  # noqa: BLE001 - torch raises many types on bad bytes
        raise ValueError(
            f"The {what} {str(fname)!r} could not be read as a torch file "
            f"({err}); is it the right file?") from err


def _as_int(value, key, idx):
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):
        value = value.item()  # 0-d tensors from older exports
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    raise ValueError(
        f"dataset[{idx}][{key!r}] must be an int, got "
        f"{type(value).__name__}; the file is not in the CVPR40 format.")


def _read_trials(content):
    import torch

    if not isinstance(content, dict):
        raise ValueError(
            f"Expected the data file to hold a dict, got "
            f"{type(content).__name__}; is it a CVPR40 EEG file?")
    missing = [k for k in ("dataset", "labels", "images") if k not in content]
    if missing:
        raise ValueError(
            f"The data file lacks the key(s) {missing} (has "
            f"{sorted(map(str, content))}); a CVPR40 file needs 'dataset', "
            "'labels' and 'images'.")
    for key in ("labels", "images"):
        obj = content[key]
        if not isinstance(obj, (list, tuple)) or not all(
                isinstance(s, str) for s in obj):
            raise ValueError(
                f"The {key!r} entry must be a list of str, got "
                f"{type(obj).__name__}; the file is not in CVPR40 format.")
    labels, images = list(content["labels"]), list(content["images"])
    if len(set(labels)) != len(labels):
        raise ValueError("The 'labels' list has duplicate class ids.")
    dataset = content["dataset"]
    if not isinstance(dataset, (list, tuple)) or not dataset:
        raise ValueError("The 'dataset' entry must be a non-empty list of "
                         "trial dicts.")
    trials, n_chans = [], None
    for idx, trial in enumerate(dataset):
        if not isinstance(trial, dict) or not {
                "eeg", "image", "label", "subject"} <= set(trial):
            raise ValueError(
                f"dataset[{idx}] must be a dict with keys 'eeg', 'image', "
                "'label' and 'subject'.")
        eeg = trial["eeg"]
        if not isinstance(eeg, torch.Tensor) or eeg.ndim != 2:
            raise ValueError(
                f"dataset[{idx}]['eeg'] must be a 2-D tensor (channels, "
                f"times), got {type(eeg).__name__} with shape "
                f"{tuple(getattr(eeg, 'shape', ()))}.")
        if n_chans is None:
            n_chans = eeg.shape[0]
        elif eeg.shape[0] != n_chans:
            raise ValueError(
                f"dataset[{idx}]['eeg'] has {eeg.shape[0]} channels but "
                f"dataset[0] has {n_chans}; all trials need the same "
                "channels (is 'eeg' stored as (times, channels)?).")
        label = _as_int(trial["label"], "label", idx)
        image = _as_int(trial["image"], "image", idx)
        for key, val, names in (("label", label, labels),
                                ("image", image, images)):
            if not 0 <= val < len(names):
                raise ValueError(
                    f"dataset[{idx}][{key!r}] = {val} is out of range for "
                    f"the {len(names)} entries of {key + 's'!r}; the file "
                    "is corrupt or not in the CVPR40 format.")
        trials.append(dict(eeg=eeg, label=label, image=image,
                           subject=_as_int(trial["subject"], "subject", idx)))
    return trials, labels, images, n_chans


def _read_splits(splits_fname, split_index, n_trials):
    content = _safe_torch_load(splits_fname, "splits file")
    splits = content.get("splits") if isinstance(content, dict) else None
    if not isinstance(splits, (list, tuple)) or not splits:
        raise ValueError(
            f"The splits file {str(splits_fname)!r} must hold a dict with a "
            "non-empty 'splits' list.")
    if not 0 <= split_index < len(splits):
        raise ValueError(
            f"split_index={split_index} is out of range: the splits file "
            f"has {len(splits)} split(s); use 0 to {len(splits) - 1}.")
    split = splits[split_index]
    if not isinstance(split, dict) or not set(_SPLITS) & set(split):
        raise ValueError(
            f"Split {split_index} must be a dict with 'train', 'val' and "
            "'test' lists of trial indices.")
    assigned = np.full(n_trials, "unassigned", dtype=object)
    for name in _SPLITS:
        try:
            idx = np.asarray(split.get(name, []), dtype=np.int64).ravel()
        except (TypeError, ValueError) as err:
            raise ValueError(f"Split {split_index} ({name!r}) must be a "
                             "list of int trial indices.") from err
        bad = idx[(idx < 0) | (idx >= n_trials)]
        if bad.size:
            raise ValueError(
                f"Split {split_index} ({name!r}) refers to trial {bad[0]} "
                f"but the data file has {n_trials} trials; the splits file "
                "does not match the data file.")
        clash = idx[assigned[idx] != "unassigned"]
        if clash.size:
            raise ValueError(
                f"Trial {clash[0]} is in split {assigned[clash[0]]!r} and "
                f"{name!r} of split {split_index}; the splits file is "
                "inconsistent.")
        assigned[idx] = name
    return assigned


def _find_image(image_root, name, wnid):
    # The class wnid normally prefixes the image name; fall back to the
    # class folder and to a flat folder for renamed copies.
    fnames = [name] if name.lower().endswith(_IMAGE_SUFFIXES) else [
        name + ".JPEG", name + ".jpg", name + ".jpeg", name + ".png"]
    for folder in dict.fromkeys((name.split("_")[0], wnid, "")):
        for fname in fnames:
            path = image_root / folder / fname
            if path.is_file():
                return str(path)
    return None


@verbose
def load_cvpr40(fname, image_root=None, splits_fname=None, split_index=0,
                subjects=None, crop=(20, 460), length_range=(450, 600),
                sfreq=1000.0, split="file", random_state=0, verbose=None):
    """Load a CVPR40 (EEG-ImageNet) file as epochs with stimulus metadata.

    Parameters
    ----------
    fname : path-like
        The EEG file, e.g. ``eeg_5_95_std.pth``: a torch pickle holding
        ``{'dataset': [{'eeg', 'image', 'label', 'subject'}, ...],
        'labels': [wnid, ...], 'images': [image name, ...]}``. It is read
        with ``torch.load(..., weights_only=True)``; files holding other
        Python objects are refused.
    image_root : path-like | None
        Folder of the ImageNet stimuli, laid out as
        ``<image_root>/<wnid>/<image name>.JPEG``.
    splits_fname : path-like | None
        The splits file, e.g. ``block_splits_by_image_all.pth`` (or a
        per-subject ``_single`` variant). If None, every trial is
        ``'unassigned'``.
    split_index : int
        Which split of the splits file to use.
    subjects : int | list of int | None
        Subjects to keep (1-6 in the original data). None keeps all.
    crop : tuple of int | None
        ``(start, stop)`` sample indices applied to every trial. The default
        ``(20, 460)`` gives 440 samples, i.e. 20-460 ms after stimulus onset
        at 1 kHz. Trials shorter than ``stop`` are dropped. If None, trials
        are not cropped; if their lengths then differ, they are all cut to
        the shortest one (with a warning).
    length_range : tuple of int | None
        Keep only trials whose length ``L`` satisfies ``low <= L <= high``
        (the usual CVPR40 practice drops the few very short or long ones).
        None disables this filter.
    sfreq : float
        Sampling frequency in Hz (the file does not store it).
    split : ``'file'`` | ``'authors'``
        ``'file'`` (default) takes each trial's split from ``splits_fname``
        (image-disjoint). ``'authors'`` re-splits the kept trials (those of
        the splits file, if one is given, as in their notebook) at random
        80/10/10 per class as the SYNAPSE authors did
        (:func:`~mne_synapse.datasets.authors_split`): **not image-disjoint**,
        for comparison with published numbers only.
    random_state : int | None
        Seed of the ``'authors'`` split.
    verbose : bool | str | int | None
        Control verbosity of the logging output (MNE style).

    Returns
    -------
    epochs : mne.EpochsArray
        One epoch per kept trial. ``epochs.times`` are true post-onset times:
        ``tmin = crop[0] / sfreq`` (0.02 s with the default crop).
        ``epochs.metadata`` has the columns ``subject``, ``label`` (class
        index), ``wnid``, ``class_name`` (the ImageNet class name, e.g.
        ``'airliner'``; the wnid for classes not of CVPR40), ``image_id``
        (image name), ``image_index``
        (index into the file's ``images``), ``image_path`` (str; missing,
        i.e. NaN or None, so test with ``.isna()``, when ``image_root`` is
        None or the image is not found), ``split``
        (``'train'``, ``'val'``, ``'test'`` or ``'unassigned'``),
        ``trial_index`` (index into the file's ``dataset``) and ``caption``
        (``'a photo of an airliner'``, what the estimators embed). The event
        code is ``label + 1`` and ``event_id`` maps wnid to code. Images and
        trials found in more than one split are logged, with a warning unless
        ``split='authors'`` (see :func:`~mne_synapse.datasets.audit_splits`).

    Notes
    -----
    The values are kept as stored. In the released files they are filtered
    and standardised, in arbitrary units, not volts, even though MNE labels
    and scales EEG as volts in plots (pass ``scalings`` accordingly).

    With 128 channels the ``biosemi128`` names and montage are set, an
    approximation: the recordings used a 128-channel actiCAP. Other channel
    counts get the names ``EEG001``, ... and no montage.

    The data are float64: the full set (about 12,000 trials) takes about
    5.4 GB; select ``subjects`` to load less.

    References
    ----------
    Spampinato et al. (2017). Deep learning human mind for automated visual
    classification. CVPR.

    Examples
    --------
    >>> epochs = load_cvpr40("eeg_5_95_std.pth", image_root="imagenet40",
    ...                      splits_fname="block_splits_by_image_all.pth",
    ...                      subjects=[1, 2])  # doctest: +SKIP
    >>> train = epochs[epochs.metadata["split"] == "train"]  # doctest: +SKIP
    """
    _check_option("split", split, ("file", "authors"))
    content = _safe_torch_load(fname, "data file")
    trials, labels, images, n_chans = _read_trials(content)
    del content
    n_total = len(trials)
    assigned = (_read_splits(splits_fname, split_index, n_total)
                if splits_fname is not None
                else np.full(n_total, "unassigned", dtype=object))

    keep = list(range(n_total))
    available = sorted({t["subject"] for t in trials})
    if subjects is not None:
        subjects = [subjects] if isinstance(subjects, numbers.Integral) \
            else list(subjects)
        unknown = sorted(set(subjects) - set(available))
        if unknown or not subjects:
            raise ValueError(f"Unknown subject(s) {unknown} (of {subjects}); "
                             f"the file has subjects {available}.")
        keep = [i for i in keep if trials[i]["subject"] in set(subjects)]

    lengths = [trials[i]["eeg"].shape[1] for i in keep]
    n_before = len(keep)
    if length_range is not None:
        low, high = length_range
        keep = [i for i, n in zip(keep, lengths) if low <= n <= high]
        if not keep:
            raise ValueError(
                f"No trials left after length_range={tuple(length_range)} "
                f"(lengths are {min(lengths)} to {max(lengths)}); widen it "
                "or pass length_range=None.")
    n_len = n_before - len(keep)
    if split == "authors":
        if splits_fname is not None:
            keep = [i for i in keep if assigned[i] != "unassigned"]
        assigned[keep] = authors_split([trials[i]["label"] for i in keep], random_state)

    lengths = [trials[i]["eeg"].shape[1] for i in keep]
    if crop is None:
        start, stop = 0, min(lengths)
        if max(lengths) != stop:
            warn(f"Trial lengths differ ({stop} to {max(lengths)} samples) "
                 f"and crop=None; cutting all trials to {stop} samples.")
    else:
        start, stop = (int(c) for c in crop)
        if not 0 <= start < stop:
            raise ValueError(f"crop must be (start, stop) with 0 <= start < "
                             f"stop, got {crop}.")
        n_before = len(keep)
        keep = [i for i, n in zip(keep, lengths) if n >= stop]
        if not keep:
            raise ValueError(f"No trials left: all are shorter than the "
                             f"crop stop ({stop}); use a smaller crop.")
        if len(keep) < n_before:
            logger.info(f"Dropped {n_before - len(keep)} trial(s) shorter "
                        f"than the crop stop ({stop} samples).")

    # Fill a preallocated float64 array: stacking would double peak memory.
    data = np.empty((len(keep), n_chans, stop - start))
    for row, i in enumerate(keep):
        data[row] = trials[i]["eeg"][:, start:stop].double().numpy()

    import pandas as pd

    root = None if image_root is None else Path(image_root).expanduser()
    paths = {}
    rows = []
    for i in keep:
        t = trials[i]
        wnid, name = labels[t["label"]], images[t["image"]]
        if root is not None and t["image"] not in paths:
            paths[t["image"]] = _find_image(root, name, wnid)
        class_name = cvpr40_class_name(wnid)
        rows.append(dict(
            subject=t["subject"], label=t["label"], wnid=wnid,
            class_name=class_name, image_id=name, image_index=t["image"],
            image_path=paths.get(t["image"]), split=assigned[i], trial_index=i,
            caption=class_caption(class_name)))
    metadata = pd.DataFrame(rows)

    epochs = make_epochs(data, metadata, labels, sfreq, start / sfreq)
    kept_subjects = sorted(set(metadata["subject"].tolist()))
    logger.info(
        f"Loaded {len(keep)} of {n_total} CVPR40 trials ({n_len} dropped by "
        f"length_range), subjects {kept_subjects}, "
        f"{len(epochs.event_id)} classes, {stop - start} samples x {n_chans} "
        "channels.")
    report_leaks(epochs, metadata, split == "authors")
    return epochs


def make_epochs(data, metadata, wnids, sfreq, tmin):
    """Epochs of CVPR40 trials: montage, events (``label + 1``) and metadata."""
    n_epochs, n_chans, n_times = data.shape
    if n_chans == 128:
        montage = mne.channels.make_standard_montage("biosemi128")
        info = mne.create_info(montage.ch_names, sfreq, "eeg")
        info.set_montage(montage)
    else:
        info = mne.create_info(
            [f"EEG{k + 1:03d}" for k in range(n_chans)], sfreq, "eeg")
    codes = metadata["label"].to_numpy() + 1
    # Spaced sample positions keep events unique, as MNE requires.
    events = np.column_stack([np.arange(n_epochs) * (n_times + 1),
                              np.zeros(n_epochs, int), codes])
    event_id = {wnids[c - 1]: int(c) for c in np.unique(codes)}
    return mne.EpochsArray(data, info, events=events, tmin=tmin,
                           event_id=event_id, metadata=metadata, verbose=False)


def report_leaks(X, metadata, expected, leaks=None):
    """Audit the splits (``leaks``: their audit, if done); warn unless known to leak."""
    if not metadata["split"].isin(_SPLITS).any():
        return
    if leaks is None:
        leaks = audit_splits(X, metadata)
    if len(leaks) and not expected:
        kinds = ", ".join(f"{n} {k}(s)" for k, n in
                          leaks["kind"].value_counts().sort_index().items())
        warn(f"{kinds} appear in more than one split; scores on such a split "
             "are inflated (see mne_synapse.datasets.audit_splits).")
