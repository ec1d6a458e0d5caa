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
        seed = int(np.random.RandomState(0).randint(2**31 - 1))
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
