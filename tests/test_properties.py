"""Property-based tests (hypothesis) of the readers and the estimators' input validation.

Each property says: for *any* input of a family, the code either returns a
correct result or raises a ValueError / TypeError, never anything else.
"""

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from _crash import crashing_replace
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mne_synapse import _inputs, _persistence, _stimuli
from mne_synapse.clip import read_image

torch = pytest.importorskip("torch")

FAST = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
SLOWER = settings(FAST, max_examples=15)

_DTYPES = st.sampled_from([np.float32, np.float64, np.int16, np.int64, np.bool_,
                           np.complex64])


# -- EEG arrays ------------------------------------------------------------------
@FAST
@given(hnp.arrays(_DTYPES, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=3)))
def test_get_data_accepts_exactly_the_valid_arrays(X):
    valid = (X.ndim == 3 and min(X.shape) > 0 and not np.iscomplexobj(X)
             and np.isfinite(X).all())
    if not valid:
        # 2-D arrays too: (n_epochs, n_times) and (n_chans, n_times) look alike.
        real = not np.iscomplexobj(X)
        match = "is 2-D, shape" if X.ndim == 2 and real else None
        with pytest.raises((ValueError, TypeError), match=match):
            _inputs.get_data(X)
        return
    data, info, metadata = _inputs.get_data(X)
    assert data.dtype == np.float32 and data.shape == X.shape
    assert info is None and metadata is None
    np.testing.assert_array_equal(data, X.astype(np.float32))


@FAST
@given(st.integers(1, 4), st.integers(1, 4), st.integers(1, 4), st.integers(1, 4),
       st.integers(1, 3), st.sampled_from([None, 100.0]), st.sampled_from([None, 100.0, 50.0]))
def test_check_same_signal_raises_iff_the_signal_differs(fit_chans, fit_times, chans, times,
                                                          n_epochs, fit_sfreq, sfreq):
    import mne

    data = np.zeros((n_epochs, chans, times), np.float32)
    info = None if sfreq is None else mne.create_info(chans, sfreq, "eeg")
    fitted = dict(n_chans=fit_chans, n_times=fit_times, sfreq=fit_sfreq, ch_names=None)
    differs = (chans, times) != (fit_chans, fit_times) or (
        info is not None and fit_sfreq is not None and sfreq != fit_sfreq)
    if differs:
        with pytest.raises(ValueError, match="resample|Pick the same channels"):
            _inputs.check_same_signal(data, info, fitted)
    else:
        _inputs.check_same_signal(data, info, fitted)


@FAST
@given(st.integers(1, 6), st.integers(0, 8), st.integers(0, 8))
def test_resolve_stimuli_needs_one_stimulus_per_epoch(n_epochs, n_images, n_captions):
    images = [np.zeros((2, 2, 3), np.uint8)] * n_images
    captions = ["a"] * n_captions
    if n_images != n_epochs or n_captions != n_epochs:
        wrong = n_images if n_images != n_epochs else n_captions
        with pytest.raises(ValueError, match=f"Got {wrong} .* for {n_epochs} epochs; pass one"):
            _stimuli.resolve_stimuli(n_epochs, None, images, captions, None, "image_path",
                                    "caption", "{}", True, True)
    else:
        got_images, got_captions = _stimuli.resolve_stimuli(
            n_epochs, None, images, captions, None, "image_path", "caption", "{}", True, True)
        assert len(got_images) == len(got_captions) == n_epochs


@FAST
@given(hnp.arrays(np.int64, hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=5),
                  elements=st.integers(-2, 300)),
       st.sampled_from(["uint8", "float", "int", "unit-float"]))
