"""Per-subject Euclidean alignment of EEG (He & Wu, 2019), used as the encoder's input layer.

Each subject's epochs are multiplied by ``R^{-1/2}``, where ``R`` is that
subject's mean spatial covariance (shrunk towards a scaled identity so that
few epochs, or a rank-deficient montage, still give a stable inverse). After
alignment every subject's mean covariance is the identity: head shape, lead
field and electrode impedances no longer move the data around, and the
background noise that dominates EEG is spatially white.

The policy (what an epoch is multiplied by) depends only on the epoch and
its subject, never on the other epochs passed with it:

- a subject seen in fit, or calibrated since (``SynapseEncoder.calibrate``),
  uses its own whitener;
- anything else (an uncalibrated subject, an array without subjects) uses the
  subject-agnostic whitener, key ``''``: that of all training epochs together.
"""

import numpy as np

from . import _inputs

_CHUNK = 64  # epochs read at a time (as channel_stats), so lazy data stays on disk


def mean_covariance(data):
    """Mean over epochs of the spatial covariance ``x x^T / n_times``.

    Not demeaned per epoch (as in He & Wu's alignment): EEG epochs are
    baseline-corrected or high-passed already, and a slow offset is part of
    what makes subjects differ.

    Parameters
    ----------
    data : array-like, shape (n_epochs, n_chans, n_times)
        EEG; any object sliceable along the first axis (e.g. a memory map).

    Returns
    -------
    cov : ndarray, shape (n_chans, n_chans)
        The mean covariance, in float64.
    """
    n_epochs, n_chans, n_times = data.shape
    cov = np.zeros((n_chans, n_chans))
    for start in range(0, n_epochs, _CHUNK):
        x = np.asarray(data[start:start + _CHUNK], dtype=np.float64)
        x = x.transpose(1, 0, 2).reshape(n_chans, -1)  # one GEMM for the chunk
        cov += x @ x.T / n_times
    return cov / n_epochs


def whitener(cov, shrinkage):
    """``C^{-1/2}`` of ``C = (1 - a) cov + a tr(cov)/n I``, the shrunk covariance.

    Parameters
    ----------
    cov : ndarray, shape (n_chans, n_chans)
        A covariance matrix.
    shrinkage : float
        ``a`` in [0, 1]; 0 keeps ``cov`` as it is (it must then be full rank).

    Returns
    -------
    w : ndarray, shape (n_chans, n_chans)
        The symmetric inverse square root, in float32.
    """
    n_chans = len(cov)
    scale = np.trace(cov) / n_chans
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError("The EEG has no variance (all-zero or constant channels): "
                         "it cannot be aligned; pass alignment=None.")
    shrunk = (1 - shrinkage) * cov + shrinkage * scale * np.eye(n_chans)
    eigval, eigvec = np.linalg.eigh(shrunk)
    if eigval.min() <= 1e-12 * scale:
        raise ValueError("The mean covariance is singular (e.g. average reference or "
                         "bridged channels): use alignment_shrinkage > 0.")
    return ((eigvec / np.sqrt(eigval)) @ eigvec.T).astype(np.float32)


def fit_whiteners(data, groups, shrinkage):
    """One whitener per group (subject).

    Parameters
    ----------
    data : array-like, shape (n_epochs, n_chans, n_times)
        EEG.
    groups : ndarray, shape (n_epochs,)
        The group (subject) of each epoch.
    shrinkage : float
        See :func:`whitener`.

    Returns
    -------
    whiteners : dict
        ``{group: ndarray (n_chans, n_chans)}``.
    """
    return {str(group): whitener(mean_covariance(RowView(data, np.flatnonzero(groups == group))),
                                 shrinkage)
            for group in np.unique(groups)}


AGNOSTIC = ""  # key of the subject-agnostic whitener (all training epochs together)


