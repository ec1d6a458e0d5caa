"""A synthetic EEG-image data set that runs anywhere.

Procedurally drawn stimuli (see :mod:`mne_synapse.datasets._drawing`) drive a
handful of simulated cortical sources, projected through a subject-specific
lead field onto a 128-channel BioSemi montage, on top of pink background
activity, occipital alpha and sensor noise. The sources carry the image in one
of three neural codes (``neural_code``): the amplitude of phase-locked, ERP-like
waveforms (80-400 ms), or the power of induced oscillations whose phase varies
from trial to trial (invisible to the trial average), or a mix of both.
"""

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..utils import fingerprint, get_cache_dir
from . import _drawing
from ._sources import induced_sources, lead_fields, pink_noise, project

# Bump when the simulation changes so that stale caches are not reused.
_SIMULATION_VERSION = 2
_MONTAGE = "biosemi128"
_NEURAL_CODES = ("erp", "induced", "mixed")


@dataclass
class SyntheticEEGImages:
    """The synthetic data set: EEG epochs plus the stimulus images they saw.

    Attributes
    ----------
    epochs : mne.EpochsArray
        EEG in volts. ``epochs.metadata`` has one row per epoch with columns
        ``subject``, ``label`` (class index), ``class_name``, ``image_id``,
        ``image_index`` (row of :attr:`images`), ``image_path`` (a PNG file
        holding the stimulus), ``caption``, ``repetition`` and ``split``
        (``'train'``, ``'val'`` or ``'test'``; image-disjoint).
    images : ndarray, shape (n_images, size, size, 3), uint8
        The stimuli.
    image_ids : list of str
        The id of each image, in the order of :attr:`images`.
    captions : list of str
        One caption per image.
    class_names : list of str
        The name of each class (e.g. ``'red circle'``).
    labels : ndarray of int, shape (n_images,)
        The class of each image.
    source_amplitudes : ndarray, shape (n_epochs, n_sources)
        Ground truth of the simulation: the amplitude of each stimulus-driven
        source in each epoch (image tuning, trial-to-trial variability and
        the subject's source gain), before projection to the scalp and the
        background noise are added: the height of an ERP source's waveform,
        the envelope of an induced source's oscillation. See
        :meth:`source_lr_reference`.
    neural_code : ``'erp'`` | ``'induced'`` | ``'mixed'``
        How the sources carry the image (see :func:`make_synthetic`).
    """

    epochs: object
    images: np.ndarray
    image_ids: list
    captions: list
    class_names: list
    labels: np.ndarray
    source_amplitudes: np.ndarray
    neural_code: str = "erp"

    def source_lr_reference(self, train, test):
        """Accuracy of a logistic regression on the true source amplitudes.

        A reference point at this training size, *not* a bound: it is one
        linear model fitted on ``train``, and other models, or more training
        epochs, can read the class from the EEG better than this model reads
        it from the sources.

        Parameters
        ----------
        train, test : array-like of int or bool
            Epochs to fit the classifier on and to score it on.

        Returns
        -------
        accuracy : float
            Top-1 accuracy of a logistic regression on the standardised
            amplitudes of the ``test`` epochs.
        """
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        labels = self.epochs.metadata["label"].to_numpy()
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        model.fit(self.source_amplitudes[train], labels[train])
        return float(model.score(self.source_amplitudes[test], labels[test]))