def test_read_image_returns_rgb_uint8_or_raises(values, kind):
    array = dict(uint8=lambda v: np.clip(v, 0, 255).astype(np.uint8),
                 float=lambda v: v.astype(np.float32), int=lambda v: v,
                 **{"unit-float": lambda v: v.astype(np.float64) / 255})[kind](values)
    valid = array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (3, 4))
    valid = valid and (array.dtype == np.uint8 or (array.min() >= 0 and array.max() <= 255))
    if not valid:
        with pytest.raises(ValueError):
            read_image(array)
        return
    image = read_image(array)
    assert image.dtype == np.uint8 and image.shape == (*array.shape[:2], 3)
    if array.dtype == np.uint8 and array.ndim == 3:
        np.testing.assert_array_equal(image, array[..., :3])


# -- lazy reader -----------------------------------------------------------------
@FAST
@given(hnp.arrays(np.float64, st.tuples(st.integers(1, 12), st.integers(1, 3),
                                        st.integers(1, 5)),
                  elements=st.floats(-1e3, 1e3, width=32)),
       st.data())
def test_lazy_reads_equal_in_memory_reads(X, data):
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "X.npy", X)
        lazy, _, _ = _inputs.get_data(np.load(Path(tmp) / "X.npy", mmap_mode="r"), lazy=True)
        assert isinstance(lazy, _inputs.LazyEEG) and lazy.shape == X.shape
        index = data.draw(st.one_of(
            st.lists(st.integers(0, len(X) - 1), min_size=1, max_size=6).map(np.array),
            st.builds(slice, st.integers(0, len(X)), st.integers(0, len(X) + 2)),
            st.integers(-len(X), len(X) - 1)))
        np.testing.assert_array_equal(lazy[index], X.astype(np.float32)[index])
        chunk = data.draw(st.integers(1, 5))
        mean, std = _inputs.channel_stats(lazy, chunk_size=chunk)
        in_memory = _inputs.channel_stats(X.astype(np.float32), chunk_size=chunk)
        np.testing.assert_array_equal(mean, in_memory[0])
        np.testing.assert_array_equal(std, in_memory[1])
        # Chunking changes float64 rounding only: the float32 results agree closely.
        X32 = X.astype(np.float32).astype(np.float64)
        np.testing.assert_allclose(mean[:, 0], X32.mean(axis=(0, 2)), rtol=1e-5, atol=1e-3)
        np.testing.assert_allclose(std[:, 0], X32.std(axis=(0, 2)), rtol=1e-4, atol=1e-3)
        del lazy


# -- atomic folder saves -------------------------------------------------------------
_FILES = st.dictionaries(st.sampled_from(["a", "b.json", "sub/c", "sub/d.bin"]),
                         st.binary(max_size=16), min_size=1)


