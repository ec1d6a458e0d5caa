"""Bad input, one table: every case raises a specific exception whose message names the fix.

Each row is (id, call, exception type, regex). The type must match exactly (no
bare RuntimeError / IndexError from deep inside torch), and the regex matches
the part of the message that tells the user what to do.
"""

import json
from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from mne_synapse import SynapseEncoder
from mne_synapse.clip import CLIPEmbedder, read_image
from mne_synapse.datasets import load_cvpr40
from mne_synapse.generator import EEGImageGenerator

torch = pytest.importorskip("torch")

from test_cvpr40 import _write_cvpr40  # noqa: E402
from test_generator import _tiny_base  # noqa: E402

TINY = dict(max_epochs=1, batch_size=16, module_kwargs=dict(widths=(8, 16), n_heads=2),
            verbose=False)


@pytest.fixture(scope="module")
def ctx(small_synthetic):
    epochs = small_synthetic.epochs[:20]
    encoder = SynapseEncoder(random_state=0, **TINY).fit(epochs)
    base = _tiny_base()
    generator = EEGImageGenerator(encoder=encoder, base_model=base, max_steps=1, batch_size=2,
                                  random_state=0, verbose=False).fit(epochs[:4])
    return SimpleNamespace(epochs=epochs, X=epochs.get_data(), md=epochs.metadata,
                           images=small_synthetic.images, encoder=encoder, base=base,
                           generator=generator)


# -- helpers building bad inputs ---------------------------------------------------
def _with(X, index, value):
    X = X.copy()
    X[index] = value
    return X


def _drop_columns(epochs, *columns):
    epochs = epochs.copy()
    epochs.metadata = epochs.metadata.drop(columns=list(columns))
    return epochs


def _set_image_paths(epochs, path):
    epochs = epochs.copy()
    epochs.metadata.loc[:, "image_path"] = str(path)
    return epochs


def _bad_png(tmp):
    (tmp / "bad.png").write_bytes(b"not a png")
    return tmp / "bad.png"


def _edit_json(path, **changes):
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


def _saved_encoder(c, tmp, edit=None):
    folder = c.encoder.save(tmp / "enc")
    if edit is not None:
        edit(folder)
    return folder


def _saved_generator(c, tmp, edit=None):
    folder = c.generator.save(tmp / "gen")
    if edit is not None:
        edit(folder)
    return folder


def _truncate(path):
    path.write_bytes(path.read_bytes()[:-10])


def _other_architecture(folder):
    # Same weights file (so the hash matches), config for another model size.
    config = json.loads((folder / "config.json").read_text())
    config["module_kwargs"]["widths"] = [16, 32]
    (folder / "config.json").write_text(json.dumps(config))


def _add_param(folder):
    config = json.loads((folder / "config.json").read_text())
    config["params"]["new_knob"] = 1
    (folder / "config.json").write_text(json.dumps(config))


def _checkpoint(c, tmp, edit, max_epochs=1):
    """Train with a checkpoint, ``edit`` it, return the call that resumes (to 3 - max_epochs)."""
    params = dict(TINY, random_state=0, checkpoint_dir=tmp / "ckpt")
    SynapseEncoder(**dict(params, max_epochs=max_epochs)).fit(c.epochs)
    (fname,) = (tmp / "ckpt").glob("*/checkpoint.pt")
    edit(fname)
    return lambda: SynapseEncoder(**dict(params, max_epochs=3 - max_epochs)).fit(c.epochs)


def _old_checkpoint(fname):
    state = torch.load(fname, weights_only=True)
    state["format_version"] = 0
    torch.save(state, fname)


def _cvpr(tmp, edit=None, **kwargs):
    files = _write_cvpr40(tmp, n_trials=6, n_chans=8, n_classes=2, n_images_per_class=2)
    if edit is not None:
        content = torch.load(files["fname"], weights_only=True)
        torch.save(edit(content), files["fname"])
    return load_cvpr40(files["fname"], **kwargs)


def _trial(content, **changes):
    content["dataset"][0].update(changes)
    return content


def _cvpr_paths(tmp):
    files = _write_cvpr40(tmp, n_trials=6, n_chans=8, n_classes=2, n_images_per_class=2)
    return dict(fname=files["fname"], splits_fname=files["splits_fname"])


