"""Tests of the CVPR40 (EEG-ImageNet) reader on small files in its format."""

import logging

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from mne_synapse.datasets import load_cvpr40  # noqa: E402


def _write_cvpr40(folder, n_trials=30, n_chans=128, n_classes=4,
                  n_images_per_class=3, subjects=(1, 2, 3), lengths=None,
                  name_fmt="{wnid}_{k}", seed=0):
    """Write a data file and a two-split splits file in the CVPR40 format.

    Returns the paths and what was written so tests can compare.
    """
    rng = np.random.default_rng(seed)
    wnids = [f"n{1000000 + 7 * c:08d}" for c in range(n_classes)]
    image_names, image_class = [], []
    for c, wnid in enumerate(wnids):
        for k in range(n_images_per_class):
            image_names.append(name_fmt.format(wnid=wnid, k=100 + k, c=c))
            image_class.append(c)
    if lengths is None:
        lengths = rng.integers(440, 621, n_trials)
    dataset = []
    for i in range(n_trials):
        image = int(rng.integers(len(image_names)))
        dataset.append(dict(
            eeg=torch.randn(n_chans, int(lengths[i])), image=image,
            label=image_class[image], subject=int(subjects[i % len(subjects)]),
        ))
    data_fname = folder / "eeg_5_95_std.pth"
    torch.save(dict(dataset=dataset, labels=wnids, images=image_names),
               data_fname)
    # Image-disjoint like the real splits: split by image index.
    splits = []
    for shift in (0, 1):
        part = {name: [] for name in ("train", "val", "test")}
        for i, trial in enumerate(dataset):
            slot = (trial["image"] + shift) % 5
            if slot < 4:  # slot 4: left unassigned on purpose
                part[("train", "train", "val", "test")[slot]].append(i)
        splits.append(part)
    splits_fname = folder / "block_splits_by_image_all.pth"
    torch.save(dict(splits=splits), splits_fname)
    return dict(fname=data_fname, splits_fname=splits_fname, dataset=dataset,
                labels=wnids, images=image_names, splits=splits)


def _write_images(root, names, every=2):
    """Write tiny JPEGs for every other image; return the names written."""
    from PIL import Image

    written = names[::every]
    for k, name in enumerate(written):
        folder = root / name.split("_")[0]
        folder.mkdir(parents=True, exist_ok=True)
        # Distinct pixels: the split audit tells images apart by content.
        Image.new("RGB", (4, 4), (200, 10, 4 * k)).save(folder / f"{name}.JPEG")
    return set(written)


def _kept(dataset, low=450, high=600, stop=460, subjects=None):
    return [i for i, t in enumerate(dataset)
            if low <= t["eeg"].shape[1] <= high and t["eeg"].shape[1] >= stop
            and (subjects is None or t["subject"] in subjects)]


@pytest.fixture
def cvpr(tmp_path):
    return _write_cvpr40(tmp_path)


