import numpy as np
import pytest

from mne_synapse import metrics
from mne_synapse.metrics import (Score, decoding_accuracy, fid, inception_score, kid,
                                 n_way_top_k, neighbour_agreement, permutation_pvalue,
                                 pixel_correlation, retrieval_top_k, shuffled_control, ssim)


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


# -- FID / KID / IS -----------------------------------------------------------------
@pytest.fixture(scope="module")
def feature_net():
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, stride=2), torch.nn.ReLU(),
                               torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten())


@pytest.fixture(scope="module")
def two_sets():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (80, 12, 12, 3), dtype=np.uint8)
    b = (a // 3 + 120).astype(np.uint8)  # darker, less contrasted
    return a, b


def test_fid_identical_zero_different_positive(feature_net, two_sets):
    a, b = two_sets
    same = fid(a, a, feature_net, name="random conv")
    assert isinstance(same, Score) and same.extractor == "random conv"
    assert "random conv" in str(same)
    different = fid(a, b, feature_net)
    assert same.value == pytest.approx(0, abs=1e-6)
    assert different.value > 1e3 * max(same.value, 1e-9) and different.value > 1e-3
    assert different.extractor == "Sequential"


def test_fid_matches_closed_form():
    """With channel means as features, FID is the Fréchet distance of 3-D Gaussians."""
    import scipy.linalg
    import torch

    class ChannelMean(torch.nn.Module):
        def forward(self, x):
            return x.mean(dim=(2, 3))

    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (60, 8, 8, 3), dtype=np.uint8)
    b = rng.integers(0, 200, (50, 8, 8, 3), dtype=np.uint8)
    fa, fb = (x.reshape(len(x), -1, 3).mean(1) / 255 for x in (a, b))
    covmean = scipy.linalg.sqrtm(np.cov(fa.T) @ np.cov(fb.T)).real
    expected = (np.sum((fa.mean(0) - fb.mean(0)) ** 2)
                + np.trace(np.cov(fa.T) + np.cov(fb.T) - 2 * covmean))
    assert fid(a, b, ChannelMean()).value == pytest.approx(expected, rel=1e-3)


def test_kid_identical_near_zero_different_positive(feature_net, two_sets):
    a, b = two_sets
    same = kid(a, a, feature_net, subset_size=40, n_subsets=20, random_state=0)
    different = kid(a, b, feature_net, subset_size=40, n_subsets=20, random_state=0)
    assert different.value > 20 * abs(same.value) and different.value > 0
    assert same.std is not None
    assert kid(a, b, feature_net, subset_size=40, n_subsets=20, random_state=0) == different
    with pytest.raises(ValueError, match="subset_size"):
        kid(a, b[:10], feature_net, subset_size=40)


def test_inception_score_known_values():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, 8, 8, 3), dtype=np.uint8)
    constant = inception_score(images, lambda ims: np.full((len(ims), 4), 0.25), n_splits=2)
    assert constant.value == pytest.approx(1.0, abs=1e-5)
    # Confident and balanced over 4 classes -> IS = 4.
    labels = {im.tobytes(): i % 4 for i, im in enumerate(images)}
    confident = inception_score(
        images, lambda ims: np.eye(4)[[labels[im.tobytes()] for im in ims]],
        n_splits=1, name="oracle")
    assert confident.value == pytest.approx(4.0, rel=1e-3)
    assert confident.extractor == "oracle"


def test_callable_extractor_is_named(two_sets):
    from mne_synapse.clip import CLIPEmbedder

    a, _ = two_sets
    clip = CLIPEmbedder("tiny", None)  # random weights: only the naming is tested here
    score = metrics.clip_similarity(a[:4], a[:4], clip.embed_images)
    assert score.value == pytest.approx(1.0)
    assert score.extractor == "CLIPEmbedder(tiny, None).embed_images"


def test_default_inception_fails_fast_and_says_why(monkeypatch, tmp_path, two_sets):
    a, b = two_sets
    monkeypatch.setattr(metrics.images, "_has_torch_fidelity", lambda: False)
    with pytest.raises(ModuleNotFoundError, match="torch-fidelity.*nn.Module"):
        fid(a, b, "inception")
    monkeypatch.setattr(metrics.images, "_has_torch_fidelity", lambda: True)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="weights-inception.*nn.Module"):
        kid(a, b, "inception")
    with pytest.raises(ValueError, match="'inception'"):
        fid(a, b, "vgg")
    with pytest.raises(TypeError, match="nn.Module"):
        fid(a, b, 3)


# -- paired image scores ------------------------------------------------------------
def test_ssim_and_pixel_correlation():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (6, 16, 16, 3), dtype=np.uint8)
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-6)
    assert pixel_correlation(a, a) == pytest.approx(1.0)
    assert pixel_correlation(a, 255 - a) == pytest.approx(-1.0)
    b = rng.integers(0, 256, (6, 16, 16, 3), dtype=np.uint8)
    assert ssim(a, b) < 0.2 and abs(pixel_correlation(a, b)) < 0.2
    # Stimuli of another size are compared at the generated size.
    big = np.repeat(np.repeat(a, 2, axis=1), 2, axis=2)
    assert pixel_correlation(a, big) > 0.9
    with pytest.raises(ValueError, match="one stimulus per generated"):
        ssim(a, b[:3])
    with pytest.raises(ValueError, match="one image per row"):
        ssim(a[:, None], a)


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
