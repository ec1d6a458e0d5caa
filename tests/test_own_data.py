"""A lab's own experiment, end to end: 64 channels at 250 Hz, 0.5 s epochs, 128 px PNG
stimuli (natural images), a ``subject`` column; from Python and from an ``-epo.fif`` file
on the command line."""

import warnings

import mne
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from mne_synapse import EEGImageGenerator, SynapseEncoder
from mne_synapse.cli import main

FAST = dict(max_epochs=2, batch_size=16, module_kwargs=dict(widths=(8, 16), n_heads=2),
            random_state=0, verbose=False)


def make_own_experiment(folder, n_subjects=3, n_classes=4, n_images=3, n_repetitions=2):
    """Epochs as a lab records them: volts, biosemi64 names, stimuli as PNG files."""
    from sklearn.datasets import load_sample_images

    rng = np.random.default_rng(0)
    photos = load_sample_images().images
    paths = []
    for k in range(n_classes * n_images):  # 128 px crops of two photographs
        photo = photos[k % 2]
        top, left = rng.integers(0, 200), rng.integers(0, 400)
        crop = Image.fromarray(photo[top:top + 200, left:left + 200]).resize((128, 128))
        paths.append(f"stimuli/image_{k:02d}.png")
        (folder / "stimuli").mkdir(exist_ok=True)
        crop.save(folder / paths[-1])
    info = mne.create_info(mne.channels.make_standard_montage("biosemi64").ch_names, 250.0,
                           "eeg")
    n_times = 125  # 0.5 s
    erp = np.sin(np.linspace(0, 3 * np.pi, n_times)) * np.hanning(n_times)
    topographies = rng.standard_normal((n_classes, 64))
    rows, data = [], []
    for subject in range(1, n_subjects + 1):
        mixing = np.eye(64) + 0.3 * rng.standard_normal((64, 64))  # the subject's head
        for image in range(n_classes * n_images):
            label = image // n_images
            for _ in range(n_repetitions):
                signal = np.outer(topographies[label], erp) + rng.standard_normal((64, n_times))
                data.append(1e-5 * mixing @ signal)  # about 10 microvolts, in volts
                rows.append(dict(image_path=paths[image], class_name=f"class {label}",
                                 subject=f"sub-{subject:02d}"))
    epochs = mne.EpochsArray(np.array(data), info, tmin=0.0, verbose=False,
                             metadata=pd.DataFrame(rows))
    epochs.set_montage("biosemi64")
    return epochs


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lab")
    epochs = make_own_experiment(folder)
    epochs.save(folder / "own-epo.fif", verbose=False)  # relative image paths in the file
    absolute = epochs.copy()
    absolute.metadata["image_path"] = [str(folder / p) for p in epochs.metadata.image_path]
    return folder, absolute


def test_own_data_from_python(own, capsys):
    _, epochs = own
    md = epochs.metadata
    train = (md.subject != "sub-03").to_numpy()
    encoder = SynapseEncoder(**FAST).fit(epochs[train])
    assert encoder.n_chans_ == 64 and encoder.n_times_ == 125 and encoder.sfreq_ == 250.0
    assert sorted(encoder.whiteners_) == ["", "sub-01", "sub-02"]
    # A new subject: calibrated from its own epochs, then embedded alike alone or in a batch.
    new = epochs[~train]
    encoder.calibrate(new)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        whole = encoder.transform(new)
        np.testing.assert_allclose(encoder.transform(new[[3]]), whole[[3]], rtol=1e-5,
                                   atol=1e-6)
        np.testing.assert_allclose(encoder.transform(new.get_data()[:4], subjects="sub-03"),
                                   whole[:4], rtol=1e-5, atol=1e-6)
    assert whole.shape == (len(new), 64)
    # Stage 2 on the miniature base model: it says it cannot draw these stimuli, and
    # that 128 px stimuli become 32 px images.
    generator = EEGImageGenerator(encoder=encoder, max_steps=2, batch_size=4,
                                  num_inference_steps=2, random_state=0, verbose=True)
    capsys.readouterr()
    with pytest.warns(UserWarning, match="miniature world.*stable-diffusion-2-1"):
        generator.fit(epochs[train][:8])
    assert "Stimuli of 128 x 128 px are resized to 32 x 32 px" in capsys.readouterr().out
    images = generator.generate(new[:2], output_type="np")
    assert images.shape == (2, 1, 32, 32, 3)


