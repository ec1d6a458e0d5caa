import numpy as np
import pytest

from mne_synapse.datasets import make_synthetic
from mne_synapse.datasets._drawing import SHAPES, class_table, draw_image, sample_image_params


def test_shapes_and_metadata(small_synthetic):
    data = small_synthetic
    epochs = data.epochs
    assert len(epochs) == 5 * 6 * 2 * 2
    assert epochs.get_data().shape == (120, 128, 64)
    assert epochs.info["sfreq"] == 128.0
    assert epochs.get_montage() is not None
    md = epochs.metadata
    for column in ("subject", "label", "class_name", "image_id", "image_index",
                   "image_path", "caption", "repetition", "split"):
        assert column in md.columns
    assert sorted(md.subject.unique()) == [1, 2]
    assert data.images.shape == (30, 32, 32, 3) and data.images.dtype == np.uint8
    # Every epoch points at the image it saw, and that file holds the same pixels.
    from PIL import Image

    row = md.iloc[7]
    on_disk = np.asarray(Image.open(row.image_path))
    np.testing.assert_array_equal(on_disk, data.images[row.image_index])
    assert data.labels[row.image_index] == row.label
    assert data.captions[row.image_index] == row.caption
    # Each subject sees each image n_repetitions times.
    counts = md.groupby(["subject", "image_id"]).size()
    assert (counts == 2).all()
    # Volts: amplitudes of tens of microvolts at most.
    assert 1e-7 < np.abs(epochs.get_data()).mean() < 1e-4


def test_splits_are_image_disjoint(small_synthetic):
    md = small_synthetic.epochs.metadata
    images_by_split = {s: set(md.image_id[md.split == s]) for s in ("train", "val", "test")}
    assert images_by_split["train"].isdisjoint(images_by_split["test"])
    assert images_by_split["train"].isdisjoint(images_by_split["val"])
    assert images_by_split["val"].isdisjoint(images_by_split["test"])
    # every class is in the test split
    assert md[md.split == "test"].label.nunique() == 5


def test_deterministic_and_cached(tmp_path):
    kwargs = dict(n_classes=3, n_images_per_class=2, n_subjects=1, n_repetitions=1,
                  n_times=32, sfreq=100.0)
    a = make_synthetic(random_state=1, cache_dir=tmp_path / "a", **kwargs)
    b = make_synthetic(random_state=1, cache_dir=tmp_path / "b", **kwargs)
    c = make_synthetic(random_state=2, cache_dir=tmp_path / "a", **kwargs)
    again = make_synthetic(random_state=1, cache_dir=tmp_path / "a", **kwargs)
    np.testing.assert_array_equal(a.epochs.get_data(), b.epochs.get_data())
    np.testing.assert_array_equal(a.images, b.images)
    assert a.source_amplitudes.shape == (len(a.epochs), 10)
    np.testing.assert_array_equal(a.source_amplitudes, again.source_amplitudes)  # cached
    assert not np.allclose(a.epochs.get_data(), c.epochs.get_data())
    np.testing.assert_allclose(a.epochs.get_data(), again.epochs.get_data(), rtol=1e-6)
    assert list(a.epochs.metadata.image_id) == list(again.epochs.metadata.image_id)
    assert len(list((tmp_path / "a").iterdir())) == 2  # one folder per seed, no temp left


def test_images_differ_within_class():
    rng = np.random.default_rng(0)
    images = [draw_image(sample_image_params(0, 10, rng)) for _ in range(5)]
    assert len({im.tobytes() for im in images}) == 5
    assert class_table(10)[0][0] == SHAPES[0]
    assert len({(s, c) for s, c, _ in class_table(30)}) == 30


