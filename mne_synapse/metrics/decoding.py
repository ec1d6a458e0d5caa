"""Decoding and retrieval scores: n-way top-k of generated images, Stage-1 decoding,
EEG -> image retrieval and latent-space neighbours, each with its chance level."""

import numpy as np

from ._score import Score


def n_way_top_k(proba, reference, n_way, k=1, n_repeats=50, random_state=None):
    """n-way top-k accuracy of classified generated images (DreamDiffusion / GWIT).

    For each generated image, the reference label (the classifier's label of
    the real stimulus) is drawn against ``n_way - 1`` random other classes; a
    success is the reference ranking among the top ``k`` of those ``n_way``
    by the classifier's probability for the generated image.

    Parameters
    ----------
    proba : array, shape (n_images, n_classes)
        Class probabilities of the generated images.
    reference : array of int, shape (n_images,)
        Reference label of each image's stimulus.
    n_way, k : int
        Number of candidates and rank counted as a success (chance ``k / n_way``).
    n_repeats : int
        Random draws of distractors per image.
    random_state : int | None
        Seed of the draws.

    Returns
    -------
    accuracy : float
        Ties with distractors are broken at random (in expectation).
    """
    proba = np.asarray(proba, dtype=float)
    reference = np.asarray(reference, dtype=int)
    n_classes = proba.shape[1]
    if not 2 <= n_way <= n_classes:
        raise ValueError(f"n_way must be in [2, {n_classes}], got {n_way}.")
    if not 1 <= k < n_way:
        raise ValueError(f"k must be in [1, n_way - 1], got {k}.")
    if len(reference) != len(proba) or reference.min() < 0 or reference.max() >= n_classes:
        raise ValueError("reference must hold one class index per row of proba.")
    rng = np.random.default_rng(random_state)
    hits = []
    for start in range(0, len(proba), 1000):  # bounded memory: (1000, n_repeats, n_classes)
        p, ref = proba[start:start + 1000], reference[start:start + 1000]
        rows = np.arange(len(p))
        # Distractors: the n_way - 1 smallest of random keys, the reference's key set to inf.
        keys = rng.random((len(p), n_repeats, n_classes))
        keys[rows, :, ref] = np.inf
        rivals = np.take_along_axis(
            p[:, None, :], np.argpartition(keys, n_way - 2, axis=2)[..., :n_way - 1], axis=2)
        p_ref = p[rows, ref][:, None, None]
        hits.append(_top_k_hit((rivals > p_ref).sum(2), (rivals == p_ref).sum(2), k))
    return float(np.mean(np.concatenate(hits)))


def _top_k_hit(n_higher, n_tied, k):
    """Chance that the true item ranks in the top k when its ties are broken at random.

    Counting ties as losses would put a constant classifier below chance,
    counting them as wins above it.
    """
    return np.clip((k - np.asarray(n_higher)) / (np.asarray(n_tied) + 1.0), 0.0, 1.0)


# -- Stage 1 ------------------------------------------------------------------------
def decoding_accuracy(y_true, y_score, k=1, classes=None):
    """Top-k decoding accuracy, with the accuracy of the best constant guess as chance.

    Parameters
    ----------
    y_true : array, shape (n,)
        True labels.
    y_score : array, shape (n,) | (n, n_classes)
        Predicted labels (``k=1`` only) or class scores (e.g. ``predict_proba``).
    k : int
        A success is the true class among the ``k`` best scored (ties broken
        at random, in expectation).
    classes : array, shape (n_classes,) | None
        The label of each score column (default ``0 .. n_classes - 1``).

    Returns
    -------
    score : Score
        ``chance`` is the summed frequency of the ``k`` most frequent labels
        (``k / n_classes`` for balanced labels).
    """
    y_true = np.asarray(y_true)
    y_score = np.asarray(y_score)
    if len(y_score) != len(y_true):
        raise ValueError(f"Got {len(y_score)} predictions for {len(y_true)} labels.")
    if y_score.ndim == 1:
        if k != 1:
            raise ValueError("Top-k accuracy with k > 1 needs class scores (n, n_classes).")
        hits = y_score == y_true
    else:
        classes = np.arange(y_score.shape[1]) if classes is None else np.asarray(classes)
        if len(classes) != y_score.shape[1] or not 1 <= k <= len(classes):
            raise ValueError(f"Need one class per score column and k in [1, {len(classes)}].")
        is_true = classes[None, :] == y_true[:, None]
        if not is_true.any(axis=1).all():
            raise ValueError("Every label of y_true must be one of classes.")
        true_score = y_score[is_true][:, None]
        hits = _top_k_hit(np.sum(y_score > true_score, axis=1),
                          np.sum(y_score == true_score, axis=1) - 1, k)
    counts = np.sort(np.unique(y_true, return_counts=True)[1])[::-1]
    return Score(f"top-{k} accuracy", float(np.mean(hits)), chance=counts[:k].sum() / len(y_true))