def test_the_miniature_check_knows_its_own_stimuli(small_synthetic, own):
    from mne_synapse._finetuning import check_stimuli, load_base_model

    vae, _, _, _ = load_base_model("tiny")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # synthetic stimuli: not a word
        check_stimuli(list(small_synthetic.images), vae, 32, "tiny", verbose=False)
        check_stimuli(list(own[1].metadata.image_path), vae, 32, "other", verbose=False)
    with pytest.warns(UserWarning, match=r"error \d\.\d\d, synthetic ones < 0\.01"):
        check_stimuli(list(own[1].metadata.image_path), vae, 32, "tiny", verbose=False)


def test_the_command_line_reads_an_epochs_file(own, tmp_path, capsys):
    folder, _ = own
    fif = str(folder / "own-epo.fif")
    enc, gen, out = tmp_path / "enc", tmp_path / "gen", tmp_path / "images"
    quick = ["--quiet", "--set", "generator.max_steps=2", "--set", "generator.batch_size=4",
             "--set", "generator.num_inference_steps=2"]
    assert main(["fit-encoder", "--data", fif, "--output", str(enc), "--epochs", "1",
                 "--set", "encoder.module_kwargs={widths = [8, 16], n_heads = 2}",
                 "--quiet"]) == 0
    said = capsys.readouterr()
    assert "data: 72 epochs, 3 subjects, 4 classes, 12 images" in said.out
    assert "no splits; training on every epoch" in said.err
    with pytest.warns(UserWarning, match="miniature world"):
        assert main(["fit-generator", "--encoder", str(enc), "--output", str(gen),
                     *quick]) == 0
    assert main(["generate", "--generator", str(gen), "--output", str(out), "--split",
                 "unassigned", "--limit", "2", *quick[:1]]) == 0, capsys.readouterr().err
    table = pd.read_csv(out / "generated.csv")
    assert list(table.subject) == ["sub-01", "sub-01"]
    assert Image.open(out / table.file[0]).size == (32, 32)


@pytest.mark.parametrize("name, message", [
    ("eeg.txt", r"cannot read data .*eeg.txt.*: --data takes 'synthetic', an MNE epochs file "
                r"\(name ending in -epo.fif.*CVPR40 .pth file.*parquet shards\)"),
    ("missing-epo.fif", r"does not exist; give --data 'synthetic', an MNE epochs file"),
])
def test_other_files_get_an_error_naming_the_formats(name, message, tmp_path, capsys):
    if name != "missing-epo.fif":
        (tmp_path / name).write_text("1 2 3")
    assert main(["fit-encoder", "--data", str(tmp_path / name), "--output",
                 str(tmp_path / "enc")]) == 1
    err = capsys.readouterr().err
    assert __import__("re").search(message, err), err


def test_data_kinds(tmp_path):
    from mne_synapse.cli._data import data_kind

    (tmp_path / "release" / "data").mkdir(parents=True)
    (tmp_path / "release" / "data" / "train-00000-of-00001.parquet").write_bytes(b"")
    (tmp_path / "x-epo.fif").write_bytes(b"")
    (tmp_path / "x.pth").write_bytes(b"")
    assert data_kind(str(tmp_path / "release")) == "parquet"
    assert data_kind(str(tmp_path / "x-epo.fif")) == "fif"
    assert data_kind(str(tmp_path / "x.pth")) == "pth"
    assert data_kind("synthetic") == "synthetic"


def test_an_epochs_file_without_image_paths_is_named(tmp_path, capsys):
    epochs = mne.EpochsArray(np.zeros((2, 3, 10)), mne.create_info(3, 100.0, "eeg"),
                             verbose=False)
    epochs.save(tmp_path / "bare-epo.fif", verbose=False)
    assert main(["fit-encoder", "--data", str(tmp_path / "bare-epo.fif"), "--output",
                 str(tmp_path / "enc")]) == 1
    assert "epochs.metadata needs an 'image_path' column" in capsys.readouterr().err