def epoch_subjects(n_epochs, metadata, subject_column, subjects=None):
    """The subject of each epoch as strings: ``subjects`` > ``metadata[subject_column]`` > None.

    ``subjects`` may be one value for all epochs or one per epoch.
    """
    if subjects is None:
        if metadata is None or subject_column not in metadata:
            return None
        subjects = metadata[subject_column].to_numpy()
    elif np.ndim(subjects) == 0:
        subjects = np.full(n_epochs, subjects, dtype=object)
    subjects = np.asarray(subjects).astype(str)
    if subjects.shape != (n_epochs,):
        raise ValueError(f"subjects has {len(subjects)} entries for {n_epochs} epochs; "
                         "pass one subject per epoch, or one for all.")
    if np.any(subjects == AGNOSTIC):
        raise ValueError("A subject is the empty string; name every subject (e.g. 'sub-01').")
    return subjects


def fit_alignment(data, subjects, shrinkage):
    """The whiteners of fit: one per subject and the subject-agnostic one (key ``''``).

    The subject-agnostic whitener is that of the mean covariance of all
    epochs; without subjects it is the only one.
    """
    if subjects is None:
        return {AGNOSTIC: whitener(mean_covariance(data), shrinkage)}
    covs, counts = {}, {}
    for subject in np.unique(subjects):
        index = np.flatnonzero(subjects == subject)
        covs[subject], counts[subject] = mean_covariance(RowView(data, index)), len(index)
    pooled = sum(counts[s] * covs[s] for s in covs) / len(subjects)
    out = {str(s): whitener(c, shrinkage) for s, c in covs.items()}
    out[AGNOSTIC] = whitener(pooled, shrinkage)
    return out


def policy_keys(subjects, whiteners, n_epochs):
    """The whitener key of each epoch and the subjects that fell back to ``''``.

    Returns
    -------
    keys : ndarray of str, shape (n_epochs,)
        The epoch's subject when it has a whitener, else ``''``.
    fallback : list of str | None
        The subjects without a whitener (None: the epochs have no subjects).
    """
    if subjects is None:
        return np.full(n_epochs, AGNOSTIC), None
    known = np.isin(subjects, list(whiteners))
    return np.where(known, subjects, AGNOSTIC), sorted({str(s) for s in subjects[~known]})


def align(data, keys, whiteners):
    """``data`` seen through the whitener of each epoch's key, as an :class:`AlignedEEG`."""
    if AGNOSTIC in set(keys) and AGNOSTIC not in whiteners:
        raise ValueError(
            "This encoder has no subject-agnostic alignment (it was saved by an older "
            "version): calibrate each new subject first with encoder.calibrate(epochs) "
            "(or subjects=... for arrays).")
    names = sorted(whiteners)
    codes = np.searchsorted(names, keys)
    return AlignedEEG(data, np.stack([whiteners[n] for n in names]), codes)


