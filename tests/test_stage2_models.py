"""Tests of the Stage-2 modules: EEG adapter, decoupled cross-attention, recipes, configs.

Tiny U-Nets check the maths; the real SD 2.1 / SD 1.5 architectures (random
weights, no download) check the parameter counts and one small forward pass.
"""

import copy
import gc
import time

import pytest
import torch
from diffusers import UNet2DConditionModel
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

from mne_synapse.models import (
    RECIPES, EEGAdapter, EEGAttnProcessor, apply_recipe, count_parameters, count_recipe,
    install_eeg_processors, load_unet_config,
)

N_LATENT, N_ADAPT, CROSS_DIM = 7, 4, 32



def _tiny_unet():
    torch.manual_seed(0)
    return UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, cross_attention_dim=CROSS_DIM,
        sample_size=8, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), attention_head_dim=8).eval()


def _inputs(batch=2, n_latent=N_LATENT):
    gen = torch.Generator().manual_seed(1)
    sample = torch.randn(batch, 4, 8, 8, generator=gen)
    context = torch.randn(batch, n_latent + N_ADAPT, CROSS_DIM, generator=gen)
    return sample, torch.tensor([10, 500]), context


def _eeg_processors(unet):
    return [p for p in unet.attn_processors.values() if isinstance(p, EEGAttnProcessor)]


# ---- EEGAdapter ----
def test_adapter_shapes_and_norm():
    adapter = EEGAdapter(embed_dim=16, cross_attention_dim=24, n_adapt_tokens=3)
    z_adapt = adapter(torch.randn(5, 11, 16))
    assert z_adapt.shape == (5, 3, 24)
    # The LayerNorm (fresh affine) leaves every token at mean 0, std 1.
    torch.testing.assert_close(z_adapt.mean(-1), torch.zeros(5, 3), atol=1e-5, rtol=0)
    assert EEGAdapter(embed_dim=16)(torch.randn(2, 1, 16)).shape == (2, 4, 16)


def test_adapter_paper_size():
    # Linear(1024, 4 * 1024) + LayerNorm(1024): the method's 4.2M.
    assert count_parameters(EEGAdapter(1024)) == 1024 * 4096 + 4096 + 2 * 1024


@pytest.mark.parametrize("z, match", [
    (torch.randn(2, 16), "n_tokens >= 1"),
    (torch.randn(2, 5, 8), "embed_dim=16"),
    (torch.randn(2, 0, 16), "n_tokens >= 1"),
    ([[0.0] * 16], "torch.Tensor"),
])
def test_adapter_rejects_bad_input(z, match):
    with pytest.raises(ValueError, match=match):
        EEGAdapter(embed_dim=16)(z)


@pytest.mark.parametrize("kwargs", [dict(n_adapt_tokens=0), dict(embed_dim=2.5),
                                    dict(cross_attention_dim=-1)])
def test_adapter_rejects_bad_sizes(kwargs):
    with pytest.raises(ValueError, match="positive int"):
        EEGAdapter(**{"embed_dim": 16, **kwargs})


# ---- EEGAttnProcessor ----
def test_processor_formula_on_one_layer():
    """Output = stock(latent) + scale * stock-with-copied-k/v(adapter) through to_out."""
    torch.manual_seed(0)
    attn = Attention(query_dim=32, cross_attention_dim=16, heads=4, dim_head=8).eval()
    proc = EEGAttnProcessor(attn, n_adapt_tokens=N_ADAPT, scale=0.5)
    hidden, context = torch.randn(2, 9, 32), torch.randn(2, N_LATENT + N_ADAPT, 16)
    out = proc(attn, hidden, context)
    stock = AttnProcessor2_0()
    on_latent = stock(attn, hidden, context[:, :N_LATENT])
    on_adapt = stock(attn, hidden, context[:, N_LATENT:])
    # to_out is affine: its bias must be counted once.
    expected = on_latent + 0.5 * (on_adapt - attn.to_out[0].bias)
    torch.testing.assert_close(out, expected)


def test_install_only_touches_cross_attention():
    unet = _tiny_unet()
    n_before = sum(p.numel() for p in unet.parameters())
    procs = install_eeg_processors(unet)
    kinds = {name: type(p) for name, p in unet.attn_processors.items()}
    assert all((k is EEGAttnProcessor) == (".attn2." in name) for name, k in kinds.items())
    assert all(k is AttnProcessor2_0 for name, k in kinds.items() if ".attn1." in name)
    assert len(procs) == 4 and all(isinstance(p, EEGAttnProcessor) for p in procs.values())
    # The new k/v are U-Net parameters (the processors are submodules of attn2) ...
    ip_names = [n for n, _ in unet.named_parameters() if "_ip." in n]
    assert len(ip_names) == 8
    assert all(n.endswith((".attn2.processor.to_k_ip.weight", ".attn2.processor.to_v_ip.weight"))
               for n in ip_names)
    ip_numel = sum(p.numel() for p in procs.parameters())
    assert sum(p.numel() for p in unet.parameters()) == n_before + ip_numel
    # ... initialised as copies, not shared tensors.
    attn = unet.get_submodule("mid_block.attentions.0.transformer_blocks.0.attn2")
    torch.testing.assert_close(attn.processor.to_k_ip.weight, attn.to_k.weight, rtol=0, atol=0)
    assert attn.processor.to_v_ip.weight.data_ptr() != attn.to_v.weight.data_ptr()


