"""EEGImageGenerator on a random tiny Stable Diffusion built from config (fast)."""

import numpy as np
import pytest
from types import SimpleNamespace

from mne_synapse import SynapseEncoder
from mne_synapse.generator import EEGImageGenerator

FAST_ENCODER = dict(max_epochs=1, batch_size=16, module_kwargs=dict(widths=(16, 32), n_heads=2))


def _tiny_base(cross_attention_dim=64):
    import torch
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(16, 32), layers_per_block=1, sample_size=8,
        cross_attention_dim=cross_attention_dim, attention_head_dim=8,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), norm_num_groups=8,
    )
    vae = AutoencoderKL(block_out_channels=(8, 16), norm_num_groups=8, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2)
    scheduler = DDPMScheduler(prediction_type="v_prediction", clip_sample=False)
    return SimpleNamespace(vae=vae, unet=unet, scheduler=scheduler)


@pytest.fixture(scope="module")
def encoder(small_synthetic):
    return SynapseEncoder(random_state=0, verbose=False, **FAST_ENCODER).fit(small_synthetic.epochs)


@pytest.fixture(scope="module")
def fitted(encoder, small_synthetic):
    base = _tiny_base()
    gen = EEGImageGenerator(encoder=encoder, base_model=base, max_steps=4, batch_size=4,
                            random_state=0, verbose=False)
    return gen.fit(small_synthetic.epochs), base


def test_fit_reports_trainable_parameters(fitted):
    gen, base = fitted
    n_unet = sum(p.numel() for p in base.unet.parameters())
    assert 0 < gen.n_trainable_params_ < n_unet
    assert gen.trainable_fraction_ == pytest.approx(gen.n_trainable_params_ / n_unet)
    trainable = [n for n, p in gen.unet_.named_parameters() if p.requires_grad]
    assert trainable and all(("attn2" in n) or ("time" in n) or ("norm2" in n) for n in trainable)
    assert len(gen.loss_curve_) == 4 and np.all(np.isfinite(gen.loss_curve_))
    # The base model given in memory is copied, never modified.
    assert not any("to_k_ip" in n for n, _ in base.unet.named_parameters())


def test_lean_recipe_trains_fewer_weights(encoder, small_synthetic, fitted):
    lean = EEGImageGenerator(encoder=encoder, base_model=_tiny_base(), recipe="lean",
                             max_steps=1, batch_size=2, random_state=0, verbose=False)
    lean.fit(small_synthetic.epochs[:8])
    assert lean.n_trainable_params_ < fitted[0].n_trainable_params_


def test_generate_shapes_types_and_determinism(fitted, small_synthetic):
    gen, _ = fitted
    epochs = small_synthetic.epochs[:3]
    images = gen.generate(epochs, n_images=2, num_inference_steps=3, random_state=1,
                          output_type="np")
    assert images.shape == (3, 2, 16, 16, 3) and images.dtype == np.uint8
    again = gen.generate(epochs, n_images=2, num_inference_steps=3, random_state=1,
                         output_type="np")
    np.testing.assert_array_equal(images, again)
    other = gen.generate(epochs, n_images=2, num_inference_steps=3, random_state=2,
                         output_type="np")
    assert not np.array_equal(images, other)
    pil = gen.generate(epochs[:1], n_images=2, num_inference_steps=2, batch_size=1)
    assert len(pil) == 1 and len(pil[0]) == 2 and pil[0][0].size == (16, 16)


def test_save_load_round_trip(fitted, small_synthetic, tmp_path):
    gen, base = fitted
    epochs = small_synthetic.epochs[:2]
    expected = gen.generate(epochs, num_inference_steps=3, random_state=0, output_type="np")
    gen.save(tmp_path / "gen")
    with pytest.raises(ValueError, match="in-memory"):
        EEGImageGenerator.load(tmp_path / "gen")
    loaded = EEGImageGenerator.load(tmp_path / "gen", base_model=base)
    np.testing.assert_array_equal(
        loaded.generate(epochs, num_inference_steps=3, random_state=0, output_type="np"),
        expected)
    assert loaded.n_trainable_params_ == gen.n_trainable_params_
    weights = tmp_path / "gen" / "generator.safetensors"
    weights.write_bytes(weights.read_bytes()[:-5])
    with pytest.raises(ValueError, match="hash"):
        EEGImageGenerator.load(tmp_path / "gen", base_model=base)


