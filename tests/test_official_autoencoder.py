"""The authors' Stage-1 network (our reimplementation) and the strict reader of their files.

Equivalence with the authors' own code was measured outside this repository
(their code is not ours to ship); these tests pin what that equivalence rests
on: parameter counts, key names and shapes, and exact round trips through
files written in their layouts.
"""

import argparse
import re

import pytest
import torch
from torch import nn

from mne_synapse.interop.official import load_official_stage1
from mne_synapse.models.official_autoencoder import (OfficialAutoencoder, OfficialDecoder,
                                                     OfficialEncoder)

# Names and shapes read from the authors' code (eeg_AE.py, blocks.py, layers.py)
# for the released configuration; a few of every kind.
ENCODER_KEYS = {
    "posEmbed.0": (1, 64, 128),
    "posEmbed.4": (1, 1024, 1),
    "in_layer.conv.weight": (64, 440, 1),
    "in_layer.conv.bias": (64,),
    "main_flow.0.0.norm1.weight": (64,),
    "main_flow.0.1.norm2.bias": (64,),
    "main_flow.1.0.conv1.conv.weight": (128, 64, 1),
    "main_flow.1.0.shortcut.conv.weight": (128, 64, 1),
    "main_flow.1.1.conv2.conv.weight": (128, 128, 1),
    "main_flow.0.2.mha.wq.conv.weight": (64, 64, 1),
    "main_flow.4.2.mha.out.conv.weight": (1024, 1024, 1),
    "main_flow.0.2.ffn.conv1.conv.weight": (128, 64, 1),
    "main_flow.0.2.ffn.conv1.conv.bias": (128,),
    "main_flow.3.2.ffn.conv2.conv.weight": (512, 1024, 1),
    "main_flow.3.2.layernorm1.weight": (512, 4),
    "main_flow.4.2.layernorm2.bias": (1024, 1),
    "downs.0.proj.linear.weight": (64, 128),
    "downs.3.proj.linear.weight": (1, 4),
    "skips.0.conv.weight": (1024, 64, 1),
    "skips.4.conv.weight": (1024, 1024, 1),
    "out_layer.conv.weight": (1024, 1024, 1),
    "out_layer.conv.bias": (1024,),
    "skips_agg.0.linear.weight": (1024, 214),
    "skips_agg.2.linear.weight": (1024, 1024),
    "skips_agg.4.linear.weight": (77, 1024),
    "skips_agg.5.mha.wk.conv.weight": (1024, 1024, 1),
    "skips_agg.5.ffn.conv1.conv.weight": (154, 1024, 1),
    "skips_agg.5.ffn.conv2.conv.bias": (1024,),
    "skips_agg.5.layernorm1.weight": (1024, 77),
}
DECODER_KEYS = {
    "posEmbed.0": (1, 1024, 77),
    "posEmbed.1": (1, 512, 4),
    "posEmbed.4": (1, 64, 128),
    "in_layer.conv.weight": (1024, 1024, 1),
    "main_flow.0.0.conv1.conv.weight": (1024, 1024, 1),
    "main_flow.0.2.layernorm1.weight": (1024, 77),
    "main_flow.0.2.ffn.conv1.conv.weight": (2048, 1024, 1),
    "main_flow.1.0.conv1.conv.weight": (512, 1024, 1),
    "main_flow.4.2.layernorm2.weight": (64, 128),
    "ups.0.proj.linear.weight": (4, 77),
    "ups.3.proj.linear.weight": (128, 64),
    "out_layer.conv.weight": (440, 64, 1),
    "out_layer.conv.bias": (440,),
}
# Their 1x1 convolutions and token maps have no bias unless asked for.
ABSENT_KEYS = ("main_flow.0.0.conv1.conv.bias", "main_flow.0.0.shortcut.conv.bias",
               "main_flow.0.2.mha.wq.conv.bias", "skips.0.conv.bias",
               "skips_agg.0.linear.bias", "downs.0.proj.linear.bias", "downs.4.proj.linear.weight")


