"""The protocol of the Stage-1 comparison: worlds, seeds, folds, choices, fits, intervals.

- Worlds: ``make_synthetic(neural_code=code, random_state=seed)``; each seed is
  a fresh simulated world (images, subjects, noise) and also seeds the models.
- Settings: ``multi`` (all subjects; fit on the ``train`` + ``val`` images,
  score on the ``test`` images) and ``loso`` (subject ``seed % n_subjects``
  left out: fit on the other subjects' ``train`` + ``val`` images, score on
  its ``test`` images; subject- and image-disjoint). One left-out subject per
  seed, so three seeds leave out three different subjects. Every model's
  alignment is calibrated on the new subject's test epochs (no labels) before
  scoring, as ``SynapseEncoder.calibrate`` does.
- Choices: every hyper-parameter of every model is chosen on world seed 0,
  fitted on the ``train`` images and scored on the ``val`` images (all
  subjects), never on ``test``; the choice serves every seed and setting.
- Control: the whole pipeline refitted on training epochs whose stimuli are
  permuted (``evaluation.permute_stimuli``), scored on the true test epochs.
- Intervals: 95% bootstrap over test images (the epochs of one image are
  drawn together), within each seed; the statistic is the mean over seeds.
"""

import hashlib
import json
import time
from pathlib import Path

import numpy as np

from ._peers import GRIDS, calibrate, make_model, validation_curve

WORLDS = {
    "erp": "ERP world: phase-locked ERP sources with fixed spatial patterns (Xdawn's prior)",
    "induced": "induced world: non-phase-locked 13-35 Hz band power (filter-bank / "
               "log-power prior); the trial-averaged ERP carries no class information",
    "mixed": "mixed world: half of the sources of each kind",
}
# Part of every stored result's key: bump when the protocol changes.
VERSION = 1


def load_world(code, seed):
    """The simulated data set of world ``code`` and data seed ``seed``."""
    from mne_synapse.datasets import make_synthetic

    return make_synthetic(neural_code=code, random_state=seed)


def encoder_defaults():
    """A digest of what ``SynapseEncoder()`` builds: its parameters, the ``'tiny'``
    preset and the defaults of the network and of its band-power front end.

    Part of the stored key of every SynapseEncoder fit, so that a change of the
    defaults is refitted rather than read back from a cache.
    """
    import inspect

    from mne_synapse import SynapseEncoder
    from mne_synapse.models import PRESETS, SynapseAutoencoder
    from mne_synapse.models.band_power import BandPowerTokens

    network = {f"{cls.__name__}.{name}": p.default for cls in (SynapseAutoencoder,
                                                               BandPowerTokens)
               for name, p in inspect.signature(cls.__init__).parameters.items()
               if p.default is not inspect.Parameter.empty}
    from mne_synapse._param_checks import without_options_off

    # Options that are off train as before they existed: fits stored before them
    # stay valid; a default turned on changes the digest.
    estimator = without_options_off(SynapseEncoder().get_params())
    text = json.dumps(dict(estimator=estimator, tiny=PRESETS["tiny"],
                           network=network), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def folds(metadata, setting, seed):
    """(train, test) epoch indices of ``setting`` for seed ``seed``."""
    split, subject = metadata.split.to_numpy(), metadata.subject.to_numpy()
    train, test = split != "test", split == "test"
    if setting == "multi":
        return np.flatnonzero(train), np.flatnonzero(test)
    if setting == "loso":
        subjects = np.unique(subject)
        left_out = subjects[seed % len(subjects)]
        return (np.flatnonzero(train & (subject != left_out)),
                np.flatnonzero(test & (subject == left_out)))
    raise ValueError(f"Unknown setting {setting!r}: 'multi' or 'loso'.")


class Store:
    """Results kept as JSON files in ``folder`` (None: kept nowhere), to resume a run."""

    def __init__(self, folder=None):
        self.folder = None if folder is None else Path(folder)

    def get(self, key, compute):
        if self.folder is None:
            return compute()
        text = json.dumps(dict(key, version=VERSION), sort_keys=True, default=str)
        path = self.folder / f"{hashlib.sha256(text.encode()).hexdigest()[:20]}.json"
        if path.exists():
            return json.loads(path.read_text())["value"]
        value = compute()
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(dict(key=text, value=value)))
        tmp.replace(path)
        return value