def test_forward_shape():
    unet = _tiny_unet()
    install_eeg_processors(unet)
    sample, t, context = _inputs()
    with torch.no_grad():
        out = unet(sample, t, context).sample
    assert out.shape == sample.shape and torch.isfinite(out).all()


def test_scale_zero_is_the_stock_unet_on_latent_tokens():
    unet = _tiny_unet()
    stock = copy.deepcopy(unet)
    procs = install_eeg_processors(unet, scale=0.0)
    assert all(p.scale == 0.0 for p in procs.values())
    sample, t, context = _inputs()
    with torch.no_grad():
        out = unet(sample, t, context).sample
        ref = stock(sample, t, context[:, :N_LATENT]).sample
    torch.testing.assert_close(out, ref)


def test_adapter_tokens_change_output():
    unet = _tiny_unet()
    install_eeg_processors(unet, scale=1.0)
    sample, t, context = _inputs()
    other = context.clone()
    other[:, N_LATENT:] = torch.randn_like(other[:, N_LATENT:])
    with torch.no_grad():
        out, out_other = unet(sample, t, context).sample, unet(sample, t, other).sample
    assert (out - out_other).abs().max() > 1e-4


def test_mask_covers_whole_context():
    """Masking two latent tokens equals dropping them from the context."""
    unet = _tiny_unet()
    install_eeg_processors(unet)
    sample, t, context = _inputs()
    keep = torch.ones(2, N_LATENT + N_ADAPT)
    keep[:, [3, 5]] = 0
    dropped = context[:, [i for i in range(N_LATENT + N_ADAPT) if i not in (3, 5)]]
    with torch.no_grad():
        masked = unet(sample, t, context, encoder_attention_mask=keep).sample
        ref = unet(sample, t, dropped).sample
        torch.testing.assert_close(masked, ref, rtol=1e-5, atol=1e-5)
        with pytest.raises(ValueError, match="whole context"):
            unet(sample, t, context, encoder_attention_mask=keep[:, :N_LATENT])


def test_gradients_reach_new_key_values():
    unet = _tiny_unet().train()
    procs = install_eeg_processors(unet)
    adapter = EEGAdapter(embed_dim=CROSS_DIM)
    sample, t, context = _inputs()
    z_latent = context[:, :N_LATENT]
    full = torch.cat([z_latent, adapter(z_latent)], dim=1)
    unet(sample, t, full).sample.square().mean().backward()
    for proc in procs.values():
        for lin in (proc.to_k_ip, proc.to_v_ip):
            assert lin.weight.grad is not None and lin.weight.grad.abs().sum() > 0
    assert adapter.proj.weight.grad.abs().sum() > 0


def test_processor_errors():
    unet = _tiny_unet()
    install_eeg_processors(unet, n_adapt_tokens=N_ADAPT)
    sample, t, _ = _inputs()
    with pytest.raises(ValueError, match="n_adapt_tokens=4"):
        unet(sample, t, torch.randn(2, N_ADAPT, CROSS_DIM))
    attn2 = unet.get_submodule("mid_block.attentions.0.transformer_blocks.0.attn2")
    with pytest.raises(ValueError, match="needs encoder_hidden_states"):
        attn2.processor(attn2, torch.randn(1, 3, 64))
    attn1 = unet.get_submodule("mid_block.attentions.0.transformer_blocks.0.attn1")
    with pytest.raises(ValueError, match="cross-attention"):
        EEGAttnProcessor(attn1)
    with pytest.raises(ValueError, match="positive int"):
        EEGAttnProcessor(attn2, n_adapt_tokens=0)


