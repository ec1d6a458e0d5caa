"""mne_synapse.metrics.decoding: n-way top-k, decoding, retrieval, neighbours, with chance."""

import numpy as np
import pytest

from mne_synapse.metrics import (decoding_accuracy, n_way_top_k, neighbour_agreement,
                                 retrieval_top_k, shuffled_control)


# -- n-way --------------------------------------------------------------------------
def test_perfect_classifier_scores_one():
    labels = np.arange(10).repeat(3)
    proba = np.eye(10)[labels] * 0.9 + 0.01
    assert n_way_top_k(proba, labels, n_way=10) == 1.0
    assert n_way_top_k(proba, labels, n_way=2) == 1.0


def test_constant_classifier_scores_chance():
    """Ties are broken at random: a classifier that says nothing scores k / n_way."""
    labels = np.arange(10).repeat(2)
    assert n_way_top_k(np.ones((20, 10)), labels, n_way=5, k=2) == pytest.approx(0.4)


def test_random_predictions_score_chance():
    rng = np.random.default_rng(0)
    proba = rng.random((400, 10))
    labels = rng.integers(0, 10, 400)
    for n_way, k in [(2, 1), (5, 1), (10, 1), (10, 5)]:
        score = n_way_top_k(proba, labels, n_way=n_way, k=k, random_state=0)
        assert score == pytest.approx(k / n_way, abs=0.03)


def test_shuffled_perfect_classifier_scores_chance():
    labels = np.arange(10).repeat(30)
    proba = np.eye(10)[labels] * 0.9 + 0.01
    score = shuffled_control(lambda p, y: n_way_top_k(p, y, n_way=5, n_repeats=5),
                             proba, labels, n_permutations=5, random_state=0)
    assert score == pytest.approx(1 / 5, abs=0.04)


def test_bad_arguments():
    proba = np.ones((3, 4)) / 4
    with pytest.raises(ValueError, match="n_way"):
        n_way_top_k(proba, [0, 1, 2], n_way=5)
    with pytest.raises(ValueError, match="k must"):
        n_way_top_k(proba, [0, 1, 2], n_way=2, k=2)
    with pytest.raises(ValueError, match="reference"):
        n_way_top_k(proba, [0, 1], n_way=2)


# -- Stage 1 ------------------------------------------------------------------------
def test_decoding_accuracy():
    y = np.arange(5).repeat(4)
    perfect = decoding_accuracy(y, np.eye(5)[y])
    assert perfect.value == 1.0 and perfect.chance == pytest.approx(0.2)
    assert decoding_accuracy(y, -np.eye(5)[y], k=4).value == 0.0  # true class ranked last
    # A constant score ties every class: top-k is then chance, not 0 or 1.
    constant = decoding_accuracy(y, np.ones((20, 5)), k=2)
    assert constant.value == pytest.approx(0.4) and constant.chance == pytest.approx(0.4)
    imbalanced = decoding_accuracy(np.r_[np.zeros(8), np.ones(2)], np.ones((10, 2)))
    assert imbalanced.chance == pytest.approx(0.8)
    assert decoding_accuracy(y, y).value == 1.0
    with pytest.raises(ValueError, match="k > 1"):
        decoding_accuracy(y, y, k=2)


def test_retrieval_identity_one_and_shuffled_chance():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(50, 16))
    truth = np.arange(50)
    for k in (1, 5):
        score = retrieval_top_k(emb, emb, truth, k=k)
        assert score.value == 1.0 and score.chance == k / 50
        shuffled = shuffled_control(lambda q, t: retrieval_top_k(q, emb, t, k=k), emb, truth,
                                    n_permutations=20, random_state=0)
        assert shuffled == pytest.approx(k / 50, abs=0.03)
    with pytest.raises(ValueError, match="features"):
        retrieval_top_k(emb, emb[:, :3], truth)


def test_neighbour_agreement():
    rng = np.random.default_rng(0)
    labels = np.arange(4).repeat(10)
    clustered = np.eye(4)[labels] * 5 + rng.normal(size=(40, 4)) * 0.1
    score = neighbour_agreement(clustered, labels, n_neighbors=3)
    assert score.value == 1.0
    assert score.chance == pytest.approx(9 / 39)
    noise = neighbour_agreement(rng.normal(size=(40, 8)), labels, n_neighbors=3)
    assert abs(noise.value - noise.chance) < 0.15
    # A group per pair of epochs: a same-group neighbour is never counted.
    twins = np.repeat(rng.normal(size=(20, 8)), 2, axis=0)
    twin_labels = np.arange(20).repeat(2)
    assert neighbour_agreement(twins, twin_labels, n_neighbors=1).value == 1.0
    assert neighbour_agreement(twins, twin_labels, 1, groups=twin_labels).value == 0.0
