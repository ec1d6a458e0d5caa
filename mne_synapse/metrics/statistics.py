"""Controls and statistics: the shuffled-pairing control and permutation p-values."""

import numpy as np


def _take(b, idx):
    return b[idx] if isinstance(b, np.ndarray) else [b[i] for i in idx]


def shuffled_control(score_fn, a, b, n_permutations=10, random_state=None):
    """Mean score with the pairing of ``a`` and ``b`` permuted (the shuffled-EEG control).

    Parameters
    ----------
    score_fn : callable
        ``score_fn(a, b)`` returns a number (or a :class:`Score`).
    a, b : sequence
        Paired along their first axis (e.g. generated images and stimuli).
    n_permutations : int
        Random pairings averaged.
    random_state : int | None
        Seed of the permutations.

    Returns
    -------
    score : float
    """
    if len(a) != len(b):
        raise ValueError(f"a and b must be paired: got {len(a)} and {len(b)} items.")
    rng = np.random.default_rng(random_state)
    return float(np.mean([float(score_fn(a, _take(b, rng.permutation(len(b)))))
                          for _ in range(n_permutations)]))


def permutation_pvalue(score_fn, a, b, n_permutations=1000, alternative="greater",
                       random_state=None):
    """Permutation test of a paired score against permuted pairings (scipy).

    The p-value is ``(1 + #{null >= observed}) / (1 + n_permutations)`` (the
    +1 counts the observed pairing; exact when all permutations fit).

    Parameters
    ----------
    score_fn : callable
        ``score_fn(a, b)`` returns a number (or a :class:`Score`).
    a, b : sequence
        Paired along their first axis.
    n_permutations : int
        Random pairings.
    alternative : ``'greater'`` | ``'less'`` | ``'two-sided'``
        ``'less'`` for scores where lower is better (FID).
    random_state : int | None
        Seed of the permutations.

    Returns
    -------
    score : float
        The score of the true pairing.
    pvalue : float
    null : ndarray, shape (n_permutations,)
        Scores of the permuted pairings.
    """
    from scipy.stats import permutation_test

    if len(a) != len(b):
        raise ValueError(f"a and b must be paired: got {len(a)} and {len(b)} items.")
    if alternative not in ("greater", "less", "two-sided"):
        raise ValueError(f"alternative must be 'greater', 'less' or 'two-sided', got "
                         f"{alternative!r}.")
    result = permutation_test(
        (np.arange(len(b)),), lambda idx: float(score_fn(a, _take(b, idx))),
        permutation_type="pairings", vectorized=False, n_resamples=n_permutations,
        alternative=alternative, random_state=random_state)
    return float(result.statistic), float(result.pvalue), np.asarray(result.null_distribution)