def _simulate_subject(
    rng, world, features, times, sfreq, snr, n_trials_per_image, ch_pos, code=None
):
    """EEG of one subject for every (image, repetition), in volts, and source amplitudes.

    ``code`` (None: every source is an ERP) names the induced sources and
    holds their parameters and random generator, apart from ``rng`` so that
    the ERP world's numbers do not change.
    """
    n_images = len(features)
    n_sources = len(world["latencies"])
    n_chans = len(ch_pos)
    # Inter-subject variability: anatomy (lead field), latency, gain, tuning.
    centres = world["centres"] + rng.normal(0, 0.008, world["centres"].shape)
    gain = project(ch_pos, centres, world["offsets"], world["widths"])
    latencies = world["latencies"] + rng.normal(0, 0.012)
    source_gain = rng.uniform(0.7, 1.3, n_sources)
    tuning = world["tuning"] + 0.3 * rng.standard_normal(world["tuning"].shape) / np.sqrt(
        world["tuning"].shape[0]
    )

    image_index = np.repeat(np.arange(n_images), n_trials_per_image)
    n_trials = len(image_index)
    drive = np.tanh(features @ tuning)[image_index]  # (n_trials, n_sources)
    drive = drive + 0.3 * rng.standard_normal(drive.shape)  # trial-to-trial variability
    jitter = rng.normal(0, 0.005, (n_trials, 1, 1))
    t = times[None, None, :] - latencies[None, :, None] - jitter
    width = world["widths_t"][None, :, None]
    waveforms = np.exp(-0.5 * (t / width) ** 2) * np.where(
        world["biphasic"][None, :, None], -t / width, 1.0
    )
    # A common visual evoked response (P1-N1-P3) that carries no image information.
    common = (
        np.exp(-0.5 * ((times - 0.1 - latencies[0] + world["latencies"][0]) / 0.015) ** 2)
        - 1.5 * np.exp(-0.5 * ((times - 0.17) / 0.025) ** 2)
        + 0.8 * np.exp(-0.5 * ((times - 0.35) / 0.06) ** 2)
    )
    amplitudes = drive * source_gain[None, :]
    sources = amplitudes[:, :, None] * waveforms
    if code is not None:
        induced, induced_amplitudes = induced_sources(code["rng"], code, drive, source_gain,
                                                       times)
        mask = code["mask"]
        sources[:, mask] = induced[:, mask]
        amplitudes[:, mask] = induced_amplitudes[:, mask]
    signal = np.einsum("cs,nst->nct", gain, sources)
    signal += np.einsum("c,t->ct", gain[:, 0] + gain[:, 1], common)[None]
    signal *= 2e-6 * snr

    # Background: pink activity of many random sources, occipital alpha, sensor noise.
    n_background = 24
    bg_centres = ch_pos[rng.choice(n_chans, n_background, replace=False)]
    bg_offsets = rng.normal(0, 0.03, (n_background, 3))
    bg_gain = project(ch_pos, bg_centres, bg_offsets, np.full(n_background, 0.04))
    pink = pink_noise(rng, (n_trials, n_background, len(times)), sfreq)
    noise = np.einsum("cs,nst->nct", bg_gain, pink) * 4e-6
    alpha_freq = rng.uniform(9, 11.5, (n_trials, 1))
    alpha_phase = rng.uniform(0, 2 * np.pi, (n_trials, 1))
    alpha_amp = rng.gamma(2.0, 1.0, (n_trials, 1))
    alpha = alpha_amp * np.sin(2 * np.pi * alpha_freq * times[None] + alpha_phase)
    noise += gain[:, 0][None, :, None] * alpha[:, None, :] * 3e-6
    noise += rng.standard_normal(noise.shape) * 1e-6
    return signal + noise, image_index, amplitudes


