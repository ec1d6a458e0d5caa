"""Saved work is never lost, loading never unpickles, equal seeds give equal results.

Atomic saves (injected failures at every step and a killed process), content
hashes, determinism on CPU, resumable training, and the lazy (larger than
memory) input path.
"""

import os
import subprocess
import sys
import time

import numpy as np
import pytest
from _crash import crashing_replace

from mne_synapse import SynapseEncoder, utils
from mne_synapse.generator import EEGImageGenerator

TINY = dict(batch_size=8, module_kwargs=dict(widths=(8, 16), n_heads=2), verbose=False)


@pytest.fixture(scope="module")
def epochs(small_synthetic):
    return small_synthetic.epochs[:40]


@pytest.fixture(scope="module")
def encoder(epochs):
    return SynapseEncoder(random_state=0, max_epochs=1, **TINY).fit(epochs)


def _state(est):
    return {k: v.clone() for k, v in est.net_.module_.state_dict().items()}


def _assert_same_state(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert (a[key] == b[key]).all(), key


def _perturbed(encoder):
    """A copy of ``encoder`` with other weights (a 'new version' to save over it)."""
    import copy

    import torch

    other = copy.deepcopy(encoder)
    with torch.no_grad():
        for param in other.net_.module_.parameters():
            param.add_(1.0)
    return other


# -- atomic writes -------------------------------------------------------------
def test_atomic_write_failure_keeps_old_file(tmp_path, monkeypatch):
    target = tmp_path / "file.bin"
    target.write_bytes(b"old")

    def half_then_fail(fid):
        fid.write(b"new but incompl")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        utils.atomic_write(target, half_then_fail)
    assert target.read_bytes() == b"old"

    def fail_replace(src, dst):
        raise OSError("rename failed")

    monkeypatch.setattr(utils.os, "replace", fail_replace)
    with pytest.raises(OSError, match="rename failed"):
        utils.atomic_write(target, lambda fid: fid.write(b"new"))
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.bin"]  # no temporaries left


# A save of the encoder makes 7 renames: 3 staged files (config, weights, model
# card), the journal (the commit point), then the 3 staged files over the old ones.
@pytest.mark.parametrize("fail_at", range(7))
def test_interrupted_encoder_save_loads_old_or_new(encoder, epochs, tmp_path, monkeypatch,
                                                   fail_at):
    folder = tmp_path / "enc"
    encoder.save(folder)
    new = _perturbed(encoder)
    old_z, new_z = encoder.transform(epochs[:4]), new.transform(epochs[:4])
    real_replace, replace = os.replace, crashing_replace(fail_at)

    monkeypatch.setattr(utils.os, "replace", replace)
    with pytest.raises(OSError, match="simulated crash"):
        new.save(folder)
    monkeypatch.setattr(utils.os, "replace", real_replace)
    committed = fail_at > 3
    loaded = SynapseEncoder.load(folder)
    np.testing.assert_array_equal(loaded.transform(epochs[:4]), new_z if committed else old_z)
    # The next save cleans up and succeeds.
    encoder.save(folder)
    np.testing.assert_array_equal(SynapseEncoder.load(folder).transform(epochs[:4]), old_z)
    assert not list(folder.glob("*.staged")) and not list(folder.glob(".*"))


# The child process runs exactly what SynapseEncoder.save runs,
# save_folder(target, encoder._saved_files()), on files prepared here (so it
# needs no torch and starts fast), and hangs at a chosen point to be killed.
_KILLED_SAVE = """
import os, sys, time
from pathlib import Path
from mne_synapse._persistence import save_folder

source, target, marker, point = sys.argv[1:]
files = {p.name: p.read_bytes() for p in Path(source).iterdir()}
real_fsync, real_replace = os.fsync, os.replace

def hang():
    Path(marker).touch()
    time.sleep(120)

def fsync(fd):  # the first staged file is written and synced, not yet committed
    real_fsync(fd)
    if point == "before-commit":
        hang()

def replace(src, dst):  # committed: the first staged file is about to be renamed
    if point == "after-commit" and str(src).endswith(".staged"):
        hang()
    real_replace(src, dst)

os.fsync, os.replace = fsync, replace
save_folder(target, files)
"""


@pytest.mark.parametrize("point", ["before-commit", "after-commit"])
def test_killed_save_loses_nothing(encoder, epochs, tmp_path, point):
    """A process killed (SIGKILL) in the middle of a save leaves a loadable folder."""
    new = _perturbed(encoder)
    (tmp_path / "new").mkdir()
    for name, content in new._saved_files().items():
        (tmp_path / "new" / name).write_bytes(content.encode() if isinstance(content, str)
                                              else content)
    encoder.save(tmp_path / "target")
    marker = tmp_path / "marker"
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_SAVE, str(tmp_path / "new"),
                             str(tmp_path / "target"), str(marker), point])
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None, "the saving process ended before the kill"
            assert time.monotonic() < deadline
            time.sleep(0.02)
        proc.kill()
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    leftovers = [p.name for p in (tmp_path / "target").iterdir()]
    assert any(name.startswith(".") or name.endswith(".staged") for name in leftovers)
    expected = new if point == "after-commit" else encoder
    np.testing.assert_array_equal(SynapseEncoder.load(tmp_path / "target").transform(epochs[:4]),
                                  expected.transform(epochs[:4]))


