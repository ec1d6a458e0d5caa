"""EEGImageGenerator.from_official: the authors' checkpoint-N/ folders, written here in their layout."""

import copy
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from mne_synapse import SynapseEncoder
from mne_synapse.generator import EEGImageGenerator
from mne_synapse.interop.official_stage2 import ADAPTER_KEYS, WEIGHTS, read_official_stage2

from test_generator import FAST_ENCODER, _tiny_base  # noqa: E402

TRAINED = ("attn2", "time", "norm2")  # what their trainer finetunes (src/models/eeg_LDM2.py)
SAMPLE = dict(num_inference_steps=2, random_state=0, output_type="np")


@pytest.fixture(scope="module")
def encoder(small_synthetic):
    return SynapseEncoder(random_state=0, verbose=False, **FAST_ENCODER).fit(small_synthetic.epochs)


@pytest.fixture(scope="module")
def base():
    return _tiny_base()


def _their_unet_state(unet, seed):
    """Their saved U-Net: stock keys plus one to_k_ip / to_v_ip per cross-attention.

    Written by name from the stock U-Net (not through our processors), with
    every tensor they train perturbed, so a loader that skips one is caught.
    """
    gen = torch.Generator().manual_seed(seed)
    state = {k: v.clone() for k, v in unet.state_dict().items()}
    for key in [k for k in state if k.endswith(("attn2.to_k.weight", "attn2.to_v.weight"))]:
        layer, proj = key[:-len(".to_k.weight")], key.split(".")[-2]
        state[f"{layer}.processor.{proj}_ip.weight"] = state[key].clone()
    return {k: v + 0.05 * torch.randn(v.shape, generator=gen) if any(t in k for t in TRAINED)
            else v for k, v in state.items()}


def _write_checkpoint(root, base, embed_dim=64, n_tokens=4, ema=True, prefix="", seed=0):
    """A checkpoint-N folder as their trainer writes it; returns what it holds."""
    files = {}
    for i, sub in enumerate(("unet", "ema_unet") if ema else ("unet",)):
        (root / sub).mkdir(parents=True)
        files[sub] = _their_unet_state(base.unet, seed + i)
        save_file(files[sub], root / sub / WEIGHTS)
        base.unet.save_config(root / sub)
    dim = base.unet.config.cross_attention_dim
    gen = torch.Generator().manual_seed(seed + 10)
    files["ip_adaption"] = {
        "0.weight": torch.randn(n_tokens * dim, embed_dim, generator=gen) / 8,
        "0.bias": torch.randn(n_tokens * dim, generator=gen),
        "2.weight": 1 + torch.randn(dim, generator=gen) / 10,
        "2.bias": torch.randn(dim, generator=gen) / 10}
    (root / "ip_adaption").mkdir()
    save_file({prefix + k: v for k, v in files["ip_adaption"].items()},
              root / "ip_adaption" / WEIGHTS)
    return files


def _assert_in_place(gen, unet_file, adapter_file):
    ours = gen.unet_.state_dict()
    assert set(ours) == set(unet_file)
    for key, value in unet_file.items():
        assert torch.equal(ours[key], value), key
    adapter = gen.adapter_.state_dict()
    for theirs, key in ADAPTER_KEYS.items():
        assert torch.equal(adapter[key], adapter_file[theirs]), key


def test_every_tensor_lands_and_it_generates(encoder, base, small_synthetic, tmp_path):
    root = tmp_path / "checkpoint-13000"
    files = _write_checkpoint(root, base, prefix="module.")
    # Their layout as the issue names it.
    assert "down_blocks.0.attentions.0.transformer_blocks.0.attn2.processor.to_k_ip.weight" \
        in files["unet"]
    # The paper's 512 px belong to SD 2.1; the tiny base samples at its own size.
    gen = EEGImageGenerator.from_official(root, encoder, base_model=base, resolution=None)
    _assert_in_place(gen, files["unet"], files["ip_adaption"])
    # The authors' Stage-2 configuration; the recipe is theirs (108.05 M on SD 2.1).
    assert (gen.unconditional_context, gen.guidance_scale, gen.n_adapt_tokens) == (
        "zero_latent", 7.5, 4)
    # Without an override it samples at their img_size.
    assert EEGImageGenerator.from_official(root, encoder, base_model=base).image_size_ == 512
    trained = {n for n, p in gen.unet_.named_parameters() if p.requires_grad}
    assert trained == {k for k in files["unet"] if any(t in k for t in TRAINED)}
    ema = EEGImageGenerator.from_official(root, encoder, base_model=base, use_ema=True,
                                          resolution=None)
    _assert_in_place(ema, files["ema_unet"], files["ip_adaption"])

    epochs = small_synthetic.epochs[:2]
    images = gen.generate(epochs, n_images=2, **SAMPLE)
    assert images.shape == (2, 2, 16, 16, 3)
    assert not np.array_equal(ema.generate(epochs, n_images=2, **SAMPLE), images)
    # Saves and loads like any fitted generator.
    gen.save(tmp_path / "converted")
    loaded = EEGImageGenerator.load(tmp_path / "converted", base_model=base)
    np.testing.assert_array_equal(loaded.generate(epochs, n_images=2, **SAMPLE), images)
    _assert_in_place(loaded, files["unet"], files["ip_adaption"])


