"""Euclidean alignment: the encoder's per-subject input layer."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
    assert sorted(fitted.whiteners_) == ["", *subjects]  # '' = subject-agnostic
    assert fitted.subject_aware_
    n = fitted.n_chans_
    assert all(w.shape == (n, n) for w in fitted.whiteners_.values())
    # The subject-agnostic whitener is that of all training epochs together.
    data = small_synthetic.epochs.get_data()
    np.testing.assert_allclose(fitted.whiteners_[""], whitener(mean_covariance(data), 0.1),
                               rtol=1e-4, atol=1e-4 * np.abs(fitted.whiteners_[""]).max())


def _alone_and_in_batches(est, X, subjects, rng, **kwargs):
    """Embeddings of X's epochs passed whole, one at a time and in a shuffled batch."""
    whole = est.transform(X, subjects=subjects, **kwargs)
    order = rng.permutation(len(whole))[:7]
    pick = (lambda a: None if a is None or np.ndim(a) == 0 else a[order])
    batch = est.transform(X[order], subjects=pick(subjects), **kwargs)
    alone = np.concatenate([est.transform(X[[i]], subjects=pick(subjects)[k:k + 1]
                                          if pick(subjects) is not None else subjects)
                            for k, i in enumerate(order[:3])])
    return whole, order, batch, alone


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(0, 119), min_size=1, max_size=9), st.booleans())
def test_an_epoch_is_embedded_alike_alone_in_any_batch_as_epochs_or_array(
        fitted, small_synthetic, rows, as_array):
    """Seen subjects: the embedding of an epoch is the same passed alone, in any
    batch (any order, repeats), as Epochs or as an array with its subjects."""
    epochs = small_synthetic.epochs  # 120 epochs of 2 subjects
    whole = fitted.transform(epochs)
    if as_array:
        subjects = epochs.metadata.subject.to_numpy()[rows]
        batch = fitted.transform(epochs.get_data()[rows], subjects=subjects)
    else:
        batch = fitted.transform(epochs[rows])
    np.testing.assert_allclose(batch, whole[rows], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fitted.transform(epochs[rows[:1]]), whole[rows[:1]],
                               rtol=1e-5, atol=1e-6)


def test_a_new_subject_gets_the_agnostic_whitener_until_calibrated(small_synthetic):
    epochs = small_synthetic.epochs
    md = epochs.metadata
    first = (md.subject == md.subject.iloc[0]).to_numpy()
    new_subject = str(md.subject[~first].iloc[0])
    est = SynapseEncoder(alignment_shrinkage=0.0, random_state=0, verbose=False,
                         **FAST).fit(epochs[first])
    other = epochs[~first]
    X = other.get_data()
    kw = dict(rtol=1e-5, atol=1e-6)
    rng = np.random.default_rng(0)
    # Uncalibrated: the subject-agnostic whitener, never one estimated from the batch.
    with pytest.warns(UserWarning, match=r"neither seen in fit nor calibrated.*calibrate"):
        whole, order, batch, alone = _alone_and_in_batches(est, other, None, rng)
    np.testing.assert_allclose(batch, whole[order], **kw)
    np.testing.assert_allclose(alone, whole[order[:3]], **kw)
    with pytest.warns(UserWarning, match="without a subject"):
        np.testing.assert_allclose(est.transform(X), whole, **kw)
    # Calibrated from its own (unlabelled) epochs: its own whitener, kept and used
    # by every later call, alone or in any batch, as Epochs or array + subjects.
    assert est.calibrate(other) is est and new_subject in est.whiteners_
    aligned = est._prepare(other)
    np.testing.assert_allclose(mean_covariance(aligned[:]), np.eye(est.n_chans_), atol=1e-3)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a calibrated subject needs no warning
        whole_cal, order, batch, alone = _alone_and_in_batches(est, other, None, rng)
        np.testing.assert_allclose(batch, whole_cal[order], **kw)
        np.testing.assert_allclose(alone, whole_cal[order[:3]], **kw)
        np.testing.assert_allclose(est.transform(X[order], subjects=new_subject),
                                   whole_cal[order], **kw)
    assert not np.allclose(whole_cal, whole, atol=1e-4)


def test_calibrate_needs_subjects_and_one_per_epoch(fitted, small_synthetic):
    X = small_synthetic.epochs.get_data()[:6]
    with pytest.raises(ValueError, match=r"calibrate needs the subject of each epoch.*subjects="):
        fitted.calibrate(X)
    with pytest.raises(ValueError, match="subjects has 2 entries for 6 epochs"):
        fitted.transform(X, subjects=["a", "b"])
    with pytest.raises(ValueError, match="empty string"):
        fitted.transform(X, subjects="")
    plain = SynapseEncoder(alignment=None, random_state=0, verbose=False, **FAST).fit(
        small_synthetic.epochs)
    assert plain.calibrate(X, subjects="new") is plain and plain.whiteners_ is None


def test_an_encoder_saved_without_the_agnostic_whitener_asks_for_calibration(fitted,
                                                                              small_synthetic):
    import copy

    old = copy.copy(fitted)
    old.whiteners_ = {k: v for k, v in fitted.whiteners_.items() if k}
    X = small_synthetic.epochs.get_data()[:4]
    with pytest.warns(UserWarning), pytest.raises(ValueError, match=r"encoder.calibrate\("):
        old.transform(X, subjects="someone-new")
    assert old.calibrate(X, subjects="someone-new").transform(
        X, subjects="someone-new").shape[0] == 4


def test_arrays_without_subjects_use_the_one_fitted_whitener(small_synthetic):
    epochs = small_synthetic.epochs
    data = epochs.get_data()
    est = SynapseEncoder(random_state=0, verbose=False, **FAST).fit(
        data, epochs.metadata.label.to_numpy(),
        images=small_synthetic.images[epochs.metadata.image_index])
    assert list(est.whiteners_) == [""] and not est.subject_aware_
    np.testing.assert_allclose(est.transform(data[:3]), est.transform(data)[:3],
                               rtol=1e-5, atol=1e-6)
    # Subjects given to fit as an argument make it subject-aware, as the metadata would.
    subjects = epochs.metadata.subject.to_numpy()
    aware = SynapseEncoder(random_state=0, verbose=False, **FAST).fit(
        data, epochs.metadata.label.to_numpy(),
        images=small_synthetic.images[epochs.metadata.image_index], subjects=subjects)
    assert aware.subject_aware_ and len(aware.whiteners_) == 1 + len(set(subjects))


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
    assert loaded.signal_rms_ == pytest.approx(fitted.signal_rms_)
    np.testing.assert_array_equal(loaded.transform(small_synthetic.epochs),
                                  fitted.transform(small_synthetic.epochs))