@pytest.mark.parametrize("kwargs, match", [
    (dict(n_classes=1), "n_classes"),
    (dict(n_classes=101), "n_classes"),
    (dict(n_subjects=0), "n_subjects"),
    (dict(n_times=2.5), "n_times"),
    (dict(sfreq=-1.0), "sfreq"),
    (dict(neural_code="oscillatory"), "neural_code"),
    (dict(neural_code="induced", sfreq=64.0), "sfreq >= 100"),
])
def test_bad_parameters(kwargs, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        make_synthetic(cache_dir=tmp_path, **kwargs)


def test_class_information_present_but_not_trivial():
    """At the default SNR a linear model decodes the class well above chance, far from perfect."""
    from mne.decoding import Vectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = make_synthetic()  # the documented defaults
    md = data.epochs.metadata
    X = data.epochs.get_data()[:, :, ::4]
    train, test = (md.split == "train").to_numpy(), (md.split == "test").to_numpy()
    clf = make_pipeline(Vectorizer(), StandardScaler(), LogisticRegression(C=0.01, max_iter=300))
    clf.fit(X[train], md.label[train])
    accuracy = clf.score(X[test], md.label[test])
    assert 0.25 < accuracy < 0.7, accuracy  # chance is 0.10; docstring says 0.40
    # Shuffled labels: chance.
    shuffled = np.random.default_rng(0).permutation(md.label[train].to_numpy())
    clf.fit(X[train], shuffled)
    assert clf.score(X[test], md.label[test]) < 0.2


def test_source_amplitudes_follow_the_epochs_and_decode_the_class():
    """The ground-truth amplitudes are per epoch; an LR reads the class from them well."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = make_synthetic()
    md = data.epochs.metadata
    amp = data.source_amplitudes
    assert amp.shape == (len(md), 10) and np.isfinite(amp).all()
    # Same image, same subject: the two repetitions share the tuning part and
    # differ by trial noise; other images of the subject differ more.
    sub1 = md.subject.to_numpy() == 1
    first = md[sub1].groupby("image_index").head(1).index.to_numpy()
    second = md[sub1].groupby("image_index").tail(1).index.to_numpy()
    order = np.argsort(md.image_index.to_numpy()[first])
    order2 = np.argsort(md.image_index.to_numpy()[second])
    a, b = amp[first[order]], amp[second[order2]]
    same = np.linalg.norm(a - b, axis=1).mean()
    other = np.linalg.norm(a - np.roll(b, 1, axis=0), axis=1).mean()
    assert same < 0.8 * other, (same, other)
    train, test = (md.split == "train").to_numpy(), (md.split == "test").to_numpy()
    reference = data.source_lr_reference(train, test)
    assert 0.7 < reference < 0.95, reference  # the EEG linear decoder: ~0.40
    # Shuffled labels: the reference is not just echoing the class.
    shuffled = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(
        amp[train], np.random.default_rng(0).permutation(md.label[train].to_numpy()))
    assert shuffled.score(amp[test], md.label[test]) < 0.25


def _erp_and_band_power_accuracy(data):
    """Held-out accuracy of two decoders: class-mean ERP templates, and log band power."""
    from scipy.signal import butter, sosfiltfilt
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    md = data.epochs.metadata
    X, y = data.epochs.get_data(), md.label.to_numpy()
    train, test = (md.split != "test").to_numpy(), (md.split == "test").to_numpy()
    # The trial-averaged ERP of each class, matched (correlation) to each test epoch.
    templates = np.stack([X[train & (y == k)].mean(0).ravel() for k in np.unique(y)])
    flat = X[test].reshape(test.sum(), -1)
    corr = np.corrcoef(np.vstack([templates, flat]))[len(templates):, :len(templates)]
    erp = np.mean(corr.argmax(1) == y[test])
    sos = butter(4, [12, 40], "bandpass", fs=data.epochs.info["sfreq"], output="sos")
    power = np.log(np.var(sosfiltfilt(sos, X, axis=-1), axis=-1))
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.01, max_iter=1000))
    band = model.fit(power[train], y[train]).score(power[test], y[test])
    return erp, band


@pytest.mark.parametrize("code", ["erp", "induced", "mixed"])
def test_neural_code_decides_what_carries_the_class(code, tmp_path):
    """The induced world's class is invisible to the trial-averaged ERP but in band power.

    The ERP world is the contrast: there the class-mean ERPs tell the classes
    apart. The worlds share images, lead fields and noise (same seed).
    """
    data = make_synthetic(n_classes=5, n_images_per_class=30, n_subjects=2, snr=6.0,
                          neural_code=code, cache_dir=tmp_path)
    assert data.neural_code == code
    erp, band = _erp_and_band_power_accuracy(data)  # chance: 0.2
    if code == "erp":
        assert erp > 0.45, erp
    elif code == "induced":
        assert erp < 0.3, erp
        assert band > 0.45, band
    else:
        assert erp > 0.3 and band > 0.3, (erp, band)
    again = make_synthetic(n_classes=5, n_images_per_class=30, n_subjects=2, snr=6.0,
                           neural_code=code, cache_dir=tmp_path)  # from the cache
    np.testing.assert_array_equal(again.source_amplitudes, data.source_amplitudes)
    assert again.neural_code == code
    if code == "induced":  # the same world but for the code
        erp_world = make_synthetic(n_classes=5, n_images_per_class=30, n_subjects=2,
                                   snr=6.0, cache_dir=tmp_path)
        np.testing.assert_array_equal(erp_world.images, data.images)
        assert not np.allclose(erp_world.epochs.get_data(), data.epochs.get_data())