def test_bad_folders_get_clear_errors(encoder, base, tmp_path):
    with pytest.raises(FileNotFoundError, match="not a folder"):
        EEGImageGenerator.from_official(tmp_path / "nowhere", encoder, base_model=base)
    root = tmp_path / "checkpoint-1"
    _write_checkpoint(root, base, ema=False)
    with pytest.raises(FileNotFoundError, match="no ema_unet/ folder.*use_ema=False"):
        EEGImageGenerator.from_official(root, encoder, base_model=base, use_ema=True)
    with pytest.raises(ValueError, match="fitted Stage-1 encoder"):
        EEGImageGenerator.from_official(root, SynapseEncoder(), base_model=base)
    with pytest.raises(ValueError, match=r"\['recipe'\]"):
        EEGImageGenerator.from_official(root, encoder, base_model=base, recipe="lean")
    # Another architecture.
    with pytest.raises(ValueError, match="cross_attention_dim"):
        EEGImageGenerator.from_official(root, encoder, base_model=_tiny_base(32))
    # Same architecture, other base weights: a tensor they never train differs.
    other = copy.deepcopy(base)
    with torch.no_grad():
        other.unet.conv_in.weight.add_(0.1)
    with pytest.raises(ValueError, match=r"conv_in.weight.*another Stable Diffusion"):
        EEGImageGenerator.from_official(root, encoder, base_model=other)
    # Wrong widths of the adapter (another encoder's).
    wrong = tmp_path / "checkpoint-2"
    _write_checkpoint(wrong, base, embed_dim=32, ema=False)
    with pytest.raises(ValueError, match="maps 32 features"):
        EEGImageGenerator.from_official(wrong, encoder, base_model=base)


def test_mismatched_files_are_named(encoder, base, tmp_path):
    root = tmp_path / "checkpoint-3"
    files = _write_checkpoint(root, base, ema=False)
    unet = dict(files["unet"])
    dropped = "mid_block.attentions.0.transformer_blocks.0.attn2.processor.to_v_ip.weight"
    unet.pop(dropped)
    unet["extra.weight"] = torch.zeros(1)
    save_file(unet, root / "unet" / WEIGHTS)
    with pytest.raises(ValueError, match=rf"missing keys \(1\): {dropped}"
                                          r"[\s\S]*unexpected keys \(1\): extra.weight"):
        EEGImageGenerator.from_official(root, encoder, base_model=base)
    save_file({k: v for k, v in files["unet"].items() if "processor" not in k},
              root / "unet" / WEIGHTS)
    with pytest.raises(ValueError, match="no IP-Adapter projections"):
        read_official_stage2(root)
    save_file(files["unet"], root / "unet" / WEIGHTS)
    save_file({"0.weight": torch.zeros(256, 64), "1.weight": torch.zeros(64)},
              root / "ip_adaption" / WEIGHTS)
    with pytest.raises(ValueError, match=r"missing \['0.bias', '2.bias', '2.weight'\]"):
        read_official_stage2(root)
    adapter = dict(files["ip_adaption"], **{"0.weight": torch.zeros(250, 64),
                                            "0.bias": torch.zeros(250)})
    save_file(adapter, root / "ip_adaption" / WEIGHTS)
    with pytest.raises(ValueError, match="not those of Linear"):
        read_official_stage2(root)
    (root / "ip_adaption" / WEIGHTS).write_bytes(b"not safetensors")
    with pytest.raises(ValueError, match="not a readable safetensors"):
        read_official_stage2(root)
    (root / "unet" / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="config.json"):
        read_official_stage2(root)


def test_sharded_unet_is_read_whole(base, tmp_path):
    root = tmp_path / "checkpoint-4"
    files = _write_checkpoint(root, base, ema=False)
    (root / "unet" / WEIGHTS).unlink()
    keys = sorted(files["unet"])
    shards = {"part-1.safetensors": keys[::2], "part-2.safetensors": keys[1::2]}
    for name, part in shards.items():
        save_file({k: files["unet"][k] for k in part}, root / "unet" / name)
    (root / "unet" / (WEIGHTS + ".index.json")).write_text(json.dumps(
        {"weight_map": {k: name for name, part in shards.items() for k in part}}))
    _, state, adapter, n_tokens = read_official_stage2(root)
    assert n_tokens == 4 and set(state) == set(files["unet"])
    assert all(torch.equal(state[k], load_file(root / "unet" / name)[k])
               for name, part in shards.items() for k in part)



def test_cli_converts_a_folder(encoder, tmp_path, capsys):
    from types import SimpleNamespace

    from mne_synapse.cli import main
    from mne_synapse.miniature.tiny_sd import build_tiny_sd

    vae, unet, _ = build_tiny_sd("synthetic")
    root = tmp_path / "checkpoint-5"
    files = _write_checkpoint(root, SimpleNamespace(unet=unet), ema=True)
    encoder.save(tmp_path / "encoder")
    argv = ["convert-official", "--checkpoint", str(root), "--encoder",
            str(tmp_path / "encoder"), "--output", str(tmp_path / "gen"), "--base-model",
            "tiny", "--ema", "--config", "paper", "--set", "generator.guidance_scale=5.0"]
    assert main(argv) == 0
    assert "ema_unet/ + ip_adaption/" in capsys.readouterr().out
    loaded = EEGImageGenerator.load(tmp_path / "gen")
    _assert_in_place(loaded, files["ema_unet"], files["ip_adaption"])
    assert (loaded.guidance_scale, loaded.base_model) == (5.0, "tiny")
    argv[4] = str(tmp_path / "encoder" / "config.json")
    assert main(argv) == 1
    assert "not a folder" in capsys.readouterr().err
