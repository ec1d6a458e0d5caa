"""Tests of the Stage-1 hybrid autoencoder (small and fast; the paper size runs once)."""

import pytest
import torch

from mne_synapse.losses import reconstruction_loss
from mne_synapse.models import PRESETS, SynapseAutoencoder, build_autoencoder, count_parameters


def _tiny(**kw):
    kw.setdefault("n_chans", 16)
    kw.setdefault("n_times", 32)
    return SynapseAutoencoder.from_preset("tiny", **kw)


def test_hybrid_preset_shapes_and_size():
    torch.manual_seed(0)
    model = SynapseAutoencoder.from_preset("hybrid", n_chans=128, n_times=440).eval()
    assert model.electrode_schedule == (128, 64, 16, 4, 1)
    n_params = count_parameters(model)
    print(f"hybrid preset: {n_params:,} parameters")
    # 55,107,811 with these sizes; a wrong wiring moves this by millions.
    assert 50e6 < n_params < 60e6
    with torch.no_grad():
        z, x_hat = model(torch.randn(2, 128, 440))
    assert z.shape == (2, 77, 1024)
    assert x_hat.shape == (2, 128, 440)
    assert torch.isfinite(z).all() and torch.isfinite(x_hat).all()


def test_tiny_other_sizes_and_encode_decode():
    model = _tiny(n_chans=32, n_times=100).eval()
    assert model.electrode_schedule == (32, 16)
    x = torch.randn(3, 32, 100)
    z, x_hat = model(x)
    assert z.shape == (3, 24, 64) and x_hat.shape == (3, 32, 100)
    # forward is exactly decode(encode(x)): the decoder sees only the latent.
    torch.testing.assert_close(model.decode(model.encode(x)), x_hat)
    with pytest.raises(ValueError, match="latent of shape"):
        model.decode(torch.randn(3, 23, 64))


def test_decoder_uses_only_latent():
    model = _tiny().eval()
    x1, x2 = torch.randn(2, 16, 32), torch.randn(2, 16, 32)
    z = model.encode(x1)
    # Same z, different inputs elsewhere: decode cannot depend on anything but z.
    model.encode(x2)
    torch.testing.assert_close(model.decode(z), model(x1)[1])


def test_tiny_forward_backward_batch32():
    """A training step at the benchmark's size gives finite gradients to every weight."""
    torch.manual_seed(0)
    model = SynapseAutoencoder.from_preset("tiny", n_chans=128, n_times=128)
    x = torch.randn(32, 128, 128)
    z, x_hat = model(x)
    reconstruction_loss(x_hat, x).backward()
    assert z.shape[0] == 32 and x_hat.shape == x.shape
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert count_parameters(model) > 0


@pytest.mark.parametrize("bad, match", [
    (torch.randn(16, 32), "got \\(16, 32\\)"),
    (torch.randn(2, 15, 32), "n_chans=16"),
    (torch.randn(2, 16, 31), "n_times=32"),
    (torch.randn(2, 1, 16, 32), "Expected input of shape"),
])
def test_bad_inputs(bad, match):
    model = _tiny()
    with pytest.raises(ValueError, match=match):
        model(bad)


@pytest.mark.parametrize("kwargs, match", [
    (dict(widths=(32, 66)), "divisible by n_heads"),
    (dict(embed_dim=66), "embed_dim=66 must be divisible"),
    (dict(electrode_schedule=(16, 16)), "strictly decreasing"),
    (dict(electrode_schedule=(16, 17)), "strictly decreasing"),
    (dict(electrode_schedule=(15, 4)), "must equal n_chans"),
    (dict(electrode_schedule=(16, 8, 4)), "one entry per level"),
    (dict(n_res_blocks=0), "n_res_blocks must be a positive int"),
    (dict(widths=()), "widths\\[0\\]"),
    (dict(dropout=1.0), "dropout"),
    (dict(power_filters=-1), "power_filters must be an int >= 0"),
    (dict(power_filters=4, power_bands=0), "power_bands must be a positive int"),
])
def test_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _tiny(**kwargs)


def test_unknown_preset_and_missing_sizes():
    with pytest.raises(ValueError, match=r"known presets: \['hybrid', 'tiny'\]"):
        SynapseAutoencoder.from_preset("huge", n_chans=4, n_times=8)
    with pytest.raises(ValueError, match=r"known presets: \['hybrid', 'paper', 'tiny'\]"):
        build_autoencoder("huge")
    # braindecode's own messages: the same inference as every braindecode model.
    with pytest.raises(ValueError, match="n_chans could not be inferred.*n_chans or chs_info"):
        SynapseAutoencoder(n_times=32, **PRESETS["tiny"])
    with pytest.raises(ValueError, match="n_times could not be inferred"):
        SynapseAutoencoder(n_chans=16, **PRESETS["tiny"])
    # Small montages shrink to one electrode, then stay there.
    model = SynapseAutoencoder(n_chans=4, n_times=8, widths=(8, 8, 8, 8), n_heads=4,
                               embed_dim=8, n_tokens=4)
    assert model.electrode_schedule == (4, 2, 1, 1)
    assert model(torch.randn(2, 4, 8))[1].shape == (2, 4, 8)


