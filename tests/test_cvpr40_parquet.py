"""Tests of the hub (parquet) CVPR40 reader, class names, the authors' split and the audit."""

import hashlib
import io
import logging
import warnings
from pathlib import Path

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from mne_synapse.datasets import (  # noqa: E402
    CVPR40_CLASS_NAMES, audit_splits, authors_split, class_caption, cvpr40_class_name,
    image_split, load_cvpr40_parquet)
from mne_synapse.datasets import cvpr40_parquet  # noqa: E402

WNIDS = ["n02690373", "n03590841", "n02510455", "n02504458"]  # airliner, ...


def _jpeg(k):
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (30 * k % 256, 7 * k % 256, 100)).save(buf, "JPEG", quality=95)
    return buf.getvalue()


def _table(rows, n_times=440, n_chans=128):
    """A table in the release's schema; EEG (times, channels) per row."""
    eeg = np.stack([r["eeg"] for r in rows]).astype(np.float32)
    n = len(rows)
    inner = pa.ListArray.from_arrays(np.arange(0, n * n_times + 1) * n_chans,
                                     pa.array(eeg.ravel()))
    outer = pa.ListArray.from_arrays(np.arange(0, n + 1) * n_times, inner)
    image = pa.StructArray.from_arrays(
        [pa.array([r["bytes"] for r in rows], pa.binary()),
         pa.array([r["path"] for r in rows], pa.string())], names=["bytes", "path"])
    return pa.table({
        "image": image, "conditioning_image": outer,
        "caption": pa.array([r["caption"] for r in rows], pa.string()),
        "label_folder": pa.array([WNIDS[r["label"]] for r in rows], pa.string()),
        "label": pa.array([r["label"] for r in rows], pa.int64()),
        "subject": pa.array([r["subject"] for r in rows], pa.int64())})


def _rows(images, subjects=(1, 2, 3), seed=0):
    """One trial per subject and image; images are (label, k) pairs."""
    rng = np.random.default_rng(seed)
    rows = []
    for label, k in images:
        for subject in subjects:
            rows.append(dict(eeg=rng.standard_normal((440, 128)), bytes=_jpeg(10 * label + k),
                             path=f"{WNIDS[label]}_{k}.JPEG", label=label, subject=subject,
                             caption=f"an image of thing {label}-{k}"))
    return rows


def _write(folder, shards):
    """Write ``{file name: rows}`` under ``folder/data``; return the rows in read order."""
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    for name, rows in shards.items():
        pq.write_table(_table(rows), data / name, row_group_size=4)
    return folder


def _clean(folder):
    train = [(c, k) for c in range(4) for k in range(3)]
    return _write(folder, {
        "train-00000-of-00002.parquet": _rows(train[:6]),
        "train-00001-of-00002.parquet": _rows(train[6:], seed=1),
        "validation-00000-of-00001.parquet": _rows([(0, 5), (1, 5)], seed=2),
        "test-00000-of-00001.parquet": _rows([(2, 6), (3, 6)], seed=3)})


@pytest.fixture(autouse=True)
def _small_batches(monkeypatch, tmp_path):
    monkeypatch.setattr(cvpr40_parquet, "_BATCH", 5)  # several batches per shard
    monkeypatch.setenv("MNE_SYNAPSE_CACHE", str(tmp_path / "cache"))