@settings(FAST, max_examples=25)
@given(_FILES, _FILES, st.integers(0, 12))
def test_interrupted_save_folder_gives_old_or_new(old, new, fail_at):
    """Whatever rename fails, after recovery the folder holds the old or the new files."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "saved"
        _persistence.save_folder(folder, old)
        real_replace, replace = os.replace, crashing_replace(fail_at)

        _persistence.os.replace = replace
        try:
            _persistence.save_folder(folder, new)
            failed = False
        except OSError:
            failed = True
        finally:
            _persistence.os.replace = real_replace
        assert failed == (fail_at < 2 * len(new) + 1)
        _persistence.finish_interrupted_save(folder)
        committed = fail_at > len(new)  # the staged files, then the journal
        expected = {**old, **new} if committed else old
        for name, content in expected.items():
            assert (folder / name).read_bytes() == content
        for name in set(new) - set(old) if not committed else ():
            assert not (folder / name).exists()


# -- encoder parameters and inputs ---------------------------------------------------------
_NUMBERS = ("recon_weight", "align_weight", "contrastive_weight", "lr", "weight_decay",
            "grad_clip", "augment_noise", "augment_shift")
_BAD_NUMBERS = st.one_of(st.floats(max_value=-1e-6), st.just(float("nan")),
                         st.just(float("inf")), st.text(max_size=2), st.none(),
                         st.lists(st.integers(), max_size=1))
_BAD_COUNTS = st.one_of(st.integers(max_value=0), st.floats(0.5, 3.5), st.text(max_size=2),
                        st.none(), st.just(True))
_BAD_FRACTIONS = st.one_of(st.floats(max_value=-1e-6), st.floats(min_value=1.0),
                           st.just(float("nan")), st.text(max_size=2), st.none())


@SLOWER
@given(st.one_of(st.tuples(st.sampled_from(_NUMBERS), _BAD_NUMBERS),
                 st.tuples(st.sampled_from(["max_epochs", "batch_size"]), _BAD_COUNTS),
                 st.tuples(st.just("validation_fraction"), _BAD_FRACTIONS)))
def test_invalid_parameters_are_named_before_training(param):
    from mne_synapse import SynapseEncoder

    name, value = param
    with pytest.raises((ValueError, TypeError), match=name):
        SynapseEncoder(**{name: value}).fit(np.zeros((4, 2, 8)))


@pytest.fixture(scope="module")
def small_encoder():
    from mne_synapse import SynapseEncoder

    X = np.random.default_rng(0).standard_normal((8, 2, 16))
    est = SynapseEncoder(align_weight=0, contrastive_weight=0, max_epochs=1, batch_size=4,
                         random_state=0, verbose=False,
                         module_kwargs=dict(widths=(8, 16), n_heads=2, embed_dim=8, n_tokens=4))
    return est.fit(X)


@SLOWER
@given(st.integers(1, 3), st.integers(1, 3), st.sampled_from([8, 15, 16, 17, 32]),
       st.sampled_from([None, np.nan, np.inf]))
def test_transform_accepts_exactly_the_fitted_signal(small_encoder, n_epochs, n_chans,
                                                     n_times, bad):
    X = np.random.default_rng(n_times).standard_normal((n_epochs, n_chans, n_times))
    if bad is not None:
        X[-1, -1, -1] = bad
    if (n_chans, n_times) != (2, 16) or bad is not None:
        with pytest.raises(ValueError, match="Pick the same channels|drop bad epochs"):
            small_encoder.transform(X)
        return
    Z = small_encoder.transform(X)
    assert Z.shape == (n_epochs, 8) and np.isfinite(Z).all()
    # Epochs are embedded independently: any subset gives the same rows.
    np.testing.assert_allclose(small_encoder.transform(X[-1:]), Z[-1:], rtol=1e-5, atol=1e-6)


# -- CVPR40 reader -----------------------------------------------------------------------
def _cvpr_content(n_trials, n_chans, lengths, n_classes, n_images, seed):
    rng = np.random.default_rng(seed)
    labels = [f"n{c:08d}" for c in range(n_classes)]
    images = [f"{labels[k % n_classes]}_{k}" for k in range(n_images)]
    dataset = [dict(eeg=torch.as_tensor(rng.standard_normal((n_chans, lengths[i])),
                                         dtype=torch.float32),
                    image=int(rng.integers(n_images)), label=int(rng.integers(n_classes)),
                    subject=int(rng.integers(1, 4)))
               for i in range(n_trials)]
    return dict(dataset=dataset, labels=labels, images=images)


_CONTENT = st.builds(
    lambda n, chans, lengths, classes, images, seed: _cvpr_content(
        n, chans, lengths[:n] + [lengths[0]] * (n - len(lengths)), classes, images, seed),
    st.integers(1, 5), st.integers(1, 4), st.lists(st.integers(1, 12), min_size=1, max_size=5),
    st.integers(1, 3), st.integers(1, 4), st.integers(0, 100))
_WEIRD = st.one_of(st.none(), st.booleans(), st.integers(-3, 10), st.floats(allow_nan=True),
                   st.text(max_size=3), st.lists(st.integers(0, 3), max_size=3),
                   st.lists(st.text(max_size=2), max_size=3),
                   st.builds(torch.zeros, st.lists(st.integers(0, 3), max_size=3)))


@SLOWER
@given(_CONTENT)
def test_cvpr40_reads_any_valid_file(content):
    from mne_synapse.datasets import load_cvpr40

    with tempfile.TemporaryDirectory() as tmp:
        torch.save(content, Path(tmp) / "eeg.pth")
        epochs = load_cvpr40(Path(tmp) / "eeg.pth", crop=None, length_range=None,
                             verbose=False)
    shortest = min(t["eeg"].shape[1] for t in content["dataset"])
    assert epochs.get_data().shape == (len(content["dataset"]), epochs.info["nchan"], shortest)
    for row, trial in zip(epochs.metadata.itertuples(), content["dataset"]):
        assert (row.label, row.image_index, row.subject) == (
            trial["label"], trial["image"], trial["subject"])
        assert row.wnid == content["labels"][trial["label"]]
    np.testing.assert_allclose(epochs.get_data()[0], content["dataset"][0]["eeg"][:, :shortest],
                               rtol=1e-6)


@SLOWER
@given(_CONTENT, st.sampled_from(["dataset", "labels", "images", "eeg", "image", "label",
                                  "subject", "drop-top", "drop-trial"]), _WEIRD, st.data())
def test_cvpr40_corrupt_files_raise_value_errors(content, where, value, data):
    """Any change to a valid file either still reads or raises a ValueError."""
    from mne_synapse.datasets import load_cvpr40

    if where == "drop-top":
        del content[data.draw(st.sampled_from(["dataset", "labels", "images"]))]
    elif where == "drop-trial":
        del content["dataset"][0][data.draw(st.sampled_from(["eeg", "image", "label",
                                                             "subject"]))]
    elif where in content:
        content[where] = value
    else:
        content["dataset"][data.draw(st.integers(0, len(content["dataset"]) - 1))][where] = value
    with tempfile.TemporaryDirectory() as tmp:
        torch.save(content, Path(tmp) / "eeg.pth")
        try:
            epochs = load_cvpr40(Path(tmp) / "eeg.pth", crop=None, length_range=None,
                                 verbose=False)
        except ValueError:
            return
    # It read: then what it read is consistent with the (still valid) file.
    assert len(epochs) == len(content["dataset"])
    assert epochs.metadata["label"].between(0, len(content["labels"]) - 1).all()
    assert epochs.metadata["image_index"].between(0, len(content["images"]) - 1).all()


@SLOWER
@given(st.integers(2, 6), st.dictionaries(st.sampled_from(["train", "val", "test"]),
                                          st.lists(st.integers(-2, 8), max_size=5)))
def test_cvpr40_splits_match_the_file_or_raise(n_trials, split):
    from mne_synapse.datasets import load_cvpr40

    content = _cvpr_content(n_trials, 2, [5] * n_trials, 2, 2, seed=n_trials)
    with tempfile.TemporaryDirectory() as tmp:
        torch.save(content, Path(tmp) / "eeg.pth")
        torch.save(dict(splits=[split]), Path(tmp) / "splits.pth")
        # Repeats within a part are harmless; a trial in two parts is not.
        indices = [i for part in split.values() for i in set(part)]
        valid = (bool(split) and all(0 <= i < n_trials for i in indices)
                 and len(indices) == len(set(indices)))
        if not valid:
            with pytest.raises(ValueError, match="does not match the data file|inconsistent|"
                                                 "'train', 'val' and 'test' lists"):
                load_cvpr40(Path(tmp) / "eeg.pth", splits_fname=Path(tmp) / "splits.pth",
                            crop=None, length_range=None, verbose=False)
            return
        epochs = load_cvpr40(Path(tmp) / "eeg.pth", splits_fname=Path(tmp) / "splits.pth",
                             crop=None, length_range=None, verbose=False)
    expected = ["unassigned"] * n_trials
    for name, part in split.items():
        for i in part:
            expected[i] = name
    assert epochs.metadata["split"].tolist() == expected
