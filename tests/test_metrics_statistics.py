"""mne_synapse.metrics.statistics: permutation p-values and bootstrap intervals."""

import numpy as np
import pytest

from mne_synapse import metrics
from mne_synapse.metrics import permutation_pvalue


# -- permutation test ---------------------------------------------------------------
def _corr(a, b):
    return np.corrcoef(a, b)[0, 1]


def test_permutation_pvalue_real_effect_and_null():
    rng = np.random.default_rng(0)
    a = rng.normal(size=40)
    score, p, null = permutation_pvalue(_corr, a, a + 0.5 * rng.normal(size=40),
                                        n_permutations=199, random_state=0)
    assert score > 0.8 and null.shape == (199,)
    assert p == pytest.approx(1 / 200)  # the +1 correction: never 0
    # No effect: p-values spread over (0, 1].
    pvalues = [permutation_pvalue(_corr, rng.normal(size=20), rng.normal(size=20),
                                  n_permutations=99, random_state=i)[1] for i in range(40)]
    assert 0.3 < np.mean(pvalues) < 0.7
    assert np.mean(np.asarray(pvalues) < 0.05) < 0.2
    less = permutation_pvalue(_corr, a, -a, n_permutations=99, alternative="less",
                              random_state=0)[1]
    assert less == pytest.approx(0.01)
    with pytest.raises(ValueError, match="paired"):
        permutation_pvalue(_corr, a, a[:5])
    with pytest.raises(ValueError, match="alternative"):
        permutation_pvalue(_corr, a, a, alternative="bigger")


# -- bootstrap intervals ------------------------------------------------------------
def test_bootstrap_interval_matches_the_binomial_interval():
    """Independent 0/1 trials: the normal-approximation interval of a proportion."""
    values = np.r_[np.ones(240), np.zeros(160)]  # p = 0.6, n = 400
    mean, low, high = metrics.bootstrap_interval(values, n_resamples=4000, random_state=0)
    half = 1.96 * np.sqrt(0.6 * 0.4 / 400)  # 0.048
    assert mean == pytest.approx(0.6)
    assert low == pytest.approx(0.6 - half, abs=0.006)
    assert high == pytest.approx(0.6 + half, abs=0.006)


def test_bootstrap_interval_draws_groups_together():
    """Four copies of each trial carry no more information than one: same interval."""
    rng = np.random.default_rng(1)
    values = (rng.random(100) < 0.5).astype(float)
    one = metrics.bootstrap_interval(values, n_resamples=4000, random_state=0)
    copies = np.repeat(values, 4)
    grouped = metrics.bootstrap_interval(copies, groups=np.repeat(np.arange(100), 4),
                                         n_resamples=4000, random_state=0)
    as_if_independent = metrics.bootstrap_interval(copies, n_resamples=4000, random_state=0)
    np.testing.assert_allclose(grouped, one, atol=0.01)
    width = lambda interval: interval[2] - interval[1]  # noqa: E731
    assert width(as_if_independent) == pytest.approx(width(one) / 2, rel=0.15)


def test_bootstrap_interval_strata_weigh_the_same():
    values = np.r_[np.ones(10), np.zeros(90)]  # stratum 0: mean 1; stratum 1: mean 0
    strata = np.r_[np.zeros(10), np.ones(90)]
    mean, low, high = metrics.bootstrap_interval(values, strata=strata, random_state=0)
    assert mean == pytest.approx(0.5)  # not the pooled 0.1
    assert low == high == pytest.approx(0.5)  # no variation within a stratum
    constant = metrics.bootstrap_interval(np.full(7, 0.3), random_state=0)
    np.testing.assert_allclose(constant, (0.3, 0.3, 0.3))


@pytest.mark.parametrize("kwargs, match", [
    (dict(values=[]), "non-empty"),
    (dict(values=[0.0, np.nan]), "finite"),
    (dict(values=[1.0, 0.0], groups=[1]), "one entry per value"),
    (dict(values=[1.0, 0.0], confidence=1.5), "confidence"),
    (dict(values=[1.0, 0.0], n_resamples=0), "n_resamples"),
])
def test_bootstrap_interval_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        metrics.bootstrap_interval(**kwargs)