def test_chs_info_and_window_inference():
    chs_info = [{"ch_name": f"EEG{i:03d}"} for i in range(12)]
    model = _tiny(n_chans=None, n_times=None, chs_info=chs_info,
                  sfreq=64.0, input_window_seconds=0.5)
    assert (model.n_chans, model.n_times) == (12, 32)
    assert model.chs_info is chs_info and model.input_shape == (1, 12, 32)
    assert model(torch.randn(1, 12, 32))[1].shape == (1, 12, 32)
    with pytest.raises(ValueError, match="n_chans=13 different from chs_info=.* length"):
        _tiny(n_chans=13, chs_info=chs_info)


def test_hybrid_schedule_adapts_to_other_montages():
    # The hybrid preset's fixed schedule is for 128 channels; others get a derived one.
    kw = dict(widths=(16, 32), n_heads=4, embed_dim=32, n_tokens=8)
    model = SynapseAutoencoder.from_preset("hybrid", n_chans=64, n_times=16, **kw)
    assert model.electrode_schedule == (64, 32)


def test_seeded_construction_is_deterministic():
    torch.manual_seed(1)
    a = _tiny().state_dict()
    torch.manual_seed(1)
    b = _tiny().state_dict()
    torch.manual_seed(2)
    c = _tiny().state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_tiny_trains():
    torch.manual_seed(0)
    model = _tiny(dropout=0.0)
    x = torch.randn(8, 16, 32)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(50):
        opt.zero_grad()
        loss = reconstruction_loss(model(x)[1], x)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], (losses[0], losses[-1])


def test_band_power_tokens_read_power_not_phase():
    """The band-power front end: the same oscillation at any phase gives the same
    log power, twice the amplitude adds log(4); in the network it adds one skip
    token per spatial filter, the latent keeps its shape, and it trains."""
    from mne_synapse.models.band_power import BandPowerTokens

    torch.manual_seed(0)
    module = BandPowerTokens(n_chans=8, n_times=200, n_filters=3, n_bands=4, embed_dim=16)
    t = torch.arange(200) / 250.0
    # 20 Hz over exactly 16 cycles: the window's power does not depend on the phase.
    waves = torch.stack([torch.sin(2 * torch.pi * 20 * t + phase) for phase in (0.0, 1.0, 2.5)])
    x = waves[:, None, :] * torch.randn(1, 8, 1)  # one source seen on 8 channels
    with torch.no_grad():
        power = module.log_power(x)
        doubled = module.log_power(2 * x)
    assert power.shape == (3, 3, 4)
    torch.testing.assert_close(power[1], power[0], atol=0.05, rtol=0)
    torch.testing.assert_close(power[2], power[0], atol=0.05, rtol=0)
    torch.testing.assert_close(doubled - power, torch.full_like(power, 4.0).log(), atol=1e-3,
                               rtol=0)
    assert module(x).shape == (3, 3, 16)
    # 'bands' normalises each filter's spectral profile (its level is gone), 'all'
    # keeps each filter's level relative to the others (only a common level is gone).
    power = torch.randn(2, 3, 4)
    per_filter = torch.tensor([0.0, 1.0, 3.0])[None, :, None]  # one filter louder
    for norm, keeps_levels in (("bands", False), ("all", True)):
        module = BandPowerTokens(8, 200, n_filters=3, n_bands=4, embed_dim=16, norm=norm)
        with torch.no_grad():
            same = module.norm(power)
            torch.testing.assert_close(module.norm(power + 2.0), same, atol=1e-5, rtol=0)
            moved = not torch.allclose(module.norm(power + per_filter), same, atol=1e-3)
        assert moved == keeps_levels
    with pytest.raises(ValueError, match="norm must be"):
        BandPowerTokens(8, 200, n_filters=3, n_bands=4, embed_dim=16, norm="filters")

    plain, banded = _tiny(power_filters=0), _tiny(power_filters=5)
    assert plain.band_power is None
    assert banded.token_mlp[0].linear.in_features == plain.token_mlp[0].linear.in_features + 5
    x = torch.randn(4, 16, 32)
    z, x_hat = banded(x)
    assert z.shape == (4, 24, 64) and x_hat.shape == x.shape
    (z.square().mean() + reconstruction_loss(x_hat, x)).backward()
    assert banded.band_power.spatial.weight.grad.abs().sum() > 0
    assert banded.band_power.temporal.weight.grad.abs().sum() > 0
