"""The miniature world's Stable Diffusion (shipped tiny VAE + UNet)."""

import json

import numpy as np
import pytest

from mne_synapse.datasets._drawing import class_table, draw_image, sample_image_params
from mne_synapse.miniature.tiny_sd import (
    SHIPPED_UNET,
    SHIPPED_VAE,
    build_tiny_sd,
    build_tiny_sd_pipeline,
    tiny_scheduler_config,
    tiny_unet_config,
    tiny_vae_config,
)
from mne_synapse.miniature.train_tiny_sd import caption_states, class_accuracy, to_images, to_pixels

torch = pytest.importorskip("torch")

# Measured with the shipped weights: PSNR of VAE reconstructions 28.5-29.3 dB on
# sets of 40 fresh stimuli; zero-shot class accuracy of generated images 1.00
# (5 seeds x 20 images, 12 DDIM steps, guidance 5; real stimuli: 0.93).
PSNR_MIN = 25.0
GEN_ACC_MIN = 0.7


@pytest.fixture(scope="module")
def tiny_sd():
    return build_tiny_sd("synthetic")


def _stimuli(n_per_class, seed):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(10), n_per_class)
    return np.stack([draw_image(sample_image_params(k, 10, rng)) for k in labels]), labels


def test_shipped_weights_load_with_their_configs(tiny_sd):
    vae, unet, scheduler = tiny_sd
    for key, value in json.loads(json.dumps(tiny_vae_config())).items():
        assert json.loads(json.dumps(vae.config[key])) == value, key
    for key, value in json.loads(json.dumps(tiny_unet_config())).items():
        assert json.loads(json.dumps(unet.config[key])) == value, key
    assert 0.05 < vae.config.scaling_factor < 20 and vae.config.scaling_factor != 0.18215
    assert scheduler.config.prediction_type == "v_prediction"
    assert scheduler.config.beta_schedule == tiny_scheduler_config()["beta_schedule"]
    n_vae = sum(p.numel() for p in vae.parameters())
    n_unet = sum(p.numel() for p in unet.parameters())
    assert n_vae + n_unet < 6e6
    # Stage 2 finetunes the cross-attention: the UNet must have attn2 layers.
    assert sum(p.numel() for n, p in unet.named_parameters() if "attn2" in n) > 0
    # Weights differ from a random initialisation; float16 on disk keeps files small.
    random_unet = build_tiny_sd(None)[1]
    assert not torch.allclose(unet.conv_in.weight, random_unet.conv_in.weight)
    assert SHIPPED_VAE.stat().st_size < 3e6 and SHIPPED_UNET.stat().st_size < 12e6


def test_missing_and_foreign_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m mne_synapse.miniature.train_tiny_sd"):
        build_tiny_sd(tmp_path)
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, tmp_path / "tiny_vae.safetensors",
              metadata={"config": json.dumps({"block_out_channels": [8]})})
    with pytest.raises(ValueError, match="another architecture"):
        build_tiny_sd((tmp_path / "tiny_vae.safetensors", SHIPPED_UNET))


def test_vae_reconstructs_fresh_stimuli(tiny_sd):
    vae = tiny_sd[0]
    images, _ = _stimuli(4, seed=7)
    with torch.no_grad():
        posterior = vae.encode(to_pixels(images)).latent_dist
        recon = to_images(vae.decode(posterior.mean).sample)
        latents = posterior.mean * vae.config.scaling_factor
    assert latents.shape == (40, 4, 8, 8)
    assert 0.5 < float(latents.std()) < 2.0  # scaling_factor makes latents about unit scale
    mse = np.mean((recon / 255.0 - images / 255.0) ** 2)
    assert 10 * np.log10(1 / mse) > PSNR_MIN, mse


def test_pipeline_generates_the_prompted_class(tiny_sd):
    vae, unet, scheduler = tiny_sd
    prompts = [f"a {colour} {shape} at the centre on a dark background"
               for shape, colour, _ in class_table(10)]
    labels = np.repeat(np.arange(10), 2)
    embeds = torch.as_tensor(caption_states(prompts)).float()[labels]
    assert embeds.shape == (20, 24, 64)
    pipe = build_tiny_sd_pipeline(vae, unet, scheduler)
    kwargs = dict(height=32, width=32, num_inference_steps=12, output_type="np")
    images = pipe(prompt_embeds=embeds, negative_prompt_embeds=torch.zeros_like(embeds),
                  guidance_scale=5.0, generator=torch.Generator().manual_seed(0), **kwargs).images
    assert images.shape == (20, 32, 32, 3)
    images = np.round(images * 255).astype(np.uint8)
    accuracy = class_accuracy(images, labels)
    assert accuracy >= GEN_ACC_MIN, accuracy  # chance 0.1
    # The zero (unconditional) context gives other images from the same noise.
    uncond = pipe(prompt_embeds=torch.zeros_like(embeds[:4]), guidance_scale=1.0,
                  generator=torch.Generator().manual_seed(0), **kwargs).images
    assert np.abs(np.round(uncond * 255) - images[:4]).mean() > 10  # 47 measured


