"""Euclidean alignment: the encoder's per-subject input layer."""

import numpy as np
import pytest

from mne_synapse import SynapseEncoder
from mne_synapse._alignment import AlignedEEG, fit_whiteners, mean_covariance, whitener

FAST = dict(max_epochs=1, batch_size=16,
            module_kwargs=dict(widths=(8, 16), n_heads=2))


def _mixed_subjects(rng, n_epochs=40, n_chans=6, n_times=50):
    """Two subjects seeing the same sources through different mixing matrices."""
    sources = rng.standard_normal((2 * n_epochs, n_chans, n_times))
    mixing = rng.standard_normal((2, n_chans, n_chans)) + 3 * np.eye(n_chans)
    groups = np.repeat(["a", "b"], n_epochs)
    data = np.stack([mixing[int(g == "b")] @ s for g, s in zip(groups, sources)])
    return data.astype(np.float32), groups


def test_whitened_subjects_have_identity_covariance():
    data, groups = _mixed_subjects(np.random.default_rng(0))
    assert not np.allclose(mean_covariance(data[groups == "a"]), np.eye(6), atol=0.5)
    whiteners = fit_whiteners(data, groups, shrinkage=0.0)
    codes = (groups == "b").astype(int)
    aligned = AlignedEEG(data, np.stack([whiteners["a"], whiteners["b"]]), codes)
    for g in ("a", "b"):
        cov = mean_covariance(aligned[np.flatnonzero(groups == g)])
        np.testing.assert_allclose(cov, np.eye(6), atol=1e-4)


def test_aligned_view_reads_like_the_full_product():
    data, groups = _mixed_subjects(np.random.default_rng(1), n_epochs=5)
    mats = np.stack(list(fit_whiteners(data, groups, 0.1).values()))
    codes = (groups == "b").astype(int)
    full = np.stack([mats[c] @ x for c, x in zip(codes, data)])
    view = AlignedEEG(data, mats, codes)
    np.testing.assert_allclose(view[2:7], full[2:7], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(view[[7, 0, 3]], full[[7, 0, 3]], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(view[4], full[4], rtol=1e-5, atol=1e-6)


def test_shrinkage_keeps_a_singular_montage_invertible():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((20, 4, 30))
    x -= x.mean(axis=1, keepdims=True)  # average reference: rank 3
    cov = mean_covariance(x)
    with pytest.raises(ValueError, match="singular.*alignment_shrinkage > 0"):
        whitener(cov, 0.0)
    assert np.all(np.isfinite(whitener(cov, 0.1)))
    with pytest.raises(ValueError, match="no variance.*alignment=None"):
        whitener(np.zeros((3, 3)), 0.1)


@pytest.fixture(scope="module")
def fitted(small_synthetic):
    return SynapseEncoder(random_state=0, verbose=False, **FAST).fit(small_synthetic.epochs)


def test_encoder_learns_one_whitener_per_subject(fitted, small_synthetic):
    subjects = sorted(small_synthetic.epochs.metadata.subject.astype(str).unique())
    assert sorted(fitted.whiteners_) == subjects
    assert fitted.subject_aware_
    n = fitted.n_chans_
    assert all(w.shape == (n, n) for w in fitted.whiteners_.values())


def test_seen_subjects_transform_independently_of_the_batch(fitted, small_synthetic):
    epochs = small_synthetic.epochs
    whole = fitted.transform(epochs)
    np.testing.assert_allclose(fitted.transform(epochs[[5, 1]]), whole[[5, 1]],
                               rtol=1e-5, atol=1e-6)


def test_unseen_subject_is_aligned_from_its_own_epochs(small_synthetic):
    epochs = small_synthetic.epochs
    md = epochs.metadata
    first = md.subject == md.subject.iloc[0]
    est = SynapseEncoder(alignment_shrinkage=0.0, random_state=0, verbose=False,
                         **FAST).fit(epochs[first.to_numpy()])
    other = epochs[(~first).to_numpy()]
    aligned = est._prepare(other)
    assert str(md.subject[~first].iloc[0]) not in est.whiteners_  # fitted state unchanged
    np.testing.assert_allclose(mean_covariance(aligned[:]), np.eye(est.n_chans_), atol=1e-3)
    # The same data under the fitted subject's whitener are aligned differently.
    as_seen = other.copy()
    as_seen.metadata["subject"] = md.subject.iloc[0]
    assert not np.allclose(est.transform(as_seen), est.transform(other), atol=1e-4)


def test_arrays_without_subjects_use_the_one_fitted_whitener(small_synthetic):
    epochs = small_synthetic.epochs
    data = epochs.get_data()
    est = SynapseEncoder(random_state=0, verbose=False, **FAST).fit(
        data, epochs.metadata.label.to_numpy(),
        images=small_synthetic.images[epochs.metadata.image_index])
    assert list(est.whiteners_) == [""] and not est.subject_aware_
    np.testing.assert_allclose(est.transform(data[:3]), est.transform(data)[:3],
                               rtol=1e-5, atol=1e-6)


def test_alignment_none_and_reconstruction_units(small_synthetic):
    epochs = small_synthetic.epochs
    plain = SynapseEncoder(alignment=None, random_state=0, verbose=False, **FAST).fit(epochs)
    assert plain.whiteners_ is None
    aligned = SynapseEncoder(random_state=0, verbose=False, **FAST).fit(epochs)
    assert not np.allclose(plain.transform(epochs), aligned.transform(epochs))
    # Reconstructions come back in the input's units for both.
    scale = np.abs(epochs.get_data()).mean()
    for est in (plain, aligned):
        x_hat = est.reconstruct(epochs[:4])
        assert x_hat.shape == epochs[:4].get_data().shape
        assert 0.05 < np.abs(x_hat).mean() / scale < 20


def test_save_load_keeps_the_whiteners(fitted, small_synthetic, tmp_path):
    fitted.save(tmp_path / "enc")
    loaded = SynapseEncoder.load(tmp_path / "enc")
    assert sorted(loaded.whiteners_) == sorted(fitted.whiteners_)
    np.testing.assert_array_equal(loaded.transform(small_synthetic.epochs),
                                  fitted.transform(small_synthetic.epochs))