def _text_file(path):
    path.write_text("hello")
    return path


def _cvpr_splits(tmp, splits):
    files = _write_cvpr40(tmp, n_trials=6, n_chans=8, n_classes=2, n_images_per_class=2)
    torch.save(splits, tmp / "splits.pth")
    return load_cvpr40(files["fname"], splits_fname=tmp / "splits.pth")


class _Custom:
    pass


def _with_attrs(est, **attrs):
    """A shallow copy of a fitted estimator with other parameters (shares its modules)."""
    import copy

    est = copy.copy(est)
    est._pipeline = None
    for name, value in attrs.items():
        setattr(est, name, value)
    return est


FIT_SIZES = "Pick the same channels and crop/resample to the same window"
NAN_FIX = r"drop bad epochs first \(e.g. epochs.drop_bad\(\)"

# (id, call(ctx, tmp_path), exception, message regex naming the fix)
CASES = [
    # -- EEG arrays and Epochs -----------------------------------------------------
    ("wrong-ndim-4d", lambda c, t: c.encoder.transform(np.zeros((1, 2, 128, 64))),
     ValueError, r"must be 3-D \(n_epochs, n_chans, n_times\)"),
    ("wrong-ndim-1d", lambda c, t: c.encoder.fit(np.zeros(5)),
     ValueError, r"must be 3-D \(n_epochs, n_chans, n_times\)"),
    ("n_chans-differs-from-fit", lambda c, t: c.encoder.transform(c.X[:, :10]),
     ValueError, FIT_SIZES),
    ("n_times-differs-from-fit", lambda c, t: c.encoder.transform(c.X[:, :, :30]),
     ValueError, FIT_SIZES),
    ("sfreq-differs-from-fit", lambda c, t: c.encoder.transform(c.epochs.copy().resample(64.0)),
     ValueError, r"resample with epochs.resample\(128.0\)"),
    ("channel-order-differs", lambda c, t: c.encoder.transform(
        c.epochs.copy().reorder_channels(c.epochs.ch_names[::-1])),
     ValueError, r"other channels or another order\); select and order them with "
                 r"epochs.pick\(estimator.ch_names_\)"),
    ("channels-missing", lambda c, t: c.encoder.transform(
        c.epochs.copy().drop_channels(c.epochs.ch_names[:3])),
     ValueError, r"lacks 3 of the \d+ channels seen in fit \(A1, A2, A3\)\. Interpolate them: "
                 r"epochs.interpolate_to\(montage\).*then epochs.pick\(estimator.ch_names_\)"),
    ("array-2d", lambda c, t: SynapseEncoder(**TINY).fit(c.X[:, 0]),
     ValueError, r"X is 2-D, shape \(20, 64\), but EEG epochs are 3-D .*single-channel epochs "
                 r"as X\[:, np.newaxis, :\]"),
    ("subjects-wrong-length", lambda c, t: c.encoder.transform(c.X, subjects=[1, 2]),
     ValueError, "subjects has 2 entries for 20 epochs; pass one subject per epoch, or one"),
    ("calibrate-without-subjects", lambda c, t: c.encoder.calibrate(c.X),
     ValueError, r"calibrate needs the subject of each epoch: pass Epochs with "
                 r"metadata\['subject'\], or subjects="),
    ("nan-in-fit", lambda c, t: SynapseEncoder(**TINY).fit(_with(c.X, (0, 0, 0), np.nan)),
     ValueError, NAN_FIX),
    ("inf-in-fit", lambda c, t: SynapseEncoder(**TINY).fit(_with(c.X, (1, 2, 3), np.inf)),
     ValueError, NAN_FIX),
    ("nan-in-transform", lambda c, t: c.encoder.transform(_with(c.X, (2, 5, 9), -np.nan)),
     ValueError, NAN_FIX),
    ("empty-epochs", lambda c, t: SynapseEncoder(**TINY).fit(
        c.epochs.copy().drop(range(len(c.epochs)), verbose=False)),
     ValueError, r"loosen reject=/flat= or the event selection"),
    ("no-epochs-array", lambda c, t: SynapseEncoder(**TINY).fit(np.zeros((0, 4, 16))),
     ValueError, "pass at least one"),
    ("no-time-samples", lambda c, t: SynapseEncoder(**TINY).fit(np.zeros((4, 2, 0))),
     ValueError, "at least one channel and one time sample"),
    ("strings-as-data", lambda c, t: SynapseEncoder(**TINY).fit(np.full((2, 2, 4), "a")),
     TypeError, "must hold real numbers"),
    ("complex-data", lambda c, t: SynapseEncoder(**TINY).fit(np.ones((2, 2, 4), complex)),
     ValueError, "pass the real EEG signal"),
    ("not-an-array", lambda c, t: SynapseEncoder(**TINY).fit({"eeg": 1}),
     TypeError, r"must be mne.Epochs or an array of shape \(n_epochs"),
    ("ragged-lists", lambda c, t: SynapseEncoder(**TINY).fit([[[1.0, 2.0]], [[1.0]]]),
     ValueError, "of equal-length epochs"),
    ("sparse-matrix", lambda c, t: SynapseEncoder(**TINY).fit(
        __import__("scipy.sparse").sparse.csr_matrix(np.eye(3))),
     TypeError, "pass X as a dense array"),
    # -- stimuli, captions and labels -------------------------------------------------
    ("metadata-without-image-column", lambda c, t: SynapseEncoder(**TINY).fit(
        _drop_columns(c.epochs, "image_path")),
     ValueError, r"has no 'image_path' column .*Add a column of image paths .*pass "
                 r"images=\.\.\., or set contrastive_weight=0"),
    ("array-without-images", lambda c, t: SynapseEncoder(**TINY).fit(c.X),
     ValueError, r"X is an array, which has no metadata\. Pass images=.*or set "
                 r"contrastive_weight=0 to train without images"),
    ("array-without-captions", lambda c, t: SynapseEncoder(contrastive_weight=0, **TINY).fit(
        c.X), ValueError, r"No captions: X is an array, which has no metadata: pass "
                          r"captions=\.\.\. or class labels y, or set align_weight=0"),
    # The generator names its own options (it has no contrastive_weight).
    ("generator-array-without-images", lambda c, t: EEGImageGenerator(
        base_model=c.base, max_steps=1).fit(c.X),
     ValueError, r"^(?!.*weight).*X is an array, which has no metadata\. Pass images=\.\.\. "
                 r"\(one image path .* column\.$"),
    ("metadata-without-captions", lambda c, t: SynapseEncoder(contrastive_weight=0, **TINY).fit(
        _drop_columns(c.epochs, "caption", "class_name")),
     ValueError, r"pass captions=\.\.\. or class labels y, or set align_weight=0"),
    ("image-path-missing", lambda c, t: SynapseEncoder(**TINY).fit(
        _set_image_paths(c.epochs, t / "nope.png")),
     FileNotFoundError, r"Check the 'image_path' column of epochs.metadata"),
    ("image-unreadable", lambda c, t: SynapseEncoder(**TINY).fit(
        c.X, images=[_bad_png(t)] * len(c.X), captions=["a"] * len(c.X)),
     ValueError, "replace it with a valid image file"),
    ("image-bad-shape", lambda c, t: read_image(np.zeros((4, 4, 5))),
     ValueError, r"must be \(height, width, 3\) or a file path"),
    ("image-count-not-epoch-count", lambda c, t: SynapseEncoder(**TINY).fit(
        c.X, images=c.images[:3]),
     ValueError, r"Got 3 images for 20 epochs; pass one per epoch"),
    ("caption-count-not-epoch-count", lambda c, t: SynapseEncoder(**TINY).fit(
        c.epochs, captions=["a photo"] * 5),
     ValueError, r"Got 5 captions for 20 epochs; pass one per epoch"),
    ("labels-wrong-length", lambda c, t: SynapseEncoder(**TINY).fit(c.epochs, y=np.zeros(3)),
     ValueError, r"y has 3 labels for 20 epochs; pass one label per epoch"),
    # -- estimator state and parameters -------------------------------------------------
    ("unfitted-transform", lambda c, t: SynapseEncoder().transform(c.epochs),
     NotFittedError, "Call 'fit' with appropriate arguments"),
    ("unfitted-save", lambda c, t: SynapseEncoder().save(t / "enc"),
     NotFittedError, "Call 'fit' with appropriate arguments"),
    ("param-preset", lambda c, t: SynapseEncoder(preset="huge").fit(c.epochs),
     ValueError, r"preset must be one of \['hybrid', 'paper', 'tiny'\]"),
    ("param-output", lambda c, t: SynapseEncoder(output="mean").fit(c.epochs),
     ValueError, "output must be 'pooled' or 'tokens'"),
    ("param-negative-lr", lambda c, t: SynapseEncoder(lr=-1).fit(c.epochs),
     ValueError, "lr must be a number >= 0"),
    ("param-max_epochs-0", lambda c, t: SynapseEncoder(max_epochs=0).fit(c.epochs),
     ValueError, "max_epochs must be an integer >= 1"),
    ("param-validation_fraction", lambda c, t: SynapseEncoder(validation_fraction=1).fit(
        c.epochs), ValueError, r"validation_fraction must be a number in \[0, 1\)"),
    ("param-early-stopping-without-validation", lambda c, t: SynapseEncoder(
        early_stopping=5).fit(c.epochs), ValueError, "needs validation_fraction > 0"),
    ("param-checkpoint-without-seed", lambda c, t: SynapseEncoder(
        checkpoint_dir=t).fit(c.epochs), ValueError, "checkpoint_dir needs an integer random_state"),
    ("param-module_kwargs-unknown", lambda c, t: SynapseEncoder(
        module_kwargs=dict(width=8)).fit(c.epochs), ValueError, r"use \['dropout', 'electrode_"),
    ("param-module_kwargs-from-data", lambda c, t: SynapseEncoder(
        module_kwargs=dict(n_chans=8)).fit(c.epochs), ValueError, r"come from the data"),
    ("encoder-module-kwargs-head", lambda c, t: SynapseEncoder(
        module_kwargs=dict(n_outputs=3)).fit(c.epochs), ValueError,
     r"cannot set 'n_outputs'.*braindecode.EEGClassifier"),
    ("param-device", lambda c, t: SynapseEncoder(device="gpu0").fit(c.epochs),
     ValueError, "use 'cpu' or 'cuda'"),
    # -- CLIP ------------------------------------------------------------------------
    ("clip-model-without-default-weights", lambda c, t: SynapseEncoder(
        clip_model="ViT-X", **TINY).fit(c.epochs), ValueError, "pass clip_pretrained="),
    ("clip-name-unknown", lambda c, t: CLIPEmbedder("ViT-H-15").model,
     ValueError, r"Did you mean \[.*'ViT-H-14'.*open_clip.list_models\(\)"),
    ("clip-tag-unknown", lambda c, t: CLIPEmbedder("ViT-B-32", "not-a-tag").model,
     ValueError, "known tags"),
    ("clip-checkpoint-missing", lambda c, t: CLIPEmbedder("ViT-B-32", str(t / "w.bin")).model,
     FileNotFoundError, "check the path or pass an OpenCLIP pretrained tag"),
    ("clip-weights-not-downloaded-offline", lambda c, t: CLIPEmbedder("RN50", "openai").model,
     FileNotFoundError, "On a machine with internet run"),
    # -- Stage 2 -----------------------------------------------------------------------
    ("generate-n_images-0", lambda c, t: c.generator.generate(c.epochs[:1], n_images=0),
     ValueError, "n_images must be an integer >= 1"),
    ("generate-n_images-float", lambda c, t: c.generator.generate(c.epochs[:1], n_images=1.5),
     ValueError, "n_images must be an integer >= 1"),
    ("generate-unfitted", lambda c, t: EEGImageGenerator().generate(c.epochs[:1]),
     NotFittedError, "Call 'fit' with appropriate arguments"),
    ("generate-output-type", lambda c, t: c.generator.generate(c.epochs[:1], output_type="pt"),
     ValueError, "output_type must be 'pil' or 'np'"),
    ("generate-n_chans-differs", lambda c, t: c.generator.generate(c.X[:1, :10]),
     ValueError, FIT_SIZES),
    ("embed_dim-not-cross_attention_dim", lambda c, t: EEGImageGenerator(
        encoder=c.encoder, base_model=_tiny_base(32), max_steps=1).fit(c.epochs[:4]),
     ValueError, "Fit the encoder with the CLIP model of this Stable Diffusion"),
    ("base-model-not-found-offline", lambda c, t: EEGImageGenerator(
        encoder=c.encoder, base_model=str(t / "no-sd"), max_steps=1).fit(c.epochs[:4]),
     FileNotFoundError, r"hf download .* and pass the folder as base_model"),
    ("generator-recipe", lambda c, t: EEGImageGenerator(encoder=c.encoder, recipe="all").fit(
        c.epochs[:4]), ValueError, r"recipe must be one of \["),
    ("generator-image-count", lambda c, t: EEGImageGenerator(
        encoder=c.encoder, base_model=c.base, max_steps=1).fit(c.X[:4], images=c.images[:2]),
     ValueError, "pass one per epoch"),
    ("generator-scheduler-unknown", lambda c, t: _with_attrs(
        c.generator, scheduler="Nope").generate(c.epochs[:1], num_inference_steps=1),
     ValueError, "use the class name of one, e.g. 'DDIMScheduler'"),
    # -- saved encoders and generators ----------------------------------------------------
    ("encoder-folder-missing", lambda c, t: SynapseEncoder.load(t / "nothing"),
     FileNotFoundError, "does not exist, and is not a Hugging Face hub id.*"
     "pass the folder written by SynapseEncoder.save_pretrained"),
    ("encoder-folder-empty", lambda c, t: SynapseEncoder.load(t),
     FileNotFoundError, "is .* a saved encoder"),
    ("encoder-truncated-weights", lambda c, t: SynapseEncoder.load(_saved_encoder(
        c, t, lambda f: _truncate(f / "model.safetensors"))),
     ValueError, r"does not match the hash .* save the encoder again"),
    ("encoder-corrupt-config", lambda c, t: SynapseEncoder.load(_saved_encoder(
        c, t, lambda f: (f / "config.json").write_text("{'not json"))),
     ValueError, "is corrupt .*save the encoder again"),
    ("encoder-other-format-version", lambda c, t: SynapseEncoder.load(_saved_encoder(
        c, t, lambda f: _edit_json(f / "config.json", format_version=99))),
     ValueError, "save it again with a matching version"),
    ("encoder-other-architecture", lambda c, t: SynapseEncoder.load(_saved_encoder(
        c, t, _other_architecture)),
     ValueError, "do not fit the saved architecture .*save the encoder again"),
    ("encoder-config-missing-keys", lambda c, t: SynapseEncoder.load(_saved_encoder(
        c, t, lambda f: (f / "config.json").write_text(json.dumps(
            dict(estimator="SynapseEncoder", format_version=1))))),
     ValueError, r"lacks \['params'.*save the encoder again"),
    ("encoder-params-of-another-version", lambda c, t: SynapseEncoder.load(_saved_encoder(
        c, t, _add_param)), ValueError, "load it with the version that saved it"),
    ("encoder-load-of-a-generator", lambda c, t: SynapseEncoder.load(_saved_generator(c, t)),
     ValueError, "load it with EEGImageGenerator.from_pretrained"),
    ("generator-folder-is-an-encoder", lambda c, t: EEGImageGenerator.load(
        _saved_encoder(c, t)), ValueError, "load it with SynapseEncoder.from_pretrained"),
    ("generator-truncated-weights", lambda c, t: EEGImageGenerator.load(_saved_generator(
        c, t, lambda f: _truncate(f / "generator.safetensors")), base_model=c.base),
     ValueError, "does not match the hash.*save the generator again"),
    ("generator-corrupt-config", lambda c, t: EEGImageGenerator.load(_saved_generator(
        c, t, lambda f: (f / "generator.json").write_bytes(b"\xff\xfe")), base_model=c.base),
     ValueError, "is corrupt .*save the generator again"),
    ("generator-other-format-version", lambda c, t: EEGImageGenerator.load(_saved_generator(
        c, t, lambda f: _edit_json(f / "generator.json", format_version=99)), base_model=c.base),
     ValueError, "save it again with a matching version"),
    ("generator-in-memory-base-not-given", lambda c, t: EEGImageGenerator.load(
        _saved_generator(c, t)), ValueError, "pass it again as base_model="),
    ("generator-other-base-architecture", lambda c, t: EEGImageGenerator.load(
        _saved_generator(c, t), base_model=_tiny_base(32)),
     ValueError, "pass the base model it was finetuned from as base_model="),
    ("resume-checkpoint-truncated", lambda c, t: _checkpoint(c, t, _truncate)(),
     ValueError, "is unreadable .*delete it to train from scratch"),
    ("resume-checkpoint-other-version", lambda c, t: _checkpoint(c, t, _old_checkpoint)(),
     ValueError, "format 0.*delete it to train from scratch"),
    ("resume-checkpoint-beyond-max_epochs", lambda c, t: _checkpoint(c, t, lambda f: None,
                                                                     max_epochs=2)(),
     ValueError, r"has trained 2 epochs, more than max_epochs=1; set max_epochs >= 2"),
    # -- CVPR40 reader -----------------------------------------------------------------
    ("cvpr40-file-missing", lambda c, t: load_cvpr40(t / "nope.pth"),
     FileNotFoundError, "check the path"),
    ("cvpr40-missing-keys", lambda c, t: _cvpr(t, lambda d: {"dataset": d["dataset"]}),
     ValueError, "a CVPR40 file needs 'dataset', 'labels' and 'images'"),
    ("cvpr40-not-a-dict", lambda c, t: _cvpr(t, lambda d: [d]),
     ValueError, "is it a CVPR40 EEG file"),
    ("cvpr40-labels-wrong-type", lambda c, t: _cvpr(t, lambda d: dict(d, labels=[1, 2])),
     ValueError, "'labels' entry must be a list of str"),
    ("cvpr40-eeg-wrong-type", lambda c, t: _cvpr(t, lambda d: _trial(d, eeg=[[0.0]])),
     ValueError, r"must be a 2-D tensor \(channels, times\)"),
    ("cvpr40-label-not-int", lambda c, t: _cvpr(t, lambda d: _trial(d, label="cat")),
     ValueError, r"\['label'\] must be an int"),
    ("cvpr40-label-out-of-range", lambda c, t: _cvpr(t, lambda d: _trial(d, label=7)),
     ValueError, r"\['label'\] = 7 is out of range for the 2 entries"),
    ("cvpr40-image-out-of-range", lambda c, t: _cvpr(t, lambda d: _trial(d, image=-1)),
     ValueError, r"\['image'\] = -1 is out of range"),
    ("cvpr40-unsafe-pickle", lambda c, t: _cvpr(t, lambda d: dict(d, extra=_Custom())),
     ValueError, "refused for safety. Re-save it with only those types"),
    ("cvpr40-not-a-torch-file", lambda c, t: load_cvpr40(_text_file(t / "x.pth")),
     ValueError, "is it the right file"),
    ("cvpr40-unknown-subject", lambda c, t: _cvpr(t, subjects=[9]),
     ValueError, r"the file has subjects \[1, 2, 3\]"),
    ("split-file-does-not-match-data", lambda c, t: _cvpr_splits(t, dict(splits=[dict(
        train=[0, 60], val=[], test=[])])),
     ValueError, "refers to trial 60 but the data file has 6 trials"),
    ("split-file-wrong-structure", lambda c, t: _cvpr_splits(t, dict(folds=[])),
     ValueError, "must hold a dict with a non-empty 'splits' list"),
    ("split-file-overlapping-parts", lambda c, t: _cvpr_splits(t, dict(splits=[dict(
        train=[0, 1], val=[1], test=[])])),
     ValueError, "Trial 1 is in split 'train' and 'val'"),
    ("split-index-out-of-range", lambda c, t: load_cvpr40(
        **_cvpr_paths(t), split_index=5), ValueError, "use 0 to 1"),
]


def test_the_table_is_large_and_unique():
    ids = [case[0] for case in CASES]
    assert len(ids) >= 30 and len(set(ids)) == len(ids)


@pytest.mark.parametrize("call, exception, match", [case[1:] for case in CASES],
                         ids=[case[0] for case in CASES])
def test_bad_input_is_named(ctx, tmp_path, call, exception, match):
    with pytest.raises(Exception) as info:
        call(ctx, tmp_path)
    assert info.type is exception, f"{info.type.__name__}: {info.value}"
    assert info.match(match)
