import numpy as np
import pytest

from mne_synapse.metrics import n_way_top_k


def test_perfect_classifier_scores_one():
    labels = np.arange(10).repeat(3)
    proba = np.eye(10)[labels] * 0.9 + 0.01
    assert n_way_top_k(proba, labels, n_way=10) == 1.0
    assert n_way_top_k(proba, labels, n_way=2) == 1.0


def test_random_predictions_score_chance():
    rng = np.random.default_rng(0)
    proba = rng.random((400, 10))
    labels = rng.integers(0, 10, 400)
    for n_way, k in [(2, 1), (5, 1), (10, 1), (10, 5)]:
        score = n_way_top_k(proba, labels, n_way=n_way, k=k, random_state=0)
        assert score == pytest.approx(k / n_way, abs=0.03)


def test_bad_arguments():
    proba = np.ones((3, 4)) / 4
    with pytest.raises(ValueError, match="n_way"):
        n_way_top_k(proba, [0, 1, 2], n_way=5)
    with pytest.raises(ValueError, match="k must"):
        n_way_top_k(proba, [0, 1, 2], n_way=2, k=2)
    with pytest.raises(ValueError, match="reference"):
        n_way_top_k(proba, [0, 1], n_way=2)