def test_tampered_weights_are_refused(encoder, tmp_path):
    folder = encoder.save(tmp_path / "enc")
    weights = folder / "model.safetensors"
    blob = bytearray(weights.read_bytes())
    blob[len(blob) // 2] ^= 0xFF  # same size, one byte changed
    weights.write_bytes(bytes(blob))
    with pytest.raises(ValueError, match="does not match the hash.*save the encoder again"):
        SynapseEncoder.load(folder)


def test_loading_never_unpickles(encoder, epochs, tmp_path, monkeypatch):
    """Saved estimators load through safetensors and JSON only; torch files with weights_only."""
    import pickle

    import torch

    folder = encoder.save(tmp_path / "enc")

    def refuse(*args, **kwargs):
        raise AssertionError("unpickling attempted")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr(torch, "load", refuse)
    np.testing.assert_array_equal(SynapseEncoder.load(folder).transform(epochs[:3]),
                                  encoder.transform(epochs[:3]))
    monkeypatch.undo()
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    SynapseEncoder(random_state=0, max_epochs=1, checkpoint_dir=tmp_path / "ckpt",
                   **TINY).fit(epochs)
    SynapseEncoder(random_state=0, max_epochs=2, checkpoint_dir=tmp_path / "ckpt",
                   **TINY).fit(epochs)  # resumes: reads the checkpoint
    from mne_synapse.datasets import load_cvpr40

    torch.save(dict(dataset=[dict(eeg=torch.zeros(4, 500), image=0, label=0, subject=1)],
                    labels=["n01"], images=["n01_1"]), tmp_path / "eeg.pth")
    load_cvpr40(tmp_path / "eeg.pth")
    assert len(calls) == 2 and all(calls)


# -- determinism ---------------------------------------------------------------
def test_same_seed_same_encoder_whatever_the_global_state(epochs):
    import torch

    outputs = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        np.random.seed(global_seed)
        est = SynapseEncoder(random_state=7, max_epochs=2, validation_fraction=0.2, **TINY)
        outputs.append(est.fit(epochs).transform(epochs))
    np.testing.assert_array_equal(outputs[0], outputs[1])
    other = SynapseEncoder(random_state=8, max_epochs=2, validation_fraction=0.2, **TINY)
    assert not np.allclose(other.fit(epochs).transform(epochs), outputs[0])


def test_same_seed_same_generated_images(encoder, epochs):
    from test_generator import _tiny_base

    images = []
    for global_seed in (1, 2):
        import torch

        torch.manual_seed(global_seed)
        gen = EEGImageGenerator(encoder=encoder, base_model=_tiny_base(), max_steps=2,
                                batch_size=2, random_state=0, verbose=False).fit(epochs[:8])
        images.append(gen.generate(epochs[:2], n_images=2, num_inference_steps=2,
                                   random_state=3, output_type="np"))
    np.testing.assert_array_equal(images[0], images[1])
    assert images[0].std() > 0  # real images, not a constant


# -- resume ----------------------------------------------------------------------
class _Crash(Exception):
    pass


def _crash_at_epoch(n):
    from skorch.callbacks import Callback

    class CrashAt(Callback):
        def on_epoch_begin(self, net, **kwargs):
            if len(net.history) == n:
                raise _Crash(f"simulated crash at the start of epoch {n}")

    return CrashAt()


@pytest.mark.parametrize("options", [{}, dict(lr_schedule="cosine"), dict(augment_mix=0.5)])
def test_resume_gives_the_uninterrupted_weights(epochs, tmp_path, options):
    params = dict(random_state=3, max_epochs=3, validation_fraction=0.2,
                  uncertainty_weighting=True, **options, **TINY)
    full = SynapseEncoder(**params).fit(epochs)

    folder = tmp_path / "ckpt"
    with pytest.raises(_Crash):  # stopped after k=1 of 3 epochs
        SynapseEncoder(**params, checkpoint_dir=folder,
                       callbacks=[("crash", _crash_at_epoch(2))]).fit(epochs)
    (checkpoint,) = folder.glob("*/checkpoint.pt")
    resumed = SynapseEncoder(**params, checkpoint_dir=folder).fit(epochs)
    _assert_same_state(_state(resumed), _state(full))
    for key in ("train_loss", "valid_loss", "train_loss_best", "valid_loss_best"):
        assert resumed.history_[:, key] == full.history_[:, key], key
    np.testing.assert_array_equal(resumed.transform(epochs), full.transform(epochs))

    # A finished run is restored, not retrained (the checkpoint is not rewritten).
    mtime = checkpoint.stat().st_mtime_ns
    again = SynapseEncoder(**params, checkpoint_dir=folder).fit(epochs)
    _assert_same_state(_state(again), _state(full))
    assert checkpoint.stat().st_mtime_ns == mtime


def test_resume_with_more_epochs_and_separate_runs(epochs, tmp_path):
    params = dict(random_state=4, **TINY)
    full = SynapseEncoder(max_epochs=3, **params).fit(epochs)
    folder = tmp_path / "ckpt"
    SynapseEncoder(max_epochs=1, checkpoint_dir=folder, **params).fit(epochs)
    longer = SynapseEncoder(max_epochs=3, checkpoint_dir=folder, **params).fit(epochs)
    _assert_same_state(_state(longer), _state(full))
    assert len(longer.history_) == 3
    # Other data or other parameters: another run, in its own sub-folder.
    SynapseEncoder(max_epochs=1, checkpoint_dir=folder, **params).fit(epochs[:30])
    SynapseEncoder(max_epochs=1, checkpoint_dir=folder, **dict(params, random_state=5)).fit(epochs)
    assert len(list(folder.glob("*/checkpoint.pt"))) == 3
    # A cosine schedule is laid over max_epochs: a longer run is another run.
    for max_epochs in (1, 2):
        SynapseEncoder(max_epochs=max_epochs, checkpoint_dir=folder, lr_schedule="cosine",
                       **params).fit(epochs)
    assert len(list(folder.glob("*/checkpoint.pt"))) == 5


# -- lazy input ----------------------------------------------------------------
@pytest.fixture
def read_sizes(monkeypatch):
    """Record how many epochs each lazy read returns."""
    from mne_synapse import _inputs

    sizes = []
    real = _inputs.LazyEEG.__getitem__

    def spy(self, index):
        out = real(self, index)
        sizes.append(1 if out.ndim == 2 else len(out))
        return out

    monkeypatch.setattr(_inputs.LazyEEG, "__getitem__", spy)
    return sizes


def test_memmap_fit_equals_in_memory_fit(small_synthetic, tmp_path, read_sizes):
    epochs = small_synthetic.epochs
    md = epochs.metadata
    X = epochs.get_data()
    stimuli = dict(images=md.image_path.to_numpy(), captions=md.caption.to_numpy())
    params = dict(random_state=0, max_epochs=2, **TINY)
    in_memory = SynapseEncoder(**params).fit(X, **stimuli)
    np.save(tmp_path / "X.npy", X)  # float64 on disk: cast a batch at a time
    mapped = np.load(tmp_path / "X.npy", mmap_mode="r")
    assert isinstance(mapped, np.memmap)
    lazy = SynapseEncoder(**params).fit(mapped, **stimuli)
    assert read_sizes and max(read_sizes) <= 64 < len(X)  # never the whole array
    _assert_same_state(_state(lazy), _state(in_memory))
    np.testing.assert_array_equal(lazy.transform(mapped), in_memory.transform(X))


def test_non_preloaded_epochs_fit_equals_preloaded(small_synthetic, tmp_path, read_sizes):
    import mne

    epochs = small_synthetic.epochs
    fname = tmp_path / "data-epo.fif"
    epochs.save(fname, fmt="double")
    on_disk = mne.read_epochs(fname, preload=False, verbose=False)
    assert not on_disk.preload
    params = dict(random_state=0, max_epochs=2, **TINY)
    lazy = SynapseEncoder(**params).fit(on_disk)  # stimuli from the saved metadata
    assert read_sizes and max(read_sizes) <= 64 < len(epochs)
    assert not on_disk.preload  # never loaded as a whole
    in_memory = SynapseEncoder(**params).fit(epochs)
    _assert_same_state(_state(lazy), _state(in_memory))
    np.testing.assert_array_equal(lazy.transform(on_disk), in_memory.transform(epochs))


def test_lazy_nan_is_reported(tmp_path):
    X = np.lib.format.open_memmap(tmp_path / "X.npy", mode="w+", dtype=np.float32,
                                  shape=(100, 2, 16))
    X[:] = 1.0
    X[90, 1, 3] = np.nan
    X.flush()
    mapped = np.load(tmp_path / "X.npy", mmap_mode="r")
    with pytest.raises(ValueError, match="NaN.*drop_bad"):
        SynapseEncoder(align_weight=0, contrastive_weight=0, **TINY).fit(mapped)


def test_saving_twice_is_idempotent_and_tidy(encoder, tmp_path):
    folder = encoder.save(tmp_path / "enc")
    first = {p.name: p.read_bytes() for p in folder.iterdir()}
    encoder.save(folder)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == first
    assert sorted(first) == ["README.md", "config.json", "model.safetensors"]
