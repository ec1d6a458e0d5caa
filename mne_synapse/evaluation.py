"""Evaluation protocols: leave one subject out, zero-shot retrieval on unseen concepts,
and the shuffled-stimulus control.

Every score comes with its chance level and a shuffled control.
"""

import numpy as np

from . import _inputs
from .utils import is_verbose


def leave_one_subject_out(estimator, epochs, y, subject_column="subject",
                          split_column="split", test_split="test", scoring=None,
                          shuffled_control=True, calibrate=True, random_state=0,
                          verbose=False):
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
        Also fit each fold on training epochs whose stimuli are permuted
        (:func:`permute_stimuli`: labels, images and captions move together,
        so an encoder that learns from the images is refitted on the broken
        pairing too): the score of the whole pipeline when the EEG carries
        nothing about the stimulus (about chance).
    calibrate : bool
        Before scoring, calibrate the estimator (or its first step, in a
        Pipeline) on the left-out subject's test epochs, without their labels,
        if it has a ``calibrate`` method (:meth:`SynapseEncoder.calibrate`:
        Euclidean alignment of the new subject). False scores the new subject
        uncalibrated (the encoder's subject-agnostic alignment).
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
        model = _calibrated(clone(estimator).fit(epochs[train], y[train]), epochs[test],
                            calibrate)
        scorer = check_scoring(model, scoring=scoring)
        row = dict(subject=subject, score=float(scorer(model, epochs[test], y[test])),
                   chance=float(np.max(np.unique(y[test], return_counts=True)[1]) / len(test)))
        if shuffled_control:
            order = rng.permutation(len(train))
            control = _calibrated(
                clone(estimator).fit(_permuted(epochs[train], order, (subject_column,)),
                                     y[train][order]), epochs[test], calibrate)
            row["shuffled"] = float(scorer(control, epochs[test], y[test]))
        row.update(n_train=len(train), n_test=len(test))
        if is_verbose(verbose):
            logger.info(f"subject {subject} left out: score {row['score']:.3f} "
                        f"(chance {row['chance']:.3f})")
        rows.append(row)
    return pd.DataFrame(rows)


def permute_stimuli(epochs, keep=("subject",), random_state=None):
    """A copy of ``epochs`` whose stimuli are permuted among the epochs.

    The EEG of each epoch is paired with another epoch's metadata row (image,
    caption, label, ...: every column but ``keep``) and event code. A whole
    pipeline fitted on such epochs, and scored on untouched test epochs,
    gives the shuffled control: what it scores when the EEG says nothing
    about the stimulus. Unlike permuting the labels alone, it also breaks the
    pairing an encoder learns from (EEG with the CLIP embedding of its image).

    Parameters
    ----------
    epochs : mne.Epochs
        Epochs with metadata.
    keep : sequence of str
        Metadata columns that stay with the EEG (they describe the recording,
        not the stimulus).
    random_state : int | None
        Seed of the permutation.

    Returns
    -------
    shuffled : mne.Epochs
        The same EEG with permuted stimuli.
    """
    if not _inputs.is_epochs(epochs) or epochs.metadata is None:
        raise TypeError("permute_stimuli needs mne.Epochs with metadata (the stimuli), got "
                        f"{type(epochs).__name__}.")
    missing = [c for c in keep if c not in epochs.metadata]
    if missing:
        raise ValueError(f"keep names columns that are not in the metadata: {missing}.")
    order = np.random.default_rng(random_state).permutation(len(epochs))
    return _permuted(epochs, order, keep)


def _permuted(epochs, order, keep):
    """``epochs`` with metadata rows (but ``keep``) and event codes taken in ``order``."""
    shuffled = epochs.copy()
    metadata = epochs.metadata.copy()
    moved = [c for c in metadata.columns if c not in keep]
    metadata[moved] = epochs.metadata[moved].iloc[order].to_numpy()
    shuffled.metadata = metadata.astype(epochs.metadata.dtypes.to_dict())
    shuffled.events[:, 2] = epochs.events[order, 2]
    return shuffled


def _calibrated(model, epochs, calibrate):
    """``model`` with its calibrating step (itself or a Pipeline's first) fitted to ``epochs``."""
    first = model.steps[0][1] if hasattr(model, "steps") else model
    if calibrate and hasattr(first, "calibrate"):
        first.calibrate(epochs)
    return model


def zero_shot(encoder, epochs, embed_images, image_column="image_path",
              label_column="label", n_permutations=20, random_state=0):
    """Zero-shot EEG -> image retrieval and classification (the NICE / ATM protocol).

    Meant for epochs of concepts the encoder never saw in training (THINGS-EEG2's
    200 test concepts, or held-out classes): each epoch's ``encoder.transform``
    embedding is compared by cosine with the CLIP image embeddings of

    - every distinct stimulus image in ``epochs`` (retrieval; n-way = number of
      those images), and
    - one prototype per class, the mean embedding of its images
      (classification; n-way = number of classes).

    Parameters
    ----------
    encoder : fitted transformer
        E.g. a fitted :class:`~mne_synapse.SynapseEncoder`; its ``transform``
        must land in the space of ``embed_images``.
    epochs : mne.Epochs
        Test EEG with ``image_column`` and ``label_column`` in its metadata.
    embed_images : callable
        Maps a list of images (paths) to an array (n_images, embed_dim), e.g.
        ``CLIPEmbedder(...).embed_images`` of the CLIP model the encoder was
        aligned to.
    image_column, label_column : str
        Metadata columns of the stimulus image and of its class.
    n_permutations : int
        Random pairings averaged in the shuffled-EEG control.
    random_state : int | None
        Seed of the control's permutations.

    Returns
    -------
    scores : pandas.DataFrame
        Rows ``retrieval`` and ``classification``; columns ``n_way``, ``top1``,
        ``top5`` (NaN when n-way <= 5, where it is always 1), ``chance`` (of
        top-1) and ``shuffled`` (top-1 with the EEG paired with other epochs'
        stimuli).
    """
    import pandas as pd

    from .metrics import retrieval_top_k, shuffled_control

    metadata = getattr(epochs, "metadata", None)
    for column in (image_column, label_column):
        if metadata is None or column not in metadata:
            raise ValueError(f"epochs.metadata has no {column!r} column; zero-shot scores "
                             "need each epoch's stimulus image and class.")
    paths = metadata[image_column].astype(str).to_numpy()
    labels = metadata[label_column].to_numpy()
    images, truth = np.unique(paths, return_inverse=True)
    image_emb = np.asarray(embed_images(list(images)), dtype=float)
    classes, class_truth = np.unique(labels, return_inverse=True)
    if len(classes) < 2:
        raise ValueError("Zero-shot classification needs epochs of at least 2 classes.")
    image_class = np.searchsorted(classes, [labels[np.flatnonzero(paths == p)[0]]
                                            for p in images])
    prototypes = np.stack([image_emb[image_class == c].mean(axis=0)
                           for c in range(len(classes))])
    z = encoder.transform(epochs)
    rows = {}
    for task, candidates, target in (("retrieval", image_emb, truth),
                                     ("classification", prototypes, class_truth)):
        top1 = retrieval_top_k(z, candidates, target, k=1)
        top5 = (retrieval_top_k(z, candidates, target, k=5).value
                if len(candidates) > 5 else np.nan)
        control = shuffled_control(lambda q, t, c=candidates: retrieval_top_k(q, c, t),
                                   z, target, n_permutations=n_permutations,
                                   random_state=random_state)
        rows[task] = dict(n_way=len(candidates), top1=top1.value, top5=top5,
                          chance=top1.chance, shuffled=control)
    return pd.DataFrame.from_dict(rows, orient="index")
