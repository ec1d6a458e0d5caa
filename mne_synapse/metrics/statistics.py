"""Controls and statistics: the shuffled-pairing control, permutation p-values and
bootstrap intervals over test items."""

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


def bootstrap_interval(values, groups=None, strata=None, confidence=0.95, n_resamples=2000,
                       random_state=None):
    """Mean of per-trial scores with a percentile bootstrap interval that resamples groups.

    Trials of one group (e.g. the epochs of one test image: its repetitions
    and subjects) are drawn together, so an interval does not pretend that
    they are independent. With ``strata`` (e.g. one per seed of a repeated
    experiment) groups are drawn within each stratum, and the statistic is
    the mean of the strata's means, each stratum weighing the same.

    Parameters
    ----------
    values : array-like, shape (n,)
        Score of each trial, e.g. 1 for a correct prediction and 0 otherwise.
    groups : array-like, shape (n,) | None
        Group of each trial (None: every trial is its own group).
    strata : array-like, shape (n,) | None
        Stratum of each trial (None: one stratum).
    confidence : float
        Coverage of the interval, in (0, 1).
    n_resamples : int
        Bootstrap resamples.
    random_state : int | None
        Seed of the resampling.

    Returns
    -------
    mean : float
        The statistic on the data as they are.
    low, high : float
        The ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of
        the resampled statistic.
    """
    values = np.asarray(values, dtype=float).ravel()
    n = len(values)
    if n == 0 or not np.isfinite(values).all():
        raise ValueError("values must be a non-empty array of finite numbers.")
    groups = np.arange(n) if groups is None else np.asarray(groups).ravel()
    strata = np.zeros(n, int) if strata is None else np.asarray(strata).ravel()
    if len(groups) != n or len(strata) != n:
        raise ValueError(f"groups and strata need one entry per value ({n}), got "
                         f"{len(groups)} and {len(strata)}.")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}.")
    if int(n_resamples) != n_resamples or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples!r}.")
    rng = np.random.default_rng(random_state)
    means, resampled = [], []
    for stratum in np.unique(strata):
        inside = strata == stratum
        _, code = np.unique(groups[inside], return_inverse=True)
        sums = np.bincount(code, weights=values[inside])
        counts = np.bincount(code).astype(float)
        means.append(sums.sum() / counts.sum())
        draws = rng.integers(len(sums), size=(int(n_resamples), len(sums)))
        resampled.append(sums[draws].sum(axis=1) / counts[draws].sum(axis=1))
    resampled = np.mean(resampled, axis=0)
    tail = (1 - confidence) / 2
    low, high = np.quantile(resampled, [tail, 1 - tail])
    return float(np.mean(means)), float(low), float(high)