def test_round_trip(tmp_path):
    folder = _clean(tmp_path / "hub")
    epochs = load_cvpr40_parquet(folder)
    files = sorted((folder / "data").glob("*.parquet"))
    order = [f for s in ("train", "validation", "test") for f in files if f.name.startswith(s)]
    tables = [pq.read_table(f) for f in order]
    n = sum(len(t) for t in tables)
    data = epochs.get_data()
    assert data.shape == (n, 128, 440)
    assert epochs.info["sfreq"] == 1000.0 and epochs.tmin == pytest.approx(0.02)
    assert epochs.ch_names[:2] == ["A1", "A2"] and epochs.get_montage() is not None
    md = epochs.metadata
    assert list(md.columns) == [
        "subject", "label", "wnid", "class_name", "image_id", "image_index", "image_path",
        "split", "trial_index", "caption"]
    assert md["trial_index"].tolist() == list(range(n))
    row = 0
    for fname, table in zip(order, tables):
        split = {"train": "train", "validation": "val", "test": "test"}[fname.name.split("-")[0]]
        for rec in table.to_pylist():
            stored = np.array(rec["conditioning_image"], dtype=np.float32)  # (times, channels)
            np.testing.assert_array_equal(data[row], stored.T)
            got = md.iloc[row]
            assert got["split"] == split and got["subject"] == rec["subject"]
            assert got["label"] == rec["label"] and got["wnid"] == rec["label_folder"]
            assert got["caption"] == rec["caption"]  # meaningful captions are kept
            assert got["image_id"] == Path(rec["image"]["path"]).stem
            path = Path(got["image_path"])
            digest = hashlib.sha256(rec["image"]["bytes"]).hexdigest()
            assert path.name == f"{digest}.jpg" and path.read_bytes() == rec["image"]["bytes"]
            row += 1
    assert md["class_name"].tolist() == [CVPR40_CLASS_NAMES[w] for w in md["wnid"]]
    assert md["image_index"].nunique() == md["image_path"].nunique() == 16
    np.testing.assert_array_equal(epochs.events[:, 2], md["label"] + 1)
    assert epochs.event_id == {w: i + 1 for i, w in enumerate(WNIDS)}
    images = list((tmp_path / "cache" / "cvpr40_parquet" / "images").iterdir())
    assert len(images) == 16  # each stimulus written once, no staging left


def test_lazy_subjects_and_shard_list(tmp_path):
    folder = _clean(tmp_path / "hub")
    shards = sorted((folder / "data").glob("*.parquet"))
    epochs = load_cvpr40_parquet(shards, subjects=[1, 3])
    data, metadata = load_cvpr40_parquet(shards, subjects=[1, 3], lazy=True)
    assert isinstance(data, np.memmap) and data.dtype == np.float32
    assert not data.flags.writeable
    np.testing.assert_array_equal(data, epochs.get_data())
    assert metadata.equals(epochs.metadata)
    assert set(metadata["subject"]) == {1, 3}
    cache = tmp_path / "cache" / "cvpr40_parquet"
    assert [p.name for p in cache.glob("*.npy")] == [Path(data.filename).name]
    assert not list(cache.glob(".*"))
    one = load_cvpr40_parquet(folder / "data" / "test-00000-of-00001.parquet", subjects=2)
    assert set(one.metadata["split"]) == {"test"} and set(one.metadata["subject"]) == {2}


def test_class_names_and_captions(tmp_path):
    assert len(CVPR40_CLASS_NAMES) == 40 and len(set(CVPR40_CLASS_NAMES.values())) == 40
    for wnid, name in [("n02690373", "airliner"), ("n03590841", "jack-o'-lantern"),
                       ("n02510455", "giant panda"), ("n03888257", "parachute"),
                       ("n13054560", "bolete"), ("n07873807", "pizza"), ("n03584829", "iron")]:
        assert cvpr40_class_name(wnid) == name
    assert cvpr40_class_name("n99999999") == "n99999999"
    assert class_caption("airliner") == "a photo of an airliner"
    assert class_caption("African elephant") == "a photo of an African elephant"
    assert class_caption("giant panda") == "a photo of a giant panda"
    assert class_caption("n02690373") == "a photo of a n02690373"
    rows = _rows([(0, 0), (1, 0)])
    rows[0]["caption"] = "a photo of a n02690373"  # contains a wnid: replaced
    rows[1]["caption"] = ""
    rows[2]["caption"] = "an airliner on a runway"
    folder = _write(tmp_path / "hub", {"train-00000-of-00001.parquet": rows})
    auto = load_cvpr40_parquet(folder).metadata["caption"].tolist()
    assert auto[:3] == ["a photo of an airliner", "a photo of an airliner",
                        "an airliner on a runway"]
    assert auto[3:] == [r["caption"] for r in rows[3:]]
    assert load_cvpr40_parquet(folder, captions="release").metadata["caption"].tolist() == [
        r["caption"] for r in rows]
    assert set(load_cvpr40_parquet(folder, captions="class").metadata["caption"]) == {
        "a photo of an airliner", "a photo of a jack-o'-lantern"}


