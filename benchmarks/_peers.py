"""The models of the Stage-1 comparison, each trained the way its authors train it.

Every model takes ``mne.Epochs`` (with ``subject`` in the metadata) and gets
the preprocessing SynapseEncoder gives itself: the per-subject Euclidean
alignment (the encoder's own functions and policy, ``mne_synapse._alignment``;
a subject not seen in fit is calibrated from its own unlabelled epochs,
:func:`calibrate`, as ``SynapseEncoder.calibrate``) or none, then per-channel
standardisation learned in fit (``_inputs.channel_stats``, the encoder's). On top of that each peer gets what its authors give it:

- braindecode ``EEGNet`` and ``ShallowFBCSPNet`` (``EEGClassifier``): AdamW,
  batch 64, weight decay 0, a cosine learning-rate schedule over the run, as
  in braindecode's trialwise decoding example
  (``examples/model_building/plot_bcic_iv_2a_moabb_trial.py``: ``optimizer=
  torch.optim.AdamW``, ``lr = 0.0625 * 0.01``, ``weight_decay = 0``,
  ``batch_size = 64``, ``LRScheduler('CosineAnnealingLR', T_max=n_epochs -
  1)``); EEGNet at Lawhern et al.'s (2018) Adam learning rate 1e-3 and their
  input rate, 128 Hz (EEGNet's 64-sample temporal kernel is half a second
  there), ShallowFBCSPNet at the 250 Hz Schirrmeister et al. (2017) designed
  it for. The number of epochs is chosen on validation images, as both papers
  stop on a validation set.
- pyriemann ``XdawnCovariances + TangentSpace + LogisticRegression``;
- a linear model (4x decimated, ``Vectorizer + StandardScaler + LR``).

``GRIDS`` lists what is chosen on validation images for each model.
"""

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

MODELS = ("SynapseEncoder", "EEGNet", "ShallowFBCSPNet", "Xdawn+TS+LR", "linear")
ALIGNMENTS = {"EA": "euclidean", "none": None}
AUTHOR_LR = {"EEGNet": 1e-3, "ShallowFBCSPNet": 0.0625 * 0.01}
AUTHOR_SFREQ = {"EEGNet": 128.0, "ShallowFBCSPNet": 250.0}
# Hyper-parameters chosen on validation images (braindecode nets: the epoch
# count, read off one validation curve; see _protocol.select).
GRIDS = {
    # The encoder at its defaults (augmentation on; chosen on the validation images
    # of every seed by bench_encoder_levers): only the head's C is chosen here.
    "SynapseEncoder": [dict(augment=True, C=c) for c in (0.1, 1.0, 10.0)],
    "Xdawn+TS+LR": [dict(nfilter=f, C=c) for f in (2, 4) for c in (0.1, 1.0, 10.0)],
    "linear": [dict(C=c) for c in (1e-3, 1e-2, 1e-1, 1.0)],
}


class SharedFront(TransformerMixin, BaseEstimator):
    """Epochs -> aligned, standardised float32 arrays (the encoder's own input steps).

    Parameters
    ----------
    alignment : ``'euclidean'`` | None
        Per-subject Euclidean alignment, as ``SynapseEncoder(alignment=...)``.
    shrinkage : float
        As ``SynapseEncoder.alignment_shrinkage`` (same default).
    sfreq : float | None
        Resample to this rate (polyphase, anti-aliased) after standardising;
        None keeps the data's rate.
    subject_column : str
        Metadata column of the subject.
    """

    def __init__(self, alignment="euclidean", shrinkage=0.1, sfreq=None,
                 subject_column="subject"):
        self.alignment = alignment
        self.shrinkage = shrinkage
        self.sfreq = sfreq
        self.subject_column = subject_column

    def _data(self, epochs):
        from mne_synapse._alignment import epoch_subjects

        data = epochs.get_data().astype(np.float32)
        return data, epoch_subjects(len(data), epochs.metadata, self.subject_column)

    def _aligned(self, epochs):
        """The epochs through the encoder's alignment policy (``_alignment``)."""
        from mne_synapse._alignment import align, policy_keys

        data, subjects = self._data(epochs)
        if self.whiteners_ is None:
            return data
        return align(data, policy_keys(subjects, self.whiteners_, len(data))[0],
                     self.whiteners_)[:]

    def fit(self, epochs, y=None):
        from mne_synapse._alignment import fit_alignment
        from mne_synapse._inputs import channel_stats

        self.input_sfreq_ = float(epochs.info["sfreq"])
        data, subjects = self._data(epochs)
        self.whiteners_ = (None if self.alignment is None
                           else fit_alignment(data, subjects, self.shrinkage))
        self.mean_, self.std_ = channel_stats(self._aligned(epochs))
        return self

    def calibrate(self, epochs):
        """Learn the alignment of new subjects from their epochs, as the encoder's
        ``calibrate`` (no labels)."""
        from mne_synapse._alignment import fit_whiteners

        if self.whiteners_ is not None:
            data, subjects = self._data(epochs)
            self.whiteners_ = {**self.whiteners_,
                               **fit_whiteners(data, subjects, self.shrinkage)}
        return self

    def transform(self, epochs):
        from fractions import Fraction

        from scipy.signal import resample_poly

        x = (self._aligned(epochs) - self.mean_) / self.std_
        if self.sfreq is not None and self.sfreq != self.input_sfreq_:
            ratio = Fraction(self.sfreq / self.input_sfreq_).limit_denominator(100)
            x = resample_poly(x, ratio.numerator, ratio.denominator, axis=-1)
        return np.ascontiguousarray(x, dtype=np.float32)