def _unit(x):
    x = np.asarray(x, dtype=float).reshape(len(x), -1)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def retrieval_top_k(queries, candidates, truth, k=1):
    """EEG -> image retrieval: the true image among the ``k`` most cosine-similar candidates.

    Parameters
    ----------
    queries : array, shape (n, d)
        EEG embeddings (e.g. ``SynapseEncoder.transform``).
    candidates : array, shape (n_candidates, d)
        Candidate image embeddings (e.g. CLIP embeddings of the test images).
    truth : array of int, shape (n,)
        Row of ``candidates`` that each query saw.
    k : int
        Rank counted as a success.

    Returns
    -------
    score : Score
        ``chance`` is ``k / n_candidates``.
    """
    truth = np.asarray(truth, dtype=int)
    queries, candidates = _unit(queries), _unit(candidates)
    if queries.shape[1] != candidates.shape[1]:
        raise ValueError(f"queries have {queries.shape[1]} features, candidates "
                         f"{candidates.shape[1]}; embed both into one space.")
    if len(truth) != len(queries) or truth.min() < 0 or truth.max() >= len(candidates):
        raise ValueError("truth must hold one candidate row index per query.")
    if not 1 <= k <= len(candidates):
        raise ValueError(f"k must be in [1, {len(candidates)}], got {k}.")
    sim = queries @ candidates.T
    true_sim = sim[np.arange(len(truth)), truth][:, None]
    hits = _top_k_hit(np.sum(sim > true_sim, axis=1), np.sum(sim == true_sim, axis=1) - 1, k)
    return Score(f"retrieval top-{k}", float(np.mean(hits)), chance=k / len(candidates))


def neighbour_agreement(latents, labels, n_neighbors=5, groups=None):
    """Latent-space quality: share of each epoch's nearest neighbours of its class.

    Leave-one-out cosine nearest neighbours; neighbours from the epoch's own
    group (e.g. the same image seen again) can be excluded, so that repeated
    trials do not inflate the score.

    Parameters
    ----------
    latents : array, shape (n, ...)
        Embeddings (trailing dimensions are flattened).
    labels : array, shape (n,)
        Class of each epoch.
    n_neighbors : int
        Neighbours per epoch.
    groups : array, shape (n,) | None
        Epochs of one group are never neighbours of each other.

    Returns
    -------
    score : Score
        ``chance`` is the expected share for neighbours drawn at random from
        the eligible epochs.
    """
    x = _unit(latents)
    labels = np.asarray(labels)
    if len(labels) != len(x):
        raise ValueError(f"Got {len(labels)} labels for {len(x)} latents.")
    eligible = ~np.eye(len(x), dtype=bool)
    if groups is not None:
        groups = np.asarray(groups)
        eligible &= groups[:, None] != groups[None, :]
    n_eligible = eligible.sum(1)
    if not 1 <= n_neighbors <= n_eligible.min():
        raise ValueError(f"n_neighbors must be in [1, {n_eligible.min()}] (eligible "
                         f"neighbours per epoch), got {n_neighbors}.")
    sim = np.where(eligible, x @ x.T, -np.inf)
    nearest = np.argpartition(-sim, n_neighbors - 1, axis=1)[:, :n_neighbors]
    same = labels[:, None] == labels[None, :]
    value = np.mean(same[np.arange(len(x))[:, None], nearest])
    chance = np.mean((same & eligible).sum(1) / n_eligible)
    return Score(f"{n_neighbors}-NN class agreement", float(value), chance=float(chance))