def select(data, name, alignment, seed, budget, grid=None):
    """Hyper-parameters of one model chosen on the validation images.

    ``grid``: the candidates (default ``GRIDS[name]``).

    Returns
    -------
    choice : dict
        ``params`` (the chosen hyper-parameters), ``score`` (their validation
        top-1) and ``curve`` (braindecode nets: validation top-1 after each
        epoch; else None).
    """
    epochs = data.epochs
    md = epochs.metadata
    train, val = epochs[(md.split == "train").to_numpy()], epochs[(md.split == "val").to_numpy()]
    if name not in GRIDS:  # braindecode nets: the epoch count, off one validation curve
        curve = validation_curve(name, alignment, train, val, seed, budget)
        best = int(np.argmax(curve))
        return dict(params=dict(n_epochs=best + 1), score=float(curve[best]),
                    curve=[round(float(v), 4) for v in curve])
    y_train, y_val = train.metadata.label.to_numpy(), val.metadata.label.to_numpy()
    grid = GRIDS[name] if grid is None else grid
    scores, features = [], {}
    for params in grid:
        # Entries that differ only in the head's C share one fit of the rest.
        rest = json.dumps({k: v for k, v in params.items() if k != "C"}, sort_keys=True,
                          default=str)
        if rest not in features:
            model = make_model(name, alignment, params, seed, budget).fit(train, y_train)
            features[rest] = (model[:-1].transform(train), model[:-1].transform(val), model[-1])
        f_train, f_val, head = features[rest]
        from sklearn.base import clone

        score = clone(head).set_params(C=params["C"]).fit(f_train, y_train).score(f_val, y_val)
        scores.append(score)
    best = int(np.argmax(scores))
    return dict(params=grid[best], score=float(scores[best]), curve=None)


def fit_and_score(data, name, alignment, params, train, test, seed, budget, shuffled=False):
    """Fit one model, score it on the test epochs, epoch by epoch.

    Returns
    -------
    result : dict
        ``top1``, ``top5`` (0/1 per test epoch), ``image`` and ``label``
        (each test epoch's image id and class), ``fit_time`` (s); for
        SynapseEncoder (not shuffled) also
        ``retrieval1`` and ``retrieval5``: EEG -> image retrieval hits among
        the distinct test images (tiny CLIP image embeddings).
    """
    from mne_synapse.evaluation import permute_stimuli

    epochs = data.epochs
    train_epochs = epochs[train]
    if shuffled:
        train_epochs = permute_stimuli(train_epochs, random_state=seed)
    model = make_model(name, alignment, params, seed, budget)
    start = time.perf_counter()
    model.fit(train_epochs, train_epochs.metadata.label.to_numpy())
    fit_time = time.perf_counter() - start
    test_epochs = epochs[test]
    new_subjects = set(test_epochs.metadata.subject) - set(train_epochs.metadata.subject)
    if new_subjects:  # leave-one-subject-out: every model calibrates, without labels
        calibrate(model, epochs[test])
    truth = test_epochs.metadata.label.to_numpy()
    proba = model.predict_proba(test_epochs)
    hits = top_k_hits(proba, np.searchsorted(model.classes_, truth))
    result = dict(fit_time=fit_time, image=test_epochs.metadata.image_id.tolist(),
                  label=truth.tolist(), **hits)
    if name == "SynapseEncoder" and not shuffled:
        from mne_synapse.clip import CLIPEmbedder

        paths = test_epochs.metadata.image_path.to_numpy()
        candidates, index = np.unique(paths, return_inverse=True)
        embeddings = CLIPEmbedder("tiny", "synthetic").embed_images(list(candidates))
        hits = top_k_hits(cosine(model[0].transform(test_epochs), embeddings), index)
        result.update(retrieval1=hits["top1"], retrieval5=hits["top5"])
    return result


def cosine(a, b):
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    return a @ (b / np.linalg.norm(b, axis=1, keepdims=True)).T


def top_k_hits(scores, truth):
    """0/1 per row: the true column among the best 1 and 5 (ties count against)."""
    true_score = scores[np.arange(len(truth)), truth][:, None]
    rank = np.sum(scores > true_score, axis=1) + np.sum(scores == true_score, axis=1) - 1
    return dict(top1=(rank < 1).astype(int).tolist(), top5=(rank < 5).astype(int).tolist())


def interval(results, key="top1", seed=0):
    """Mean over runs (seeds) with its 95% bootstrap interval over test images."""
    from mne_synapse.metrics import bootstrap_interval

    values = np.concatenate([r[key] for r in results])
    groups = np.concatenate([r["image"] for r in results])
    strata = np.concatenate([np.full(len(r[key]), i) for i, r in enumerate(results)])
    return bootstrap_interval(values, groups=groups, strata=strata, random_state=seed)


def paired_difference(ours, theirs, key="top1", seed=0):
    """Mean of ours minus theirs over the same test epochs, with its 95% interval."""
    from mne_synapse.metrics import bootstrap_interval

    for a, b in zip(ours, theirs):
        if a["image"] != b["image"]:
            raise ValueError("Paired results must cover the same test epochs.")
    values = np.concatenate([np.subtract(a[key], b[key]) for a, b in zip(ours, theirs)])
    groups = np.concatenate([a["image"] for a in ours])
    strata = np.concatenate([np.full(len(a[key]), i) for i, a in enumerate(ours)])
    return bootstrap_interval(values, groups=groups, strata=strata, random_state=seed)