def calibrate(model, epochs):
    """Calibrate the alignment of ``model``'s first step on new subjects' epochs."""
    first = model[0]
    if hasattr(first, "calibrate"):
        first.calibrate(epochs)
    return model


def _decimate(x):
    return x[:, :, ::4]


def make_model(name, alignment, params, seed, budget):
    """An unfitted pipeline of model ``name`` (see ``MODELS``) taking Epochs.

    Parameters
    ----------
    name : str
        One of ``MODELS``.
    alignment : ``'euclidean'`` | None
        The shared alignment step (SynapseEncoder: its own, same functions).
    params : dict
        Hyper-parameters chosen on validation (see ``GRIDS``; braindecode nets:
        ``n_epochs``, the run's length, and ``budget``, the schedule's).
        SynapseEncoder also takes ``encoder``, a dict of its other parameters.
    seed : int
        Seed of the model (weights, batches, dropout).
    budget : int
        Epochs of training: SynapseEncoder's, and the braindecode nets'
        cosine schedule length.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    if name == "SynapseEncoder":
        from mne_synapse import SynapseEncoder

        augment = dict(augment_noise=0.5, augment_shift=4) if params["augment"] else dict(
            augment_noise=0.0, augment_shift=0)
        # ``encoder``: other SynapseEncoder parameters (bench_architectures' networks,
        # the levers; they may also set max_epochs, e.g. for early stopping).
        encoder = dict(max_epochs=budget, alignment=alignment, random_state=seed,
                       verbose=False, **augment)
        return make_pipeline(SynapseEncoder(**{**encoder, **params.get("encoder", {})}),
                             LogisticRegression(C=params["C"], max_iter=2000))
    if name in ("EEGNet", "ShallowFBCSPNet"):
        import torch
        from braindecode import EEGClassifier
        from skorch.callbacks import LRScheduler

        net = EEGClassifier(
            name, optimizer=torch.optim.AdamW, optimizer__lr=AUTHOR_LR[name],
            optimizer__weight_decay=0.0, batch_size=64, max_epochs=params["n_epochs"],
            callbacks=[("lr_scheduler", LRScheduler("CosineAnnealingLR",
                                                    T_max=max(budget - 1, 1)))],
            train_split=None, iterator_train__shuffle=True, device="cpu", verbose=0)
        return make_pipeline(SharedFront(alignment, sfreq=AUTHOR_SFREQ[name]), _Seeded(net, seed))
    if name == "Xdawn+TS+LR":
        from pyriemann.estimation import XdawnCovariances
        from pyriemann.tangentspace import TangentSpace

        return make_pipeline(SharedFront(alignment),
                             XdawnCovariances(nfilter=params["nfilter"], estimator="oas"),
                             TangentSpace(), LogisticRegression(C=params["C"], max_iter=1000))
    if name == "linear":
        from mne.decoding import Vectorizer
        from sklearn.preprocessing import FunctionTransformer, StandardScaler

        return make_pipeline(SharedFront(alignment), FunctionTransformer(_decimate),
                             Vectorizer(), StandardScaler(),
                             LogisticRegression(C=params["C"], max_iter=1000))
    raise ValueError(f"Unknown model {name!r}; one of {MODELS}.")


def validation_curve(name, alignment, train, val, seed, budget):
    """Validation top-1 of a braindecode net after each of ``budget`` epochs.

    ``train`` and ``val`` are Epochs of disjoint images; the net is trained on
    ``train`` through the same front as in :func:`make_model`.
    """
    from skorch.callbacks import EpochScoring
    from skorch.dataset import Dataset
    from skorch.helper import predefined_split

    model = make_model(name, alignment, dict(n_epochs=budget), seed, budget)
    front, seeded = model.steps[0][1], model.steps[1][1]
    x_train = front.fit_transform(train)
    y = train.metadata.label.to_numpy()
    val_set = Dataset(front.transform(val), val.metadata.label.to_numpy())
    scoring = EpochScoring("accuracy", name="val_top1", lower_is_better=False, on_train=False)
    seeded.net.set_params(train_split=predefined_split(val_set),
                          callbacks=[*seeded.net.callbacks, ("val_top1", scoring)])
    seeded.fit(x_train, y)
    return np.asarray(seeded.net_.history[:, "val_top1"])


class _Seeded(BaseEstimator):
    """A skorch classifier fitted under a torch seed (its weights, batches, dropout)."""

    def __init__(self, net, seed):
        self.net = net
        self.seed = seed

    def fit(self, X, y):
        import torch
        from sklearn.base import clone

        torch.manual_seed(self.seed)
        self.net_ = clone(self.net).fit(X, y)
        self.classes_ = self.net_.classes_
        return self

    def predict_proba(self, X):
        return self.net_.predict_proba(X)