def test_bad_inputs(fitted, encoder, small_synthetic):
    from sklearn.exceptions import NotFittedError

    gen, _ = fitted
    with pytest.raises(ValueError, match="n_images"):
        gen.generate(small_synthetic.epochs[:1], n_images=0)
    with pytest.raises(NotFittedError):
        EEGImageGenerator().generate(small_synthetic.epochs[:1])
    with pytest.raises(ValueError, match="cross-attention expects 32"):
        EEGImageGenerator(encoder=encoder, base_model=_tiny_base(32), max_steps=1).fit(
            small_synthetic.epochs[:4])
    with pytest.raises(ValueError, match="recipe"):
        EEGImageGenerator(encoder=encoder, recipe="all").fit(small_synthetic.epochs[:4])
    with pytest.raises(ValueError, match="channels"):
        gen.generate(small_synthetic.epochs.get_data()[:1, :10])


def test_missing_base_model_fails_fast(encoder, small_synthetic, tmp_path):
    with pytest.raises(FileNotFoundError, match="hf download"):
        EEGImageGenerator(encoder=encoder, base_model=str(tmp_path / "no-sd"),
                          max_steps=1).fit(small_synthetic.epochs[:4])


def test_resolution_trains_samples_and_is_saved(encoder, small_synthetic, tmp_path):
    # The tiny base's own size is 16 px (U-Net sample_size 8 x VAE factor 2).
    epochs = small_synthetic.epochs[:4]
    base = _tiny_base()
    gen = EEGImageGenerator(encoder=encoder, base_model=base, resolution=24, max_steps=1,
                            batch_size=2, random_state=0, verbose=False).fit(epochs)
    assert gen.image_size_ == 24
    images = gen.generate(epochs[:1], num_inference_steps=2, random_state=0, output_type="np")
    assert images.shape == (1, 1, 24, 24, 3)
    gen.save(tmp_path / "gen")
    loaded = EEGImageGenerator.load(tmp_path / "gen", base_model=base)
    assert loaded.resolution == 24 and loaded.image_size_ == 24
    np.testing.assert_array_equal(
        loaded.generate(epochs[:1], num_inference_steps=2, random_state=0, output_type="np"),
        images)


@pytest.mark.parametrize("resolution, match", [
    (18, "not a multiple of 4"), (0, "resolution must be"), (True, "resolution must be"),
    (32.0, "resolution must be"),
])
def test_bad_resolution(encoder, small_synthetic, resolution, match):
    gen = EEGImageGenerator(encoder=encoder, base_model=_tiny_base(), resolution=resolution,
                            max_steps=1, batch_size=2)
    with pytest.raises(ValueError, match=match):
        gen.fit(small_synthetic.epochs[:4])


def test_mixed_precision_fit_samples_like_its_saved_copy(encoder, small_synthetic, tmp_path):
    """After a bf16 fit the generator samples in float32, exactly as it does once saved
    and loaded (accelerate's autocast wrapper is not kept on the fitted U-Net). A fit
    in float32 first: one session may fit in several precisions (accelerate keeps one
    process-wide state that refuses a change)."""
    from mne_synapse.generator import EEGImageGenerator as Generator

    base = _tiny_base()
    Generator(encoder=encoder, base_model=base, max_steps=1, batch_size=2,
              verbose=False).fit(small_synthetic.epochs[:4])
    gen = Generator(encoder=encoder, base_model=base, max_steps=2, batch_size=4,
                    mixed_precision="bf16", random_state=0, verbose=False)
    epochs = small_synthetic.epochs[:3]
    gen.fit(small_synthetic.epochs[:8])
    fitted_images = gen.generate(epochs, num_inference_steps=2, random_state=0,
                                 output_type="np")
    gen.save(tmp_path / "gen")
    loaded = Generator.load(tmp_path / "gen", base_model=base)
    np.testing.assert_array_equal(
        loaded.generate(epochs, num_inference_steps=2, random_state=0, output_type="np"),
        fitted_images)
