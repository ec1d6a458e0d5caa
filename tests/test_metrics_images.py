"""mne_synapse.metrics.images: FID / KID / IS with any feature extractor, paired image scores."""

import numpy as np
import pytest

from mne_synapse import metrics
from mne_synapse.metrics import Score, fid, inception_score, kid, pixel_correlation, ssim


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