class SubjectAlignment:
    """The encoder's input layer: EEG checked against fit, aligned by subject, scaled.

    Per-subject whiteners are fitted, calibrated and applied here. A mixin of
    :class:`~mne_synapse.SynapseEncoder` (which gives ``alignment``,
    ``alignment_shrinkage``, ``subject_column`` and the fitted signal).
    """

    def _checked(self, X):
        """EEG of ``X`` (read lazily) and its metadata, checked against fit."""
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "net_")
        data, info, metadata = _inputs.get_data(X, lazy=True)
        if self.preset == "paper":  # says how to crop, and which channels
            _inputs.check_paper_input(self.module_kwargs_, *data.shape[1:])
        _inputs.check_same_signal(data, info, dict(
            n_chans=self.n_chans_, n_times=self.n_times_, sfreq=self.sfreq_,
            ch_names=self.ch_names_))
        _inputs.check_scale(_inputs.signal_rms(data), getattr(self, "signal_rms_", None))
        return data, metadata

    def _prepare(self, X, subjects=None):
        """Checked and aligned EEG of ``X``, read lazily."""
        return self._align(*self._checked(X), subjects)

    def _scale(self, data):
        """Per-channel standardisation learned in fit (after alignment)."""
        return (data - self.scale_mean_) / self.scale_std_

    def _fit_alignment(self, data, metadata, subjects):
        """Learn the whiteners of fit; return ``data`` aligned."""
        subjects = epoch_subjects(len(data), metadata, self.subject_column, subjects)
        self.subject_aware_ = subjects is not None
        self.whiteners_ = None if self.alignment is None else fit_alignment(
            data, subjects, self.alignment_shrinkage)
        return self._align(data, metadata, subjects)

    def _align(self, data, metadata, subjects=None):
        """``data`` as the network sees it, by the policy of this module's docstring.

        Warns when an encoder fitted with subjects meets epochs without a subject
        or of an uncalibrated subject (they get the subject-agnostic whitener).
        """
        if self.whiteners_ is None:
            return data
        subjects = epoch_subjects(len(data), metadata, self.subject_column, subjects)
        keys, fallback = policy_keys(subjects, self.whiteners_, len(data))
        if self.subject_aware_ and (fallback is None or fallback):
            import warnings

            who = (f"of subject(s) {fallback[:5]}{' ...' if len(fallback) > 5 else ''}, "
                   "neither seen in fit nor calibrated," if fallback else "without a subject")
            warnings.warn(
                f"{int(np.sum(keys == AGNOSTIC))} epoch(s) {who} are aligned with the "
                "subject-agnostic whitener (all training epochs). For a subject's own "
                "alignment call encoder.calibrate(its epochs) first; pass arrays with "
                f"subjects=... (or Epochs with metadata[{self.subject_column!r}]).",
                UserWarning, stacklevel=4)
        return align(data, keys, self.whiteners_)

    def calibrate(self, X, subjects=None):
        """Learn the alignment of subjects from their epochs (no labels needed).

        Estimates each subject's whitener from the epochs given, as fit does,
        and keeps it in ``whiteners_`` (saved with the encoder): every later
        call embeds that subject's epochs with it, one at a time or in any
        batch. Pass all the epochs of a subject you have (tens at least);
        calibrating a known subject replaces its whitener. Nothing to do with
        ``alignment=None``. See :doc:`/own_data`.

        Parameters
        ----------
        X : mne.Epochs | ndarray, shape (n_epochs, n_chans, n_times)
            EEG of one or more subjects (channels and times as in fit).
        subjects : array-like | str | int | None
            The subject of each epoch, or one for all; by default
            ``X.metadata[subject_column]``.

        Returns
        -------
        self : SynapseEncoder
        """
        data, metadata = self._checked(X)
        if self.whiteners_ is None:
            return self
        subjects = epoch_subjects(len(data), metadata, self.subject_column, subjects)
        if subjects is None:
            raise ValueError(
                "calibrate needs the subject of each epoch: pass Epochs with "
                f"metadata[{self.subject_column!r}], or subjects= (one per epoch, or one "
                "for all).")
        self.whiteners_ = {**self.whiteners_,
                           **fit_whiteners(data, subjects, self.alignment_shrinkage)}
        return self


class RowView:
    """Rows ``index`` of ``data``, sliceable in chunks without copying the rest."""

    def __init__(self, data, index):
        self.data, self.index = data, index
        self.shape = (len(index), *data.shape[1:])

    def __getitem__(self, item):
        return np.asarray(self.data[self.index[item]])


class AlignedEEG:
    """View of EEG with each epoch multiplied by its group's whitener, read on demand.

    Sliceable like the array (or :class:`~mne_synapse._inputs.LazyEEG`) it
    wraps, so training and inference stream aligned batches without an
    aligned copy of the data set.

    Parameters
    ----------
    data : array-like, shape (n_epochs, n_chans, n_times)
        EEG.
    matrices : ndarray, shape (n_groups, n_chans, n_chans)
        One whitener per group.
    codes : ndarray of int, shape (n_epochs,)
        Row of ``matrices`` for each epoch.
    """

    ndim = 3
    dtype = np.dtype(np.float32)

    def __init__(self, data, matrices, codes):
        self.data, self.matrices, self.codes = data, matrices, np.asarray(codes)
        self.shape = tuple(data.shape)

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, index):
        import torch

        # One batched matmul in torch: numpy's BLAS threads would compete with
        # torch's for the same cores while training (2x slower fits on 2 cores).
        x = torch.from_numpy(np.ascontiguousarray(self.data[index], dtype=np.float32))
        mats = torch.from_numpy(np.ascontiguousarray(self.matrices[self.codes[index]],
                                                     dtype=np.float32))
        return torch.matmul(mats, x).numpy()
