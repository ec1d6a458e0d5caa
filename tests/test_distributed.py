"""Distributed training for real: two CPU processes under ``accelerate launch`` (gloo)."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_processes_end_with_identical_trained_weights(small_synthetic, tmp_path):
    small_synthetic.epochs.save(tmp_path / "data-epo.fif", verbose=False)
    # One thread per process; a private HF_HOME so no user accelerate config applies.
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HF_HUB_OFFLINE="1",
               HF_HOME=str(tmp_path / "hf"))
    # `--cpu` launches one process per machine (more need MPI), so the processes
    # are started as for GPUs; the script's Accelerator(cpu=True) makes them use gloo.
    command = [sys.executable, "-m", "accelerate.commands.accelerate_cli", "launch",
               "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(_free_port()),
               str(Path(__file__).with_name("ddp_script.py")),
               str(tmp_path / "data-epo.fif"), str(tmp_path)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]

    ranks = [dict(np.load(tmp_path / f"rank{k}.npz")) for k in (0, 1)]
    assert all(int(r["world_size"]) == 2 for r in ranks)
    names = [k for k in ranks[0] if k.startswith(("encoder.", "generator."))]
    assert any(k.startswith("encoder.") for k in names)
    assert any(k.startswith("generator.adapter.") for k in names)
    assert any(k.startswith("generator.unet.") for k in names)
    assert sorted(names) == sorted(k for k in ranks[1] if k.startswith(("encoder.", "generator.")))
    for name in names:
        np.testing.assert_array_equal(ranks[0][name], ranks[1][name], err_msg=name)
    for r in ranks:  # both stages trained
        assert r["moved_encoder"] > 1e-4 and r["moved_generator"] > 1e-6
    # Losses are averaged over processes: every process recorded the same curves.
    for key in ("train_loss", "valid_loss", "loss_curve"):
        np.testing.assert_array_equal(ranks[0][key], ranks[1][key], err_msg=key)
        assert np.isfinite(ranks[0][key]).all()
    assert len(ranks[0]["train_loss"]) == 2 and len(ranks[0]["loss_curve"]) == 3
    # Only the main process saved.
    assert (tmp_path / "saved_by_rank0" / "generator.json").is_file()
    assert (tmp_path / "saved_by_rank0" / "encoder" / "config.json").is_file()
    assert not (tmp_path / "saved_by_rank1").exists()


def test_accelerator_settings_must_match_the_generator(small_synthetic):
    from accelerate import Accelerator

    from mne_synapse import EEGImageGenerator, SynapseEncoder

    generator = EEGImageGenerator(encoder=SynapseEncoder(), grad_accumulation=2,
                                  accelerator=Accelerator(cpu=True))
    with pytest.raises(ValueError, match="gradient_accumulation_steps=2"):
        generator.fit(small_synthetic.epochs)
    with pytest.raises(TypeError, match="accelerate.Accelerator"):
        SynapseEncoder(accelerator="cuda").fit(small_synthetic.epochs)


def test_one_process_accelerator_trains_as_without(small_synthetic, tmp_path):
    """Same seed, same data: an accelerated fit (one process) equals a plain one."""
    import pickle

    from accelerate import Accelerator
    from sklearn.base import clone

    from mne_synapse import SynapseEncoder

    epochs = small_synthetic.epochs[:40]
    params = dict(max_epochs=2, batch_size=16, module_kwargs=dict(widths=(16, 32), n_heads=2),
                  random_state=3, verbose=False)
    plain = SynapseEncoder(**params).fit(epochs)
    accelerator = Accelerator(cpu=True)
    accelerated = SynapseEncoder(accelerator=accelerator, **params).fit(epochs)
    # Augmentation and gradient clipping run on the accelerated path too.
    np.testing.assert_array_equal(accelerated.transform(epochs), plain.transform(epochs))
    assert type(accelerated.net_.module_).__name__ == "SynapseAutoencoder"  # unwrapped
    assert clone(accelerated).accelerator is accelerator
    again = pickle.loads(pickle.dumps(accelerated))
    np.testing.assert_array_equal(again.transform(epochs[:5]), plain.transform(epochs[:5]))
    loaded = SynapseEncoder.load(accelerated.save(tmp_path / "enc"))
    assert loaded.accelerator is None
    np.testing.assert_array_equal(loaded.transform(epochs[:5]), plain.transform(epochs[:5]))