def _randomised(module, seed):
    """Fill every parameter with random values, so a mix-up of any two shows."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            param.copy_(torch.randn(param.shape, generator=gen) * 0.05)
    return module.eval()


@pytest.fixture(scope="module")
def autoencoder():
    return _randomised(OfficialAutoencoder(), seed=0)


@pytest.fixture(scope="module")
def encoder(autoencoder):
    # The released encoder file is the autoencoder's encoder with the prefix cut.
    return autoencoder.Encoder


@pytest.fixture(scope="module")
def eeg():
    return torch.randn(2, 128, 440, generator=torch.Generator().manual_seed(1))


def _n_params(module):
    return sum(p.numel() for p in module.parameters())


def test_parameter_counts(autoencoder):
    assert _n_params(autoencoder.Encoder) == 27_590_878
    assert _n_params(autoencoder) == 49_459_914
    # Train_AE.json's depth, counted on the authors' code as well.
    assert _n_params(OfficialEncoder(n_layer=3, n_head=16)) == 31_789_022


def test_key_names_and_shapes(autoencoder):
    enc = {k: tuple(v.shape) for k, v in autoencoder.Encoder.state_dict().items()}
    dec = {k: tuple(v.shape) for k, v in autoencoder.Decoder.state_dict().items()}
    assert {k: enc.get(k) for k in ENCODER_KEYS} == ENCODER_KEYS
    assert {k: dec.get(k) for k in DECODER_KEYS} == DECODER_KEYS
    assert not set(ABSENT_KEYS) & set(enc)
    assert (len(enc), len(dec)) == (163, 143)  # as many as their modules have
    full = autoencoder.state_dict()
    assert set(full) == {f"Encoder.{k}" for k in enc} | {f"Decoder.{k}" for k in dec}


def test_shapes_and_input_checks(encoder, autoencoder, eeg):
    with torch.no_grad():
        z = encoder(eeg)
        z_ae, x_hat = autoencoder(eeg)
    assert z.shape == (2, 77, 1024) and x_hat.shape == (2, 128, 440)
    torch.testing.assert_close(z, z_ae, rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"transpose\(1, 2\)"):
        encoder(eeg.transpose(1, 2))
    for bad in (eeg[:, :64], eeg[..., :400], eeg[0]):
        with pytest.raises(ValueError, match=r"\(n_epochs, 128, 440\).*20:460.*1 kHz"):
            encoder(bad)
    with pytest.raises(ValueError, match=r"Z_latent of shape \(n_epochs, 77, 1024\)"):
        autoencoder.decode(z.transpose(1, 2))
    for kwargs in (dict(n_head=3), dict(n_layer=0), dict(dropout=1.0)):
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            OfficialDecoder(**kwargs)


def test_released_encoder_file_round_trip(encoder, eeg, tmp_path):
    fname = tmp_path / "EEGEncoder_BLIP2_69000.pth"
    torch.save({"net": encoder.state_dict()}, fname)
    loaded = load_official_stage1(fname)
    assert type(loaded) is OfficialEncoder and not loaded.training
    assert (loaded.n_layer, loaded.n_head) == (2, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(eeg), encoder(eeg), rtol=0, atol=0)


def test_trainer_checkpoint_round_trip(autoencoder, eeg, tmp_path):
    # Their trainer saves {"net": ..., "optim": ...}; under DDP keys gain "module.".
    state = {f"module.{k}": v for k, v in autoencoder.state_dict().items()}
    optim = {"state": {0: {"step": torch.tensor(3.0)}},
             "param_groups": [{"lr": 1e-4, "betas": (0.9, 0.999), "params": [0]}]}
    fname = tmp_path / "EEG_condition_69000.pth"
    torch.save({"net": state, "optim": optim}, fname)
    loaded = load_official_stage1(fname)
    assert type(loaded) is OfficialAutoencoder
    with torch.no_grad():
        for got, want in zip(loaded(eeg), autoencoder(eeg)):
            torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_n_layer_is_read_from_the_keys(tmp_path):
    shallow = OfficialEncoder(n_layer=1, n_head=16)
    fname = tmp_path / "shallow.pth"
    torch.save({"net": shallow.state_dict()}, fname)
    loaded = load_official_stage1(fname, n_head=16)
    assert (loaded.n_layer, loaded.n_head) == (1, 16)
    with pytest.raises(ValueError, match=r"n_layer=2.*\n.*missing keys.*main_flow\.0\.2\.mha"):
        load_official_stage1(fname, n_layer=2)


@pytest.mark.parametrize("change, named", [
    ("rename", [r"missing keys \(1\): main_flow\.2\.1\.norm1\.weight",
                r"unexpected keys \(1\): main_flow\.2\.1\.norm_1\.weight"]),
    ("drop", [r"missing keys \(2\): downs\.2\.proj\.linear\.weight, "
              r"skips_agg\.5\.layernorm2\.bias"]),
    ("reshape", [r"mis-shaped key posEmbed\.1: expected \(1, 128, 64\), found \(1, 128, 63\)"]),
])
def test_mismatched_keys_are_named(encoder, tmp_path, change, named):
    state = dict(encoder.state_dict())
    if change == "rename":
        state["main_flow.2.1.norm_1.weight"] = state.pop("main_flow.2.1.norm1.weight")
    elif change == "drop":
        del state["skips_agg.5.layernorm2.bias"], state["downs.2.proj.linear.weight"]
    else:
        state["posEmbed.1"] = state["posEmbed.1"][..., :63]
    fname = tmp_path / "changed.pth"
    torch.save({"net": state}, fname)
    with pytest.raises(ValueError, match="does not match the network") as info:
        load_official_stage1(fname)
    for pattern in named:
        assert re.search(pattern, str(info.value)), str(info.value)[:500]


class _Config:
    """A Python object: weights_only loading must refuse a file holding one."""


@pytest.mark.parametrize("content, error, message", [
    (None, FileNotFoundError, "does not exist"),
    (b"not a torch file at all", ValueError, "could not be read|not a valid torch"),
    ([torch.zeros(3)], ValueError, "holds a list, not the dict"),
    ({"net": "weights"}, ValueError, "'net' entry is a str"),
    ({"net": {"in_layer.conv.weight": 1.0}}, ValueError, "not a state dict"),
    ({"net": nn.Linear(2, 3).state_dict()}, ValueError,
     r"does not hold the authors' Stage-1 .* it has bias, weight"),
    ({"net": {}, "config": _Config()}, ValueError, "refused for safety"),
    ({"net": {}, "args": argparse.Namespace(n_head=64)}, ValueError, "refused for safety"),
])
def test_bad_files_fail_clearly(tmp_path, content, error, message):
    fname = tmp_path / "weights.pth"
    if isinstance(content, bytes):
        fname.write_bytes(content)
    elif content is not None:
        torch.save(content, fname)
    with pytest.raises(error, match=message):
        load_official_stage1(fname)