def test_round_trip(cvpr, tmp_path):
    """Shapes, values, metadata, images, splits and the length filter."""
    written = _write_images(tmp_path / "img", cvpr["images"])
    epochs = load_cvpr40(cvpr["fname"], image_root=tmp_path / "img",
                         splits_fname=cvpr["splits_fname"])
    dataset = cvpr["dataset"]
    kept = _kept(dataset)
    assert 0 < len(kept) < len(dataset)  # the length filter did something
    lengths = {t["eeg"].shape[1] for t in dataset}
    assert len(lengths) > 5  # variable lengths
    assert epochs.get_data().shape == (len(kept), 128, 440)
    assert epochs.get_data().dtype == np.float64
    assert epochs.tmin == pytest.approx(0.02)
    assert epochs.info["sfreq"] == 1000.0
    assert epochs.ch_names[:2] == ["A1", "A2"]
    assert epochs.get_montage() is not None

    md = epochs.metadata
    assert list(md.columns) == [
        "subject", "label", "wnid", "class_name", "image_id", "image_index",
        "image_path", "split", "trial_index", "caption"]
    assert md["trial_index"].tolist() == kept
    split_of = {i: name for name, idx in cvpr["splits"][0].items()
                for i in idx}
    for row, i in enumerate(kept):
        trial = dataset[i]
        np.testing.assert_allclose(
            epochs.get_data()[row], trial["eeg"][:, 20:460].double().numpy())
        rec = md.iloc[row]
        assert rec["subject"] == trial["subject"]
        assert rec["label"] == trial["label"]
        # Not CVPR40's wnids, so they are their own class names.
        assert rec["wnid"] == rec["class_name"] == cvpr["labels"][
            trial["label"]]
        assert rec["caption"] == f"a photo of a {rec['wnid']}"
        assert rec["image_index"] == trial["image"]
        name = cvpr["images"][trial["image"]]
        assert rec["image_id"] == name
        assert rec["split"] == split_of.get(i, "unassigned")
        if name in written:
            assert rec["image_path"].endswith(f"{name}.JPEG")
        else:
            assert pd.isna(rec["image_path"])
    assert set(md["split"]) == {"train", "val", "test", "unassigned"}
    assert md["image_path"].notna().any() and md["image_path"].isna().any()
    np.testing.assert_array_equal(epochs.events[:, 2], md["label"] + 1)
    for wnid, code in epochs.event_id.items():
        assert cvpr["labels"][code - 1] == wnid


def test_no_splits_no_images(cvpr):
    epochs = load_cvpr40(cvpr["fname"])
    assert set(epochs.metadata["split"]) == {"unassigned"}
    assert epochs.metadata["image_path"].isna().all()


def test_other_layout(tmp_path):
    """10 classes, 2 subjects, 32 channels and unusual image names."""
    cvpr = _write_cvpr40(tmp_path, n_trials=25, n_chans=32, n_classes=10,
                         n_images_per_class=2, subjects=(4, 9),
                         name_fmt="img-{c}-{k}", seed=3)
    root = tmp_path / "img"
    # No wnid prefix in the names, so the class folder is used.
    from PIL import Image

    name = cvpr["images"][cvpr["dataset"][0]["image"]]
    folder = root / cvpr["labels"][cvpr["dataset"][0]["label"]]
    folder.mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(folder / f"{name}.JPEG")
    epochs = load_cvpr40(cvpr["fname"], image_root=root,
                         splits_fname=cvpr["splits_fname"],
                         length_range=None, crop=(0, 440))
    kept = [i for i, t in enumerate(cvpr["dataset"])
            if t["eeg"].shape[1] >= 440]
    assert epochs.get_data().shape == (len(kept), 32, 440)
    assert epochs.ch_names[0] == "EEG001" and epochs.ch_names[-1] == "EEG032"
    assert epochs.get_montage() is None
    assert epochs.tmin == 0
    md = epochs.metadata
    assert set(md["subject"]) == {4, 9}
    assert md["label"].max() < 10
    assert len(epochs.event_id) == md["label"].nunique()
    hits = md.loc[md["image_id"] == name, "image_path"]
    assert hits.notna().all() and len(hits) > 0


def test_tensor_scalars(cvpr, tmp_path):
    """Some exports store label/image/subject as 0-d tensors."""
    content = torch.load(cvpr["fname"], weights_only=True)
    content["dataset"] = [
        {k: (v if k == "eeg" else torch.tensor(v)) for k, v in t.items()}
        for t in content["dataset"]]
    epochs = load_cvpr40(_save(tmp_path / "t.pth", content))
    reference = load_cvpr40(cvpr["fname"])
    assert epochs.metadata.equals(reference.metadata)
    np.testing.assert_array_equal(epochs.get_data(), reference.get_data())