# ---- recipes ----
def test_recipes_on_tiny_unet():
    unet = _tiny_unet()
    install_eeg_processors(unet)
    n_all = count_parameters(unet)
    counts = {recipe: count_recipe(unet, recipe) for recipe in RECIPES}
    assert 0 < counts["lean"] < counts["paper"] < n_all
    # count_recipe changes nothing.
    assert count_parameters(unet) == n_all
    # lean: 4 cross-attentions x (to_k, to_v, to_k_ip, to_v_ip), each width x 32, no bias.
    widths = [32, 64, 32, 32]  # down 0, mid, up 1 (two layers)
    assert counts["lean"] == sum(4 * w * CROSS_DIM for w in widths)
    for recipe in RECIPES:
        names = apply_recipe(unet, recipe)
        trainable = [n for n, p in unet.named_parameters() if p.requires_grad]
        assert names == trainable
        assert count_parameters(unet) == counts[recipe]
    names = apply_recipe(unet, "paper")
    assert any("time_embedding" in n for n in names)
    assert any("time_emb_proj" in n for n in names)
    assert any("resnets.0.norm2" in n for n in names)
    assert any("to_k_ip" in n for n in names)
    assert not any("conv_in" in n or "attn1" in n for n in names)
    assert not unet.conv_in.weight.requires_grad


def test_recipe_errors():
    unet = _tiny_unet()
    with pytest.raises(ValueError, match="install_eeg_processors"):
        apply_recipe(unet, "paper")
    install_eeg_processors(unet)
    with pytest.raises(ValueError, match=r"known recipes: \['lean', 'paper'\]"):
        count_recipe(unet, "everything")


def test_load_unet_config():
    sd21, sd15 = load_unet_config("sd21"), load_unet_config("sd15")
    assert sd21["cross_attention_dim"] == 1024 and sd15["cross_attention_dim"] == 768
    assert sd21["attention_head_dim"] == [5, 10, 20, 20] and sd15["attention_head_dim"] == 8
    assert sd21["use_linear_projection"] and sd21["upcast_attention"]
    assert (sd21["sample_size"], sd15["sample_size"]) == (96, 64)
    with pytest.raises(ValueError, match=r"known: \['sd15', 'sd21'\]"):
        load_unet_config("sdxl")


# ---- real architectures ----
def _analytic_counts(config):
    """Per-part parameter counts of the paper recipe, from the config alone."""
    ch, n, d = config["block_out_channels"], config["layers_per_block"], config[
        "cross_attention_dim"]
    t = 4 * ch[0]  # time-embedding width
    down = list(zip(ch, config["down_block_types"]))
    up = list(zip(ch[::-1], config["up_block_types"]))
    resnets = [c for c, _ in down for _ in range(n)] + [ch[-1]] * 2 + [
        c for c, _ in up for _ in range(n + 1)]
    xattn = [c for c, b in down if b.startswith("CrossAttn") for _ in range(n)] + [ch[-1]] + [
        c for c, b in up if b.startswith("CrossAttn") for _ in range(n + 1)]
    parts = {
        "attn2": sum(2 * c * c + 2 * d * c + c for c in xattn),  # q, k, v, out (+ bias)
        "new k/v": sum(2 * d * c for c in xattn),
        "time_emb_proj": sum(t * c + c for c in resnets),
        "time_embedding": ch[0] * t + t + t * t + t,
        "norm2": sum(2 * c for c in xattn + resnets),
    }
    lean = sum(4 * d * c for c in xattn)
    return parts, lean


@pytest.mark.parametrize("name", ["sd21", "sd15"])
def test_real_architecture_counts_and_forward(name):
    start = time.perf_counter()
    config = load_unet_config(name)
    torch.manual_seed(0)
    unet = UNet2DConditionModel.from_config(config).eval()
    n_stock = count_parameters(unet, trainable_only=False)
    install_eeg_processors(unet)
    parts, lean = _analytic_counts(config)
    counts = {recipe: count_recipe(unet, recipe) for recipe in RECIPES}
    adapter = count_parameters(EEGAdapter(config["cross_attention_dim"]))
    print(f"\n{name}: U-Net {n_stock / 1e6:.2f}M (+{parts['new k/v'] / 1e6:.2f}M new k/v); "
          f"paper {counts['paper'] / 1e6:.2f}M (+ adapter {adapter / 1e6:.2f}M), "
          f"lean {counts['lean'] / 1e6:.2f}M; analytic "
          + ", ".join(f"{k} {v / 1e6:.2f}M" for k, v in parts.items()))
    assert count_parameters(unet, trainable_only=False) == n_stock + parts["new k/v"]
    assert counts["paper"] == pytest.approx(sum(parts.values()), rel=0.15)
    assert counts["lean"] == pytest.approx(lean, rel=0.15)
    if name == "sd21":
        # The method's estimate: about 108M with the adapter.
        assert counts["paper"] + adapter == pytest.approx(108e6, rel=0.02)

    context = torch.randn(1, 77 + N_ADAPT, config["cross_attention_dim"])
    with torch.no_grad():
        out = unet(torch.randn(1, 4, 16, 16), 500, context).sample
    assert out.shape == (1, 4, 16, 16) and torch.isfinite(out).all()
    del unet, out
    gc.collect()
    print(f"{name}: built, counted and ran in {time.perf_counter() - start:.1f} s")
