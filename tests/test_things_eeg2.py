"""THINGS-EEG2 reader on small files written in the release's exact format."""

import numpy as np
import pytest

from mne_synapse.datasets import load_things_eeg2, things_eeg2_to_npz

# The 17 posterior channels of the preprocessed release, in its order.
CH_NAMES = ["Pz", "P3", "P7", "O1", "Oz", "O2", "P4", "P8", "P1", "P5", "PO7", "PO3",
            "POz", "PO4", "PO8", "P6", "P2"]
TIMES = np.round(np.arange(-20, 80) / 100, 2)  # 100 samples, -0.2 to 0.79 s at 100 Hz
# THINGS concept indices are 1-based and global: training and test concepts are disjoint.
TRAIN_CONCEPTS = ["00001_aardvark", "00003_air_conditioner", "00007_altar"]
TEST_CONCEPTS = ["00002_abacus", "00005_aircraft_carrier"]
N_PER_CONCEPT, N_REPS = {"training": 2, "test": 1}, {"training": 4, "test": 5}


def _eeg(subject, part):
    n_images = (len(TRAIN_CONCEPTS) * 2 if part == "training" else len(TEST_CONCEPTS))
    rng = np.random.default_rng(subject * 10 + (part == "test"))
    return rng.standard_normal((n_images, N_REPS[part], 17, 100)).astype(np.float32)


def _write_things(root, subjects=(1, 2), images=True):
    """The release's layout: pickled dicts saved with np.save, JPEG stimuli."""
    from PIL import Image

    meta = {}
    for prefix, folder, concepts, n in (("train", "training_images", TRAIN_CONCEPTS, 2),
                                        ("test", "test_images", TEST_CONCEPTS, 1)):
        names = [c for c in concepts for _ in range(n)]
        files = [f"{c.split('_', 1)[1]}_{k + 1:02d}s.jpg" for c in concepts for k in range(n)]
        meta[f"{prefix}_img_concepts"], meta[f"{prefix}_img_files"] = names, files
        meta[f"{prefix}_img_concepts_THINGS"] = names
        if images:
            for i, (concept, fname) in enumerate(zip(names, files)):
                (root / "images" / folder / concept).mkdir(parents=True, exist_ok=True)
                pixels = np.full((8, 8, 3), 30 * i, np.uint8)
                Image.fromarray(pixels).save(root / "images" / folder / concept / fname)
    (root / "images").mkdir(exist_ok=True)
    np.save(root / "images" / "image_metadata.npy", meta)
    for subject in subjects:
        folder = root / "eeg" / f"sub-{subject:02d}"
        folder.mkdir(parents=True)
        for part in ("training", "test"):
            np.save(folder / f"preprocessed_eeg_{part}.npy", {
                "preprocessed_eeg_data": _eeg(subject, part), "ch_names": CH_NAMES,
                "times": TIMES})
    return root / "eeg", root / "images"


@pytest.fixture(scope="module")
def things(tmp_path_factory):
    return _write_things(tmp_path_factory.mktemp("things"))


def test_shapes_signal_and_metadata(things):
    data_dir, image_root = things
    epochs = load_things_eeg2(data_dir, image_root, allow_pickle=True)
    # 2 subjects x (6 training images x 4 reps + 2 test images x 5 reps)
    assert len(epochs) == 2 * (6 * 4 + 2 * 5)
    assert epochs.get_data().shape[1:] == (17, 100)
    assert epochs.info["sfreq"] == 100.0 and epochs.tmin == pytest.approx(-0.2)
    assert epochs.ch_names == CH_NAMES
    pos = np.array([epochs.info["chs"][i]["loc"][:3] for i in range(17)])
    assert np.isfinite(pos).all() and (np.linalg.norm(pos, axis=1) > 0).all()
    md = epochs.metadata
    for column in ("subject", "label", "class_name", "image_id", "image_index", "image_path",
                   "caption", "repetition", "split"):
        assert column in md
    # Order: subject, partition (training first), image, repetition; values as stored.
    data = epochs.get_data()
    row = md.index[(md.subject == 2) & (md.split == "train") & (md.image_index == 3)
                   & (md.repetition == 2)][0]
    np.testing.assert_allclose(data[row], _eeg(2, "training")[3, 2], rtol=1e-6)
    first = md.iloc[row]
    assert first.concept == "00003_air_conditioner" and first.label == 2
    assert first.class_name == "air conditioner"
    assert first.caption == "a photo of a air conditioner"
    assert first.image_id == "air_conditioner_02s"
    assert first.image_path == str(
        image_root / "training_images" / "00003_air_conditioner" / "air_conditioner_02s.jpg")
    test = md[md.split == "test"]
    assert sorted(test.label.unique()) == [1, 4] and set(test.repetition) == set(range(5))
    assert set(md[md.split == "train"].label) == {0, 2, 6}
    assert epochs.event_id["00007_altar"] == 7
    np.testing.assert_array_equal(epochs.events[:, 2], md.label + 1)


def test_average_subject_and_partition(things):
    data_dir, image_root = things
    epochs = load_things_eeg2(data_dir, image_root, subjects=[2], partition="test",
                              average_repetitions=True, allow_pickle=True)
    assert len(epochs) == 2
    np.testing.assert_allclose(epochs.get_data(), _eeg(2, "test").mean(axis=1, dtype=float))
    md = epochs.metadata
    assert (md.subject == 2).all() and (md.split == "test").all()
    assert (md.repetition == -1).all() and (md.n_averaged == 5).all()
    train = load_things_eeg2(data_dir, image_root, subjects=1, partition="training",
                             allow_pickle=True)
    assert len(train) == 24 and set(train.metadata.split) == {"train"}


