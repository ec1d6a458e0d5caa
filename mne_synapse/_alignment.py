"""Per-subject Euclidean alignment of EEG (He & Wu, 2019), used as the encoder's input layer.

Each subject's epochs are multiplied by ``R^{-1/2}``, where ``R`` is that
subject's mean spatial covariance (shrunk towards a scaled identity so that
few epochs, or a rank-deficient montage, still give a stable inverse). After
alignment every subject's mean covariance is the identity: head shape, lead
field and electrode impedances no longer move the data around, and the
background noise that dominates EEG is spatially white. It needs no labels,
so a subject never seen in training is aligned from its own (unlabelled)
epochs at transform time.
"""

import numpy as np

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


def fit_whiteners(data, groups, shrinkage, only=None):
    """One whitener per group (subject).

    Parameters
    ----------
    data : array-like, shape (n_epochs, n_chans, n_times)
        EEG.
    groups : ndarray, shape (n_epochs,)
        The group (subject) of each epoch.
    shrinkage : float
        See :func:`whitener`.
    only : sequence | None
        The groups to fit (default: all).

    Returns
    -------
    whiteners : dict
        ``{group: ndarray (n_chans, n_chans)}``.
    """
    out = {}
    for group in np.unique(groups) if only is None else only:
        index = np.flatnonzero(groups == group)
        out[str(group)] = whitener(mean_covariance(RowView(data, index)), shrinkage)
    return out


def subject_keys(subjects, n_epochs, subject_aware):
    """The whitener key of each epoch: its subject, or one key for all.

    An encoder fitted without subjects has one whitener, key ``''``. A
    subject-aware encoder given epochs without subjects treats them as one
    new subject, ``'<unknown>'``.
    """
    if subject_aware and subjects is not None:
        return subjects
    return np.full(n_epochs, "<unknown>" if subject_aware else "")


def align(data, keys, whiteners, shrinkage, verbose=False):
    """``data`` seen through the whitener of each epoch's group, as an :class:`AlignedEEG`.

    Groups of ``keys`` without a whitener in ``whiteners`` (subjects not seen
    in fit) get one fitted here, from their epochs in ``data``.
    """
    whiteners = dict(whiteners)
    new = sorted(set(np.unique(keys)) - set(whiteners))
    if new and verbose:
        from mne.utils import logger

        logger.info(f"Aligning subject(s) {new}, not seen in fit, from the "
                    f"{int(np.isin(keys, new).sum())} epochs given.")
    if new:
        whiteners.update(fit_whiteners(data, keys, shrinkage, only=new))
    names = sorted(whiteners)
    codes = np.searchsorted(names, keys)
    return AlignedEEG(data, np.stack([whiteners[n] for n in names]), codes)


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