def test_training_programs_run_as_modules():
    import subprocess
    import sys

    for module in ("mne_synapse.miniature.train_tiny_sd", "mne_synapse.miniature.train_tiny_clip"):
        out = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True,
                             text=True)
        assert out.returncode == 0 and "--output" in out.stdout
    assert SHIPPED_VAE.is_file() and SHIPPED_UNET.is_file()
    assert SHIPPED_VAE.parent.name == "weights" and SHIPPED_VAE.parent.parent.name == "miniature"


def _changed(trained, other):
    """Parameter tensors of ``trained`` (loaded from float16) that differ from ``other``'s."""
    theirs = other.state_dict()
    return [name for name, value in trained.state_dict().items()
            if not torch.equal(value, theirs[name].half().float())]


def test_train_tiny_sd_writes_a_model_that_loads_and_samples(tmp_path, capsys):
    """The program that makes the shipped weights, at its smallest settings (seconds)."""
    from mne_synapse.miniature.train_tiny_sd import main

    main(["--vae-steps", "2", "--unet-steps", "2", "--n-images", "16", "--no-eval",
          "--output", str(tmp_path)])
    assert "class accuracy" not in capsys.readouterr().out  # --no-eval skips the check
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([SHIPPED_UNET.name,
                                                                 SHIPPED_VAE.name])
    vae, unet, scheduler = build_tiny_sd(tmp_path)  # the package's own loader
    start_vae, start_unet, _ = build_tiny_sd(None, seed=0)  # where training starts
    shipped_vae, shipped_unet, _ = build_tiny_sd("synthetic")
    for trained, start, shipped in ((vae, start_vae, shipped_vae),
                                    (unet, start_unet, shipped_unet)):
        n_params = len(trained.state_dict())
        assert len(_changed(trained, start)) > n_params / 2  # two AdamW steps moved them
        assert len(_changed(trained, shipped)) > n_params / 2
    assert vae.config.scaling_factor != start_vae.config.scaling_factor  # set from its latents
    embeds = torch.as_tensor(caption_states(["a red circle at the centre"])).float()
    images = build_tiny_sd_pipeline(vae, unet, scheduler)(
        prompt_embeds=embeds, negative_prompt_embeds=torch.zeros_like(embeds),
        num_inference_steps=2, height=32, width=32, output_type="np",
        generator=torch.Generator().manual_seed(0)).images
    assert images.shape == (1, 32, 32, 3) and np.isfinite(images).all()


def test_train_tiny_clip_writes_a_model_that_loads_and_embeds(tmp_path):
    """The program that makes the shipped tiny CLIP, at its smallest settings (seconds)."""
    from mne_synapse.clip import CLIPEmbedder
    from mne_synapse.miniature.tiny_clip import SHIPPED_WEIGHTS, build_tiny_clip
    from mne_synapse.miniature.train_tiny_clip import main

    main(["--steps", "2", "--n-images", "32", "--output", str(tmp_path)])
    fname = tmp_path / SHIPPED_WEIGHTS.name
    assert [p.name for p in tmp_path.iterdir()] == [fname.name]
    trained, _ = build_tiny_clip(fname)
    start, _ = build_tiny_clip(None, seed=0)
    shipped, _ = build_tiny_clip("synthetic")
    n_params = len(trained.state_dict())
    assert len(_changed(trained, start)) > n_params / 2
    assert len(_changed(trained, shipped)) > n_params / 2
    clip = CLIPEmbedder("tiny", fname)  # the package's own loader
    images = np.stack([draw_image(sample_image_params(k, 10, np.random.default_rng(k)))
                       for k in range(3)])
    embeddings = clip.embed_images(list(images))
    assert embeddings.shape == (3, 64) and np.isfinite(embeddings).all()
    assert clip.embed_caption_tokens(["a red circle"]).shape == (1, 24, 64)
    with pytest.raises(SystemExit):  # --output is a folder, as for train_tiny_sd
        main(["--steps", "1", "--output", str(fname)])


@pytest.mark.parametrize("old, new", [("tiny_sd", "miniature.tiny_sd"),
                                      ("tiny_clip", "miniature.tiny_clip")])
def test_old_paths_warn_and_still_work(old, new):
    import importlib
    import sys

    sys.modules.pop(f"mne_synapse.{old}", None)
    with pytest.warns(FutureWarning, match=f"mne_synapse.{new}"):
        module = importlib.import_module(f"mne_synapse.{old}")
    builder = "build_tiny_sd" if old == "tiny_sd" else "build_tiny_clip"
    assert getattr(module, builder) is getattr(importlib.import_module(f"mne_synapse.{new}"),
                                               builder)