@pytest.mark.filterwarnings("ignore:8 image file")
def test_pickled_files_need_opt_in_and_npz_needs_none(tmp_path):
    data_dir, image_root = _write_things(tmp_path, subjects=(1,), images=False)
    with pytest.raises(ValueError, match="allow_pickle=True.*things_eeg2_to_npz"):
        load_things_eeg2(data_dir, image_root)
    pickled = load_things_eeg2(data_dir, image_root, allow_pickle=True)
    for fname in [image_root / "image_metadata.npy",
                  *sorted(data_dir.glob("sub-*/*.npy"))]:
        assert things_eeg2_to_npz(fname) == fname.with_suffix(".npz")
        with pytest.raises(FileExistsError, match="overwrite=True"):
            things_eeg2_to_npz(fname)
        fname.unlink()  # only the .npz is left to read
    safe = load_things_eeg2(data_dir, image_root)  # allow_pickle=False
    np.testing.assert_array_equal(safe.get_data(), pickled.get_data())
    assert safe.metadata.equals(pickled.metadata)


def test_missing_images_are_reported(tmp_path):
    data_dir, image_root = _write_things(tmp_path, subjects=(1,), images=False)
    with pytest.warns(RuntimeWarning, match="8 image file"):
        epochs = load_things_eeg2(data_dir, image_root, allow_pickle=True)
    assert epochs.metadata.image_path.isna().all()
    meta_only = load_things_eeg2(data_dir, image_metadata=image_root / "image_metadata.npy",
                                 allow_pickle=True)
    assert meta_only.metadata.image_path.isna().all()


def _rewrite(fname, **changes):
    content = np.load(fname, allow_pickle=True).item()
    for key, value in changes.items():
        if value is None:
            del content[key]
        else:
            content[key] = value
    np.save(fname, content)


@pytest.mark.parametrize("change, error, match", [
    (lambda d, i: (d / "sub-01" / "preprocessed_eeg_test.npy").unlink(),
     FileNotFoundError, "preprocessed_eeg_test"),
    (lambda d, i: _rewrite(d / "sub-01" / "preprocessed_eeg_training.npy", times=None),
     ValueError, r"lacks the key\(s\) \['times'\]"),
    (lambda d, i: _rewrite(d / "sub-01" / "preprocessed_eeg_training.npy",
                           preprocessed_eeg_data=np.zeros((6, 17, 100))),
     ValueError, r"\(images, repetitions, channels, times\)"),
    (lambda d, i: _rewrite(d / "sub-01" / "preprocessed_eeg_training.npy",
                           ch_names=CH_NAMES[:-1]),
     ValueError, "16 ch_names"),
    (lambda d, i: _rewrite(d / "sub-01" / "preprocessed_eeg_test.npy",
                           preprocessed_eeg_data=np.zeros((3, 5, 17, 100))),
     ValueError, "EEG for 3 images but the image metadata lists 2"),
    (lambda d, i: _rewrite(i / "image_metadata.npy",
                           train_img_files=["a.jpg"]),
     ValueError, "must pair one to one"),
    (lambda d, i: _rewrite(i / "image_metadata.npy", test_img_concepts=None),
     ValueError, "test_img_concepts"),
    (lambda d, i: np.save(d / "sub-01" / "preprocessed_eeg_test.npy", np.zeros(3)),
     ValueError, "not a dict"),
])
def test_bad_files_give_clear_errors(tmp_path, change, error, match):
    data_dir, image_root = _write_things(tmp_path, subjects=(1,), images=False)
    change(data_dir, image_root)
    with pytest.raises(error, match=match):
        load_things_eeg2(data_dir, image_root, allow_pickle=True)


def test_bad_arguments(things, tmp_path):
    data_dir, image_root = things
    with pytest.raises(ValueError, match="partition must be"):
        load_things_eeg2(data_dir, image_root, partition="train", allow_pickle=True)
    with pytest.raises(FileNotFoundError, match="sub-03"):
        load_things_eeg2(data_dir, image_root, subjects=3, allow_pickle=True)
    with pytest.raises(ValueError, match="subjects must be"):
        load_things_eeg2(data_dir, image_root, subjects=[0], allow_pickle=True)
    with pytest.raises(ValueError, match="image_root"):
        load_things_eeg2(data_dir, allow_pickle=True)
    with pytest.raises(FileNotFoundError, match="not a folder"):
        load_things_eeg2(tmp_path / "nope", image_root, allow_pickle=True)
    with pytest.raises(FileNotFoundError, match="No sub-XX folders"):
        load_things_eeg2(tmp_path, image_root, allow_pickle=True)


def test_encoder_fits_on_the_reader_output(things):
    from mne_synapse import SynapseEncoder

    data_dir, image_root = things
    epochs = load_things_eeg2(data_dir, image_root, subjects=1, allow_pickle=True)
    encoder = SynapseEncoder(max_epochs=1, batch_size=16, random_state=0, verbose=False,
                             module_kwargs=dict(widths=(16, 32), n_heads=2)).fit(epochs)
    Z = encoder.transform(epochs[epochs.metadata.split == "test"])
    assert Z.shape == (10, 64) and np.isfinite(Z).all()
    assert encoder.ch_names_ == CH_NAMES and encoder.sfreq_ == 100.0
