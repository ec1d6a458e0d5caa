"""Stage-2 options that follow the authors' code: the unconditional context, their training."""

import numpy as np
import pytest
import torch

from mne_synapse import SynapseEncoder
from mne_synapse._finetuning import eeg_context
from mne_synapse.generator import EEGImageGenerator
from mne_synapse.models import EEGAdapter

from test_generator import FAST_ENCODER, _tiny_base  # noqa: E402


@pytest.fixture(scope="module")
def encoder(small_synthetic):
    return SynapseEncoder(random_state=0, verbose=False, **FAST_ENCODER).fit(small_synthetic.epochs)


def _adapter():
    torch.manual_seed(0)
    adapter = EEGAdapter(8, 8, 2)
    with torch.no_grad():  # a bias, so that f_adapt(0) is not zero
        adapter.proj.bias.normal_()
    return adapter


def test_eeg_context_unconditional_rows():
    adapter = _adapter()
    z = torch.randn(3, 5, 8)
    drop = torch.tensor([False, True, False])
    full = eeg_context(adapter, z)
    assert full.shape == (3, 7, 8)
    for mode in ("zeros", "zero_latent"):
        ctx = eeg_context(adapter, z, mode, drop)
        torch.testing.assert_close(ctx[~drop], full[~drop])
    # Today's: every token of a dropped row is zero.
    assert torch.all(eeg_context(adapter, z, "zeros", drop)[1] == 0)
    # The authors': Z_latent zeroed before the adapter, so [0, f_adapt(0)].
    ctx = eeg_context(adapter, z, "zero_latent", drop)[1]
    assert torch.all(ctx[:5] == 0)
    expected = adapter(torch.zeros(1, 5, 8))[0]
    torch.testing.assert_close(ctx[5:], expected)
    assert expected.abs().sum() > 0
    with pytest.raises(ValueError, match="unconditional_context must be"):
        eeg_context(adapter, z, "none", drop)


def test_generate_uses_the_unconditional_context(encoder, small_synthetic):
    """generate() equals a stock pipeline given [0, f_adapt(0)] (or zeros) as the negative."""
    gen = EEGImageGenerator(encoder=encoder, base_model=_tiny_base(), max_steps=2,
                            batch_size=4, unconditional_context="zero_latent", random_state=0,
                            verbose=False).fit(small_synthetic.epochs)
    epochs = small_synthetic.epochs[:2]
    kw = dict(num_inference_steps=3, random_state=0, output_type="np")
    ours = gen.generate(epochs, **kw)
    z = torch.as_tensor(encoder.latent(epochs))
    with torch.no_grad():
        context = torch.cat([z, gen.adapter_(z)], dim=1)
        zero = torch.zeros_like(z)
        negative = torch.cat([zero, gen.adapter_(zero)], dim=1)
        seed = 0  # generate(random_state=s) draws from torch.Generator().manual_seed(s)
        stock = gen._get_pipeline()(
            prompt_embeds=context, negative_prompt_embeds=negative, num_inference_steps=3,
            guidance_scale=gen.guidance_scale, height=16, width=16,
            generator=torch.Generator().manual_seed(seed), output_type="np").images
    np.testing.assert_array_equal(ours[:, 0], np.round(stock * 255).astype(np.uint8))
    # The other option changes the negative branch, hence the images.
    gen.set_params(unconditional_context="zeros")
    assert not np.array_equal(gen.generate(epochs, **kw), ours)


def test_condition_dropout_follows_the_option(encoder, small_synthetic):
    """Same seed, same batches: only the dropped rows' context differs."""
    curves = {}
    for mode in ("zeros", "zero_latent"):
        for p in (0.0, 0.5):
            gen = EEGImageGenerator(encoder=encoder, base_model=_tiny_base(), max_steps=2,
                                    batch_size=4, condition_dropout=p, unconditional_context=mode,
                                    random_state=0, verbose=False).fit(small_synthetic.epochs[:8])
            curves[mode, p] = gen.loss_curve_
    assert curves["zeros", 0.0] == curves["zero_latent", 0.0]
    assert curves["zeros", 0.5][0] != curves["zero_latent", 0.5][0]
    with pytest.raises(ValueError, match="unconditional_context"):
        EEGImageGenerator(encoder=encoder, base_model=_tiny_base(),
                          unconditional_context="empty").fit(small_synthetic.epochs[:4])


def _fit(encoder, epochs, **kw):
    params = dict(encoder=encoder, base_model=_tiny_base(), max_steps=2, batch_size=4,
                  random_state=0, verbose=False)
    return EEGImageGenerator(**{**params, **kw}).fit(epochs)


def _trained(gen):
    return {k: v.detach().clone() for k, v in gen._trained_state().items()}