def test_audit(tmp_path, caplog):
    clean = load_cvpr40_parquet(_clean(tmp_path / "clean"))
    assert audit_splits(clean).empty
    leaky_rows = _rows([(0, 0), (1, 0), (2, 0)])
    test_rows = _rows([(0, 0), (3, 0)], seed=5)  # image (0, 0) also in training
    test_rows.append(dict(leaky_rows[4]))  # and one training trial, stored twice
    folder = _write(tmp_path / "leaky", {"train-00000-of-00001.parquet": leaky_rows,
                                         "test-00000-of-00001.parquet": test_rows})
    caplog.set_level(logging.INFO, logger="mne")
    # The twice-stored trial brings its image (1, 0) into the test split too.
    with pytest.warns(RuntimeWarning, match=r"2 image\(s\), 1 trial\(s\) appear in more"):
        epochs = load_cvpr40_parquet(folder, split="release", verbose="info")
    assert "Split audit: 2 image(s) in more than one split (train/test)" in caplog.text
    leaks = audit_splits(epochs)
    images = leaks[leaks["kind"] == "image"]
    assert images["splits"].tolist() == [("train", "test")] * 2
    assert images["n_epochs"].tolist() == [3 + 3, 3 + 1]
    trial = leaks[leaks["kind"] == "trial"].iloc[0]
    assert trial["epochs"] == [4, len(leaky_rows) + len(test_rows) - 1]
    # The same audit for arrays with metadata, and for the .pth reader's metadata.
    assert audit_splits(epochs.get_data(), epochs.metadata).equals(leaks)
    with pytest.raises(ValueError, match="needs metadata"):
        audit_splits(epochs.get_data())


