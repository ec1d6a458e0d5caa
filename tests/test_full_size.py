"""The paper's configuration, random weights, offline: public API and command line.

The authors'-size encoder (128 x 440 EEG -> 77 x 1024) with ViT-H-14 targets read
from a local checkpoint file, SD 2.1 read from a local diffusers folder, 512 px,
recipe ``paper``, data in the CVPR40 file format: what a user's downloads look
like. Marked ``full_size`` (about 10 minutes and 12 GB on 2 CPU cores): run with
``python -m pytest -m full_size``.
"""

import gc
import socket

import numpy as np
import pytest

from benchmarks import _full_size as fs
from mne_synapse import EEGImageGenerator, SynapseEncoder
from mne_synapse.models._checks import count_parameters

pytestmark = pytest.mark.full_size

# Paper recipe on SD 2.1: attn2 (with the new k/v), time embeddings, norm2, + adapter.
PAPER_TRAINABLE = 108_052_608


@pytest.fixture(scope="module")
def network_attempts():
    """Every connection or name lookup fails, and is recorded."""
    attempts = []

    def refuse(what):
        attempts.append(repr(what))
        raise OSError(f"the full-size tests must not touch the network ({what!r})")

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        mp.setattr(socket.socket, "connect", lambda self, address: refuse(address))
        mp.setattr(socket.socket, "connect_ex", lambda self, address: refuse(address))
        mp.setattr(socket, "create_connection", lambda address, *a, **k: refuse(address))
        mp.setattr(socket, "getaddrinfo", lambda host, *a, **k: refuse(host))
        yield attempts


@pytest.fixture(scope="module")
def world(tmp_path_factory, network_attempts):
    """SD 2.1 folder, ViT-H-14 checkpoint, CVPR40 files and their epochs, a CLI config."""
    import torch

    from mne_synapse.datasets import load_cvpr40

    n_threads = torch.get_num_threads()
    torch.set_num_threads(2)  # the session runs on one thread; this module is the exception
    tmp = tmp_path_factory.mktemp("full_size")
    sd = fs.write_sd21(tmp / "stable-diffusion-2-1")
    clip = fs.write_clip_checkpoint(tmp / "clip")
    data = fs.write_cvpr40(tmp / "cvpr40")
    epochs = load_cvpr40(data["fname"], image_root=data["image_root"],
                         splits_fname=data["splits_fname"])
    config = tmp / "config.toml"
    config.write_text(
        f'[data]\nsource = "{data["fname"]}"\nimage_root = "{data["image_root"]}"\n'
        f'splits_fname = "{data["splits_fname"]}"\n\n'
        f'[encoder]\npreset = "paper"\nclip_model = "{clip[0]}"\nclip_pretrained = "{clip[1]}"\n'
        'batch_size = 2\nlr = 0.0001\n\n'
        f'[generator]\nbase_model = "{sd}"\nresolution = {fs.RESOLUTION}\nrecipe = "paper"\n'
        'batch_size = 1\nsnr_gamma = 0.5\nguidance_scale = 7.5\n')
    yield dict(tmp=tmp, sd=sd, clip=clip, epochs=epochs, config=config,
               train=epochs["split == 'train'"], test=epochs["split == 'test'"])
    torch.set_num_threads(n_threads)


@pytest.fixture(scope="module")
def encoder_folder(world):
    """The paper's Stage 1, fitted for a few steps and saved."""
    encoder = SynapseEncoder(**fs.encoder_params(*world["clip"], max_epochs=2, batch_size=2))
    encoder.fit(world["train"])
    world["encoder"] = encoder
    return encoder.save(world["tmp"] / "encoder")


def test_stage1_paper_encoder(world, encoder_folder):
    encoder = world["encoder"]
    assert (encoder.n_chans_, encoder.n_times_) == (fs.N_CHANS, fs.N_TIMES)
    # The authors' released sizes (their encoder file; their whole autoencoder).
    autoencoder = encoder.net_.module_
    assert count_parameters(autoencoder.Encoder) == 27_590_878
    assert count_parameters(autoencoder) == 49_459_914
    assert len(world["train"]) == 4 and len(encoder.history_) == 2  # 2 steps per epoch
    assert np.isfinite(encoder.history_[:, "train_loss"]).all()
    z = encoder.latent(world["test"])
    assert z.shape == (len(world["test"]), 77, 1024) and z.dtype == np.float32
    assert np.isfinite(z).all()
    np.testing.assert_array_equal(SynapseEncoder.load(encoder_folder).latent(world["test"]), z)


def test_stage1_command_line(world):
    from mne_synapse.cli import main

    out = world["tmp"] / "cli-encoder"
    assert main(["fit-encoder", "--config", str(world["config"]), "--epochs", "1",
                 "--output", str(out), "--quiet"]) == 0
    z = SynapseEncoder.load(out).latent(world["test"])
    assert z.shape == (len(world["test"]), 77, 1024) and np.isfinite(z).all()


def test_stage2_fit_generate_save_load(world, encoder_folder):
    """2 steps at batch 2 (gradient checkpointing, EMA), one image, save, load: same image."""
    gen = EEGImageGenerator(encoder=SynapseEncoder.load(encoder_folder), **fs.generator_params(
        world["sd"], batch_size=2, max_steps=2, gradient_checkpointing=True, ema_decay=0.9999))
    gen.fit(world["train"])
    assert gen.n_trainable_params_ == PAPER_TRAINABLE
    assert gen.image_size_ == fs.RESOLUTION
    assert gen.trainable_fraction_ == pytest.approx(PAPER_TRAINABLE / 865_910_724)
    assert len(gen.loss_curve_) == 2 and np.isfinite(gen.loss_curve_).all()
    assert {p.dtype for p in gen.unet_.parameters()} == {gen.vae_.dtype}
    epoch = world["test"][:1]
    image = gen.generate(epoch, num_inference_steps=2, random_state=0, output_type="np")
    assert image.shape == (1, 1, 512, 512, 3) and image.dtype == np.uint8
    assert image.std() > 0  # NaNs would come back as a flat image
    folder = gen.save(world["tmp"] / "generator")
    assert (folder / "generator.safetensors").stat().st_size > 4 * PAPER_TRAINABLE
    del gen
    gc.collect()
    loaded = EEGImageGenerator.load(folder)  # the base model from the saved folder path
    assert loaded.resolution == fs.RESOLUTION and loaded.n_trainable_params_ == PAPER_TRAINABLE
    np.testing.assert_array_equal(
        loaded.generate(epoch, num_inference_steps=2, random_state=0, output_type="np"), image)


def test_stage2_command_line(world, encoder_folder):
    from PIL import Image

    from mne_synapse.cli import main

    gen, images = world["tmp"] / "cli-generator", world["tmp"] / "cli-images"
    assert main(["fit-generator", "--config", str(world["config"]), "--encoder",
                 str(encoder_folder), "--steps", "1", "--output", str(gen), "--quiet"]) == 0
    assert main(["generate", "--config", str(world["config"]), "--generator", str(gen),
                 "--limit", "1", "--inference-steps", "2", "--output", str(images),
                 "--quiet"]) == 0
    pngs = sorted(images.glob("0*.png"))
    assert len(pngs) == 1 and Image.open(pngs[0]).size == (512, 512)
    assert (images / "generated.csv").is_file()


def test_nothing_touched_the_network(network_attempts):
    assert network_attempts == []
