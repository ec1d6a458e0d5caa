"""Cross-subject evaluation: leave one subject out, with chance and a shuffled-label control."""

import numpy as np

from . import _inputs
from .utils import is_verbose


def leave_one_subject_out(estimator, epochs, y, subject_column="subject",
                          split_column="split", test_split="test", scoring=None,
                          shuffled_control=True, random_state=0, verbose=False):
    """Fit on all subjects but one, score on the one left out; every subject in turn.

    Folds are scikit-learn's :class:`~sklearn.model_selection.LeaveOneGroupOut`
    with groups = subjects. When the metadata has ``split_column`` the folds
    are image-disjoint as well: training uses the other subjects' epochs of
    every split but ``test_split``, and testing the left-out subject's epochs
    of ``test_split`` only, so neither the subject nor the images of a test
    epoch were seen in training.

    Parameters
    ----------
    estimator : scikit-learn estimator
        E.g. ``make_pipeline(SynapseEncoder(), LogisticRegression())``; cloned
        for every fold.
    epochs : mne.Epochs
        EEG with ``subject_column`` (and optionally ``split_column``) in its
        metadata.
    y : array-like, shape (n_epochs,)
        Class labels.
    subject_column, split_column : str
        Metadata columns of the subject and of the train/test split.
    test_split : str
        Value of ``split_column`` that marks test epochs.
    scoring : str | callable | None
        scikit-learn scorer (None: the estimator's ``score``, accuracy for
        classifiers).
    shuffled_control : bool
        Also fit each fold on permuted training labels: the score a model
        makes of the EEG-label pairing alone being broken (about chance).
    random_state : int | None
        Seed of the label permutations.
    verbose : bool | str | int | None
        MNE-style verbosity; a line per fold when True or ``'info'``.

    Returns
    -------
    scores : pandas.DataFrame
        One row per left-out subject: ``subject``, ``score``, ``chance`` (share
        of the test epochs in their most frequent class), ``shuffled`` (if
        asked), ``n_train`` and ``n_test``.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> scores = leave_one_subject_out(
    ...     make_pipeline(SynapseEncoder(), LogisticRegression()),
    ...     epochs, epochs.metadata["label"])  # doctest: +SKIP
    >>> scores.score.mean()  # doctest: +SKIP
    """
    import pandas as pd
    from mne.utils import logger
    from sklearn.base import clone
    from sklearn.metrics import check_scoring
    from sklearn.model_selection import LeaveOneGroupOut

    if not _inputs.is_epochs(epochs):
        raise TypeError(f"epochs must be mne.Epochs with a {subject_column!r} metadata "
                        f"column, got {type(epochs).__name__}.")
    metadata = epochs.metadata
    if metadata is None or subject_column not in metadata:
        raise ValueError(f"epochs.metadata has no {subject_column!r} column; add the "
                         "subject of each epoch or pass subject_column=.")
    y = np.asarray(y)
    if len(y) != len(epochs):
        raise ValueError(f"y has {len(y)} labels for {len(epochs)} epochs.")
    subjects = metadata[subject_column].to_numpy()
    if len(np.unique(subjects)) < 2:
        raise ValueError("Leave-one-subject-out needs epochs of at least 2 subjects.")
    if split_column in metadata:
        is_test = (metadata[split_column] == test_split).to_numpy()
        if not is_test.any():
            raise ValueError(f"No epoch has {split_column} == {test_split!r}; pass the "
                             "test_split value your metadata uses.")
    else:
        is_test = np.ones(len(epochs), bool)
    rng = np.random.default_rng(random_state)
    rows = []
    for train, test in LeaveOneGroupOut().split(np.zeros(len(y)), y, subjects):
        train, test = train[~is_test[train]], test[is_test[test]]
        subject = subjects[test[0]]
        model = clone(estimator).fit(epochs[train], y[train])
        scorer = check_scoring(model, scoring=scoring)
        row = dict(subject=subject, score=float(scorer(model, epochs[test], y[test])),
                   chance=float(np.max(np.unique(y[test], return_counts=True)[1]) / len(test)))
        if shuffled_control:
            control = clone(estimator).fit(epochs[train], rng.permutation(y[train]))
            row["shuffled"] = float(scorer(control, epochs[test], y[test]))
        row.update(n_train=len(train), n_test=len(test))
        if is_verbose(verbose):
            logger.info(f"subject {subject} left out: score {row['score']:.3f} "
                        f"(chance {row['chance']:.3f})")
        rows.append(row)
    return pd.DataFrame(rows)