def test_authors_split(tmp_path):
    labels = np.repeat([0, 1, 2], [298, 50, 7])
    split = authors_split(labels, random_state=0)
    for label, n in [(0, 298), (1, 50), (2, 7)]:
        part = split[labels == label]
        n_train, n_val = int(n * 0.8), int(n * (1 - 0.8) // 2)
        assert [(part == s).sum() for s in ("train", "val", "test")] == [
            n_train, n_val, n - n_train - n_val]
    assert (authors_split(labels, random_state=0) == split).all()
    assert (authors_split(labels, random_state=1) != split).any()
    assert [(split[labels == 0] == s).sum() for s in ("train", "val")] == [238, 29]  # notebook
    folder = _clean(tmp_path / "hub")
    release = load_cvpr40_parquet(folder)
    authors = load_cvpr40_parquet(folder, split="authors", random_state=3)  # no warning
    assert authors.metadata["split"].tolist() == authors_split(
        release.metadata["label"], 3).tolist()
    assert not audit_splits(authors).empty  # not image-disjoint


def test_image_split_is_the_default(tmp_path, caplog):
    """Default split: the release's when image-disjoint, else a re-split by image."""
    caplog.set_level(logging.INFO, logger="mne")
    clean_folder = _clean(tmp_path / "clean")
    release = load_cvpr40_parquet(clean_folder, split="release")
    clean = load_cvpr40_parquet(clean_folder, verbose="info")
    assert clean.metadata.equals(release.metadata)
    assert "the release's splits are image-disjoint; kept" in caplog.text
    # A release that shares images between its shards: 4 classes x 10 images.
    images = [(c, k) for c in range(4) for k in range(10)]
    shards = {"train-00000-of-00001.parquet": _rows(images[:36]),
              "validation-00000-of-00001.parquet": _rows(images[36:], seed=1),
              "test-00000-of-00001.parquet": _rows([(0, 0), (1, 1), (3, 9)], seed=2)}
    folder = _write(tmp_path / "leaky", shards)
    caplog.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the re-split leaks nothing: no warning
        default = load_cvpr40_parquet(folder, random_state=4, verbose="info")
    assert ("the release's splits share 3 stimulus image(s) (train/test, val/test); "
            "re-split instead") in caplog.text
    md = default.metadata
    assert audit_splits(default).query("kind == 'image'").empty
    assert set(md["split"]) == {"train", "val", "test"}
    for label in range(4):  # 80/10/10 of each class's 10 images (3 trials each, or 6)
        per_image = md[md["label"] == label].groupby("image_path")["split"].agg(set)
        assert (per_image.map(len) == 1).all()
        assert per_image.map(min).value_counts().to_dict() == {"train": 8, "val": 1,
                                                               "test": 1}
    digests = md["image_path"].map(lambda p: Path(p).stem)
    assert md["split"].tolist() == image_split(md["label"], digests, 4).tolist()
    again = load_cvpr40_parquet(folder, random_state=4, lazy=True)[1]
    assert again["split"].tolist() == md["split"].tolist()  # seeded, lazy or not
    assert load_cvpr40_parquet(folder, random_state=5).metadata["split"].tolist() != (
        md["split"].tolist())
    with pytest.warns(RuntimeWarning, match=r"3 image\(s\) appear in more than one split"):
        assert not audit_splits(load_cvpr40_parquet(folder, split="release")).empty


def test_image_split():
    labels = np.repeat([0, 1], [150, 21])
    images = np.concatenate([np.repeat(np.arange(50), 3), 100 + np.arange(21)])
    split = image_split(labels, images, random_state=0)
    for label, n_images, sizes in [(0, 50, [40, 5, 5]), (1, 21, [17, 2, 2])]:
        keep = labels == label
        first = {img: s for img, s in zip(images[keep], split[keep])}
        assert len(first) == n_images
        assert all(first[img] == s for img, s in zip(images[keep], split[keep]))
        assert [sum(v == s for v in first.values()) for s in ("train", "val", "test")] == sizes
    assert (image_split(labels, images, 0) == split).all()
    assert (image_split(labels, images, 1) != split).any()
    with pytest.raises(ValueError, match="shown in trials of several classes"):
        image_split([0, 1], [7, 7])
    with pytest.raises(ValueError, match="labels has 2 trials but images 3"):
        image_split([0, 1], [1, 2, 3])


def test_bad_inputs(tmp_path):
    cache = tmp_path / "cache" / "cvpr40_parquet"

    def nothing_written():
        images = cache / "images"
        assert not images.exists() or not list(images.iterdir())
        assert not list(cache.glob("*.npy")) and not list(cache.glob(".*"))

    (tmp_path / "empty" / "data").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="No parquet shards.*hf download "
                                                "luigi-s/EEG_Image_CVPR_ALL_subj"):
        load_cvpr40_parquet(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_cvpr40_parquet([tmp_path / "nope-00000.parquet"])
    rows = _rows([(0, 0), (1, 0)])
    good = _table(rows)
    for name, table, match in [
            ("a", good.drop_columns(["caption"]), r"lacks the column\(s\) \['caption'\]"),
            ("b", good.set_column(5, "subject", pa.array(["x"] * len(rows))),
             "column 'subject' is string, expected an integer"),
            ("c", good.set_column(1, "conditioning_image", pa.array([[1.0]] * len(rows))),
             "column .conditioning_image. is list<.*double>, expected a list of lists")]:
        pq.write_table(table, tmp_path / f"train-{name}.parquet")
        with pytest.raises(ValueError, match=match):
            load_cvpr40_parquet([tmp_path / f"train-{name}.parquet"])
    for n_times, n_chans, shape in [(440, 64, "440 x 64"), (400, 128, "400 x 128")]:
        bad = [dict(r) for r in rows]
        bad[2]["eeg"] = np.zeros((n_times, n_chans))
        table = pa.concat_tables([_table(bad[:2]), _table(bad[2:3], n_times, n_chans),
                                  _table(bad[3:])])
        pq.write_table(table, tmp_path / "train-d.parquet")
        with pytest.raises(ValueError, match=f"Row 2 of 'train-d.parquet': its EEG is {shape}"):
            load_cvpr40_parquet([tmp_path / "train-d.parquet"], lazy=True)
        nothing_written()
    bad = [dict(r) for r in rows]
    bad[4]["bytes"] = b"\xff\xd8\xff\xe0 not a jpeg"
    pq.write_table(_table(bad), tmp_path / "train-e.parquet")
    with pytest.raises(ValueError, match="Row 4 of 'train-e.parquet': the image bytes are not"):
        load_cvpr40_parquet([tmp_path / "train-e.parquet"], lazy=True)
    nothing_written()
    pq.write_table(good, tmp_path / "extra-00000-of-00001.parquet")
    with pytest.raises(ValueError, match="Cannot tell the split of the shard 'extra-00000"):
        load_cvpr40_parquet([tmp_path / "extra-00000-of-00001.parquet"])
    with pytest.raises(ValueError, match="Invalid value for the 'split' parameter"):
        load_cvpr40_parquet([tmp_path / "train-a.parquet"], split="random")
    _write(tmp_path / "hub", {"train-00000-of-00001.parquet": rows})
    with pytest.raises(ValueError, match=r"Unknown subject\(s\) \[7\]"):
        load_cvpr40_parquet(tmp_path / "hub", subjects=[7])
    nothing_written()