def _simulate(
    n_classes, n_images_per_class, n_subjects, n_repetitions, sfreq, n_times,
    snr, image_size, random_state, image_dir, neural_code="erp",
):
    import mne
    import pandas as pd
    rng = np.random.default_rng(random_state)
    labels = np.repeat(np.arange(n_classes), n_images_per_class)
    params = [_drawing.sample_image_params(k, n_classes, rng) for k in labels]
    images = np.stack([_drawing.draw_image(p, image_size) for p in params])
    captions = [_drawing.caption(p) for p in params]
    features = np.stack([_drawing.image_features(p) for p in params])
    features = (features - features.mean(0)) / (features.std(0) + 1e-8)
    image_ids = [f"synth_{k:02d}_{i:04d}" for i, k in enumerate(labels)]
    class_names = [f"{colour} {shape}" for shape, colour, _ in _drawing.class_table(n_classes)]

    # Image-disjoint split, stratified by class: 70% train, 15% val, 15% test.
    split = np.empty(len(labels), dtype=object)
    for k in range(n_classes):
        idx = rng.permutation(np.flatnonzero(labels == k))
        n_test = max(1, int(round(0.15 * len(idx))))
        n_val = max(1, int(round(0.15 * len(idx)))) if len(idx) > 2 else 0
        split[idx[:n_test]] = "test"
        split[idx[n_test:n_test + n_val]] = "val"
        split[idx[n_test + n_val:]] = "train"

    montage = mne.channels.make_standard_montage(_MONTAGE)
    ch_names = montage.ch_names
    ch_pos = np.array([montage.get_positions()["ch_pos"][ch] for ch in ch_names])
    posterior = ch_pos[ch_pos[:, 1] < -0.01]
    n_sources = 10
    centres, offsets, widths = lead_fields(n_sources, rng, posterior)
    world = dict(
        centres=centres, offsets=offsets, widths=widths,
        latencies=np.sort(rng.uniform(0.08, 0.4, n_sources)),
        widths_t=rng.uniform(0.02, 0.06, n_sources),
        biphasic=rng.random(n_sources) < 0.4,
        tuning=rng.standard_normal((features.shape[1], n_sources))
        / np.sqrt(features.shape[1]) * 2.0,
    )
    times = np.arange(n_times) / sfreq
    code = None
    if neural_code != "erp":
        # Drawn from their own generator: the images, lead fields, tuning and
        # noise are those of the ERP world with the same seed.
        code_rng = np.random.default_rng([random_state, 0, 1])
        code = dict(
            mask=(np.ones(n_sources, bool) if neural_code == "induced"
                  else np.arange(n_sources) % 2 == 1),
            freqs=code_rng.uniform(13, 35, n_sources),  # beta / low gamma, above the alpha
            centres=code_rng.uniform(0.15, 0.35, n_sources),
            widths=code_rng.uniform(0.05, 0.1, n_sources),
        )

    data, amplitudes, rows = [], [], []
    for subject in range(1, n_subjects + 1):
        subject_rng = np.random.default_rng([random_state, subject])
        if code is not None:
            code["rng"] = np.random.default_rng([random_state, subject, 1])
        x, image_index, amp = _simulate_subject(
            subject_rng, world, features, times, sfreq, snr, n_repetitions, ch_pos, code
        )
        order = subject_rng.permutation(len(image_index))  # shuffled presentation
        data.append(x[order])
        amplitudes.append(amp[order])
        for trial, i in enumerate(image_index[order]):
            rows.append(dict(
                subject=subject, label=int(labels[i]), class_name=class_names[labels[i]],
                image_id=image_ids[i], image_index=int(i),
                image_path=str(Path(image_dir) / f"{image_ids[i]}.png"),
                caption=captions[i], repetition=int(np.sum(
                    image_index[order][:trial] == i)), split=split[i],
            ))
    data = np.concatenate(data).astype(np.float32)
    metadata = pd.DataFrame(rows)

    info = mne.create_info(ch_names, sfreq, "eeg")
    info.set_montage(montage)
    n_epochs = len(data)
    events = np.column_stack([
        np.arange(n_epochs) * (n_times + 1), np.zeros(n_epochs, int),
        metadata["label"].to_numpy() + 1,
    ])
    event_id = {name: k + 1 for k, name in enumerate(class_names)}
    epochs = mne.EpochsArray(
        data, info, events=events, tmin=0.0, event_id=event_id,
        metadata=metadata, verbose=False,
    )
    return SyntheticEEGImages(epochs, images, image_ids, captions, class_names, labels,
                              np.concatenate(amplitudes).astype(np.float32), neural_code)