def test_subjects_and_split_index(cvpr):
    epochs = load_cvpr40(cvpr["fname"], splits_fname=cvpr["splits_fname"],
                         subjects=[1, 3], split_index=1)
    kept = _kept(cvpr["dataset"], subjects={1, 3})
    assert epochs.metadata["trial_index"].tolist() == kept
    assert set(epochs.metadata["subject"]) == {1, 3}
    split_of = {i: name for name, idx in cvpr["splits"][1].items()
                for i in idx}
    assert epochs.metadata["split"].tolist() == [
        split_of.get(i, "unassigned") for i in kept]
    # Guard against the test passing by accident: the two splits differ.
    assert cvpr["splits"][0] != cvpr["splits"][1]
    one = load_cvpr40(cvpr["fname"], subjects=2)
    assert set(one.metadata["subject"]) == {2}


def test_length_filter_and_crop(tmp_path, caplog):
    lengths = [440, 449, 450, 459, 460, 600, 601, 620]
    cvpr = _write_cvpr40(tmp_path, n_trials=len(lengths), lengths=lengths)
    caplog.set_level(logging.INFO, logger="mne")
    epochs = load_cvpr40(cvpr["fname"], verbose="info")
    # 450 and 459 pass the length filter but are shorter than the crop stop.
    assert epochs.metadata["trial_index"].tolist() == [4, 5]
    assert "Dropped 2 trial(s) shorter than the crop stop" in caplog.text
    assert "Loaded 2 of 8" in caplog.text
    epochs = load_cvpr40(cvpr["fname"], length_range=None, crop=(10, 440))
    assert len(epochs) == 8 and epochs.get_data().shape[2] == 430
    with pytest.warns(RuntimeWarning, match="cutting all trials to 450"):
        epochs = load_cvpr40(cvpr["fname"], crop=None)
    assert epochs.get_data().shape == (4, 128, 450)
    np.testing.assert_allclose(epochs.get_data()[3],
                               cvpr["dataset"][5]["eeg"][:, :450].numpy(),
                               rtol=1e-6)
    with pytest.raises(ValueError, match=r"No trials left after length_range"
                                         r".*lengths are 440 to 620"):
        load_cvpr40(cvpr["fname"], length_range=(700, 800))
    with pytest.raises(ValueError, match="shorter than the crop stop"):
        load_cvpr40(cvpr["fname"], crop=(0, 700))


def _save(path, obj):
    torch.save(obj, path)
    return path


def test_bad_data_files(cvpr, tmp_path):
    content = torch.load(cvpr["fname"], weights_only=True)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_cvpr40(tmp_path / "nope.pth")
    bad = {k: v for k, v in content.items() if k != "images"}
    with pytest.raises(ValueError, match=r"lacks the key\(s\) \['images'\]"):
        load_cvpr40(_save(tmp_path / "a.pth", bad))
    trial = dict(content["dataset"][0])
    for key, value, match in [
            ("eeg", torch.zeros(5), "must be a 2-D tensor"),
            ("eeg", [[0.0]], "must be a 2-D tensor"),
            ("label", 1.5, r"\['label'\] must be an int"),
            ("label", 99, r"\['label'\] = 99 is out of range"),
            ("image", -1, r"\['image'\] = -1 is out of range"),
            ("image", len(content["images"]), "out of range")]:
        bad = dict(content, dataset=[dict(trial, **{key: value})])
        with pytest.raises(ValueError, match=match):
            load_cvpr40(_save(tmp_path / "b.pth", bad))
    bad = dict(content, dataset=[trial, dict(trial, eeg=torch.zeros(64, 500))])
    with pytest.raises(ValueError, match="has 64 channels"):
        load_cvpr40(_save(tmp_path / "c.pth", bad))
    with pytest.raises(ValueError, match=r"Unknown subject\(s\) \[7\].*"
                                         r"subjects \[1, 2, 3\]"):
        load_cvpr40(cvpr["fname"], subjects=[1, 7])
    with pytest.raises(ValueError, match="Unknown subject"):
        load_cvpr40(cvpr["fname"], subjects=[])


class _Custom:
    def __init__(self):
        self.value = 1


