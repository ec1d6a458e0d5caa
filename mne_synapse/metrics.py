"""Scores of generated images and EEG embeddings, each with its chance level."""

import numpy as np


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
    hits = 0
    for p, ref in zip(proba, reference):
        others = np.delete(np.arange(n_classes), ref)
        for _ in range(n_repeats):
            rivals = p[rng.choice(others, n_way - 1, replace=False)]
            hits += np.sum(rivals >= p[ref]) < k
    return hits / (len(proba) * n_repeats)