def test_vae_sampling_draws_from_the_posterior(encoder, small_synthetic):
    from mne_synapse._finetuning import encode_images

    base = _tiny_base()
    images = list(np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8))
    mean, none = encode_images(images, base.vae, 16)
    mean2, std = encode_images(images, base.vae, 16, sample=True)
    assert none is None and mean.shape == std.shape == (3, 4, 8, 8)
    torch.testing.assert_close(mean, mean2)
    dist = base.vae.encode(torch.as_tensor(
        np.stack([np.asarray(im) for im in images])).permute(0, 3, 1, 2).float() / 127.5 - 1
    ).latent_dist
    torch.testing.assert_close(std, dist.std * base.vae.config.scaling_factor)
    epochs = small_synthetic.epochs[:8]
    mean_fit = _fit(encoder, epochs)
    assert _fit(encoder, epochs).loss_curve_ == mean_fit.loss_curve_
    sampled = _fit(encoder, epochs, vae_sampling="sample")
    assert sampled.loss_curve_ != mean_fit.loss_curve_
    with pytest.raises(ValueError, match="vae_sampling must be 'mean' or 'sample'"):
        _fit(encoder, epochs, vae_sampling="mode")


def test_encoder_dropout_runs_the_frozen_encoder_in_train_mode(encoder, small_synthetic):
    from mne_synapse._finetuning import EEGLatents

    epochs = small_synthetic.epochs[:8]
    before = encoder.latent(epochs)
    fixed = EEGLatents(encoder, epochs)
    live = EEGLatents(encoder, epochs, dropout=True)
    assert (fixed.n, fixed.embed_dim) == (live.n, live.embed_dim) == (8, before.shape[-1])
    idx = torch.tensor([3, 0, 3])
    np.testing.assert_allclose(fixed(idx, "cpu").numpy(), before[[3, 0, 3]], rtol=1e-6)
    torch.manual_seed(0)
    first = live(idx, "cpu")
    assert first.shape == (3, *before.shape[1:])
    # Dropout: the same epoch twice in a batch, and again later, gets other latents.
    assert not torch.allclose(first[0], first[2])
    assert not torch.allclose(live(idx, "cpu"), first)
    # A copy ran in train mode; the encoder itself is untouched.
    assert not encoder.net_.module_.training
    np.testing.assert_array_equal(encoder.latent(epochs), before)
    plain = _fit(encoder, epochs)
    dropped = _fit(encoder, epochs, encoder_dropout=True)
    assert dropped.loss_curve_ != plain.loss_curve_
    # Generation uses the encoder in eval mode: deterministic.
    kw = dict(num_inference_steps=2, random_state=0, output_type="np")
    np.testing.assert_array_equal(dropped.generate(epochs[:2], **kw),
                                  dropped.generate(epochs[:2], **kw))


def test_ema_averages_the_trained_weights_without_changing_training(encoder, small_synthetic):
    epochs = small_synthetic.epochs[:8]
    plain = _fit(encoder, epochs, max_steps=3)
    ema = _fit(encoder, epochs, max_steps=3, ema_decay=0.9999)
    assert ema.loss_curve_ == plain.loss_curve_
    a, b = _trained(plain), _trained(ema)
    assert a.keys() == b.keys()
    # Both the U-Net recipe and the adapter are averaged.
    for prefix in ("unet.", "adapter."):
        assert any(not torch.equal(a[k], b[k]) for k in a if k.startswith(prefix))


def test_paper_configuration_is_documented_value_by_value():
    from pathlib import Path

    from mne_synapse import PAPER_STAGE2
    from mne_synapse._paper import GENERATE_SOURCES, STAGE2_SOURCES
    from mne_synapse.cli._config import read_config

    gen = EEGImageGenerator.paper(lr=1e-4)
    assert gen.get_params()["lr"] == 1e-4
    params = EEGImageGenerator.paper().get_params()
    assert {k: params[k] for k in PAPER_STAGE2} == PAPER_STAGE2
    EEGImageGenerator.paper()._validate_params()
    assert PAPER_STAGE2["unconditional_context"] == "zero_latent"
    assert (PAPER_STAGE2["batch_size"], PAPER_STAGE2["grad_accumulation"]) == (8, 4)
    # Each value names the file of the authors' code it comes from.
    for value, source in [*STAGE2_SOURCES.values(), *GENERATE_SOURCES.values()]:
        assert source.startswith("src/") and ".py" in source or ".json" in source
    method = (Path(__file__).parents[1] / "doc" / "method.rst").read_text()
    for name, (value, source) in STAGE2_SOURCES.items():
        assert f'   ``{name}``, ``{value!r}``, "{source}"' in method, name
    for name, (value, source) in GENERATE_SOURCES.items():
        assert f'   ``{name}`` (of ``generate``), ``{value!r}``, "{source}"' in method, name
    config = read_config("paper")
    assert config["generator"] == PAPER_STAGE2 and config["generate"] == {"n_images": 5}