def test_refuses_unsafe_pickle(tmp_path):
    fname = _save(tmp_path / "evil.pth", dict(
        dataset=[dict(eeg=torch.zeros(4, 500), image=0, label=0, subject=1,
                      extra=_Custom())], labels=["n1"], images=["n1_1"]))
    with pytest.raises(ValueError, match="refused for safety.*_Custom"):
        load_cvpr40(fname)
    (tmp_path / "text.pth").write_text("not a torch file")
    with pytest.raises(ValueError, match="eeg|torch file"):
        load_cvpr40(tmp_path / "text.pth")


def test_bad_splits(cvpr, tmp_path):
    with pytest.raises(ValueError, match=r"split_index=2 is out of range.*"
                                         r"use 0 to 1"):
        load_cvpr40(cvpr["fname"], splits_fname=cvpr["splits_fname"],
                    split_index=2)
    n = len(cvpr["dataset"])
    beyond = _save(tmp_path / "s.pth", dict(splits=[dict(
        train=[0, n + 5], val=[], test=[])]))
    with pytest.raises(ValueError, match="does not match the data file"):
        load_cvpr40(cvpr["fname"], splits_fname=beyond)
    with pytest.raises(ValueError, match="non-empty 'splits' list"):
        load_cvpr40(cvpr["fname"],
                    splits_fname=_save(tmp_path / "t.pth", dict(x=1)))
    with pytest.raises(FileNotFoundError, match="splits file"):
        load_cvpr40(cvpr["fname"], splits_fname=tmp_path / "missing.pth")


def test_class_names_authors_split_and_audit(tmp_path, caplog):
    """Real wnids get ImageNet names and captions; the authors' split; the leak audit."""
    cvpr = _write_cvpr40(tmp_path, n_trials=60, n_classes=3, lengths=[500] * 60)
    content = torch.load(cvpr["fname"], weights_only=True)
    wnids = ["n02690373", "n03590841", "n02510455"]
    content["labels"] = wnids
    rename = dict(zip(cvpr["labels"], wnids))
    content["images"] = ["_".join([rename[name.split("_")[0]], name.split("_")[1]])
                         for name in content["images"]]
    fname = _save(tmp_path / "real.pth", content)
    epochs = load_cvpr40(fname, splits_fname=cvpr["splits_fname"])
    md = epochs.metadata
    names = {"n02690373": "airliner", "n03590841": "jack-o'-lantern",
             "n02510455": "giant panda"}
    assert md["class_name"].tolist() == [names[w] for w in md["wnid"]]
    assert set(md["caption"]) == {"a photo of an airliner", "a photo of a jack-o'-lantern",
                                  "a photo of a giant panda"}

    from mne_synapse.datasets import audit_splits, authors_split

    assert audit_splits(epochs).empty  # the image-disjoint file split is clean
    authors = load_cvpr40(fname, split="authors", random_state=1)  # no warning
    assert authors.metadata["split"].tolist() == authors_split(md["label"], 1).tolist()
    # With a splits file, only its trials are re-split (as in the authors' notebook).
    pooled = load_cvpr40(fname, splits_fname=cvpr["splits_fname"], split="authors")
    assert pooled.metadata["trial_index"].tolist() == md.loc[
        md["split"] != "unassigned", "trial_index"].tolist()
    leaks = audit_splits(authors)
    assert len(leaks) and set(leaks["kind"]) == {"image"}
    # A splits file that puts trials of one image in training and test.
    first = [i for i, t in enumerate(content["dataset"]) if t["image"] == 0]
    assert len(first) > 1
    leaky = _save(tmp_path / "leaky.pth", dict(splits=[dict(
        train=first[:1], val=[], test=first[1:])]))
    caplog.set_level(logging.INFO, logger="mne")
    with pytest.warns(RuntimeWarning, match=r"1 image\(s\) appear in more than one split"):
        load_cvpr40(fname, splits_fname=leaky, verbose="info")
    assert "Split audit: 1 image(s) in more than one split (train/test)" in caplog.text
    with pytest.raises(ValueError, match="Invalid value for the 'split' parameter"):
        load_cvpr40(fname, split="random")