def make_synthetic(
    n_classes=10,
    n_images_per_class=20,
    n_subjects=4,
    n_repetitions=2,
    sfreq=250.0,
    n_times=128,
    snr=3.0,
    image_size=32,
    random_state=0,
    neural_code="erp",
    cache_dir=None,
    verbose=None,
):
    """Make (or load from cache) the synthetic EEG-image data set.

    Every image is seen ``n_repetitions`` times by each of ``n_subjects``
    subjects. The images' visual features (shape, colour, texture, position,
    size, rotation, background: all visible in the image, which is all that
    drives the simulation; the captions describe the same visible
    properties) drive ten simulated cortical sources. Subjects differ in
    lead field (source positions jittered by ~8 mm), latency (~12 ms), source
    gain and tuning. Background: pink activity of 24 random sources,
    occipital alpha, sensor noise; a common visual evoked response that
    carries no image information.

    How the sources carry the image is the ``neural_code``:

    - ``'erp'``: the amplitude of phase-locked ERP-like waveforms at
      latencies of 80-400 ms, with fixed spatial patterns (the prior of
      Xdawn and of time-domain linear models);
    - ``'induced'``: the power of 13-35 Hz oscillations under a 150-350 ms
      envelope, with a random phase on every trial: the trial-averaged ERP
      carries no image information, band power does (the prior of
      filter-bank / log-power models such as ShallowFBCSPNet);
    - ``'mixed'``: half of the sources of each kind.

    The three worlds share the seed's images, lead fields, tuning and noise.

    At the defaults (``snr=3``, 10 classes, 4 subjects), a linear baseline
    (``Vectorizer + StandardScaler + LogisticRegression(C=0.01)`` on 4x
    decimated data, trained on the ``'train'`` images of all subjects) reaches
    0.40 accuracy on the held-out ``'test'`` images (chance 0.10; 0.19 at
    ``snr=1``, 0.31 at ``snr=2``): the class is decodable, far from trivially.

    Parameters
    ----------
    n_classes : int
        Number of classes (2-100). Each class is a (shape, colour) pair.
    n_images_per_class : int
        Distinct stimulus images per class.
    n_subjects : int
        Number of simulated subjects.
    n_repetitions : int
        How many times each subject sees each image.
    sfreq : float
        Sampling frequency in Hz.
    n_times : int
        Samples per epoch, starting at stimulus onset.
    snr : float
        Scale of the stimulus-driven signal relative to the background.
    image_size : int
        Width and height of the stimuli in pixels.
    random_state : int
        Seed: the same seed gives the same data set, bit for bit.
    neural_code : ``'erp'`` | ``'induced'`` | ``'mixed'``
        How the sources carry the image (see above). ``'induced'`` and
        ``'mixed'`` need ``sfreq >= 100`` (oscillations up to about 37 Hz).
    cache_dir : path-like | None
        Where to cache the data set; defaults to
        ``mne_synapse.get_cache_dir('synthetic')``. The stimulus PNG files the
        metadata points to live there.
    verbose : bool | str | int | None
        Control verbosity of the logging output (MNE style).

    Returns
    -------
    data : SyntheticEEGImages
        The epochs (in volts) with metadata, the images and their captions.

    Examples
    --------
    >>> from mne_synapse.datasets import make_synthetic
    >>> data = make_synthetic(n_subjects=2, n_images_per_class=4)  # doctest: +SKIP
    >>> data.epochs.metadata[["subject", "class_name", "image_id"]].head()  # doctest: +SKIP
    """
    import mne
    from PIL import Image

    for name, value, low in [
        ("n_images_per_class", n_images_per_class, 1), ("n_subjects", n_subjects, 1),
        ("n_repetitions", n_repetitions, 1), ("n_times", n_times, 8),
        ("image_size", image_size, 8),
    ]:
        if int(value) != value or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}.")
    if not sfreq > 0 or not snr >= 0:
        raise ValueError(f"sfreq must be > 0 and snr >= 0, got {sfreq!r} and {snr!r}.")
    _drawing.class_table(n_classes)  # validates n_classes
    if neural_code not in _NEURAL_CODES:
        raise ValueError(f"neural_code must be one of {_NEURAL_CODES}, got {neural_code!r}.")
    if neural_code != "erp" and sfreq < 100:
        raise ValueError(f"neural_code={neural_code!r} simulates oscillations up to about 37 Hz: "
                         f"it needs sfreq >= 100, got {sfreq!r}.")

    key_params = dict(
        version=_SIMULATION_VERSION, n_classes=n_classes,
        n_images_per_class=n_images_per_class, n_subjects=n_subjects,
        n_repetitions=n_repetitions, sfreq=float(sfreq), n_times=n_times,
        snr=float(snr), image_size=image_size, random_state=random_state,
    )
    if neural_code != "erp":  # the ERP world keeps the cache folder it always had
        key_params["neural_code"] = neural_code
    root = Path(cache_dir) if cache_dir is not None else get_cache_dir("synthetic")
    folder = root / fingerprint(key_params)[:16]
    if (folder / "images.npz").exists():
        mne.utils.logger.info(f"Loading cached synthetic data set from {folder}")
        stored = np.load(folder / "images.npz", allow_pickle=False)
        epochs = mne.read_epochs(folder / "synthetic-epo.fif", verbose=False)
        return SyntheticEEGImages(
            epochs, stored["images"], stored["image_ids"].tolist(),
            stored["captions"].tolist(), stored["class_names"].tolist(),
            stored["labels"], stored["source_amplitudes"], neural_code,
        )

    mne.utils.logger.info(f"Simulating synthetic data set into {folder}")
    folder.parent.mkdir(parents=True, exist_ok=True)
    # Build in a temporary sibling folder and rename it, so an interrupted run
    # never leaves a half-written cache behind.
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".tmp-"))
    try:
        data = _simulate(
            image_dir=folder / "images", **{
                k: v for k, v in key_params.items() if k != "version"
            },
        )
        (tmp / "images").mkdir()
        for image, image_id in zip(data.images, data.image_ids):
            Image.fromarray(image).save(tmp / "images" / f"{image_id}.png")
        data.epochs.save(tmp / "synthetic-epo.fif", verbose=False)
        np.savez(
            tmp / "images.npz", images=data.images, image_ids=np.array(data.image_ids),
            captions=np.array(data.captions), class_names=np.array(data.class_names),
            labels=data.labels, source_amplitudes=data.source_amplitudes,
        )
        if folder.exists():  # another process won the race; keep its copy
            shutil.rmtree(tmp)
        else:
            tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return data
