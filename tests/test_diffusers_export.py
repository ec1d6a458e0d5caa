"""EEGImageGenerator.export_diffusers: a folder stock diffusers uses without mne-synapse."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from mne_synapse import SynapseEncoder
from mne_synapse.generator import EEGImageGenerator

from test_generator import FAST_ENCODER, _tiny_base  # noqa: E402

# The calls of the documented snippet, run where mne_synapse cannot be imported.
STOCK = """
import sys
sys.modules["mne_synapse"] = None  # stock diffusers only
import numpy as np, torch
from diffusers import StableDiffusionPipeline

folder, seed, steps, guidance, n_images = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \\
    float(sys.argv[4]), int(sys.argv[5])
torch.set_num_threads(1)
pipe = StableDiffusionPipeline.from_pretrained(
    folder, text_encoder=None, tokenizer=None, safety_checker=None,
    requires_safety_checker=False)
pipe.load_ip_adapter(folder, subfolder="", weight_name="ip_adapter.safetensors",
                     image_encoder_folder=None)
pipe.set_progress_bar_config(disable=True)
z = torch.as_tensor(np.load(folder + "/../z.npy"))
generator = torch.Generator().manual_seed(seed)
images = []
for z_i in z.split(1):
    pooled = z_i.mean(1)
    images.append(pipe(
        prompt_embeds=z_i, negative_prompt_embeds=torch.zeros_like(z_i),
        ip_adapter_image_embeds=[torch.cat([torch.zeros_like(pooled), pooled])[:, None]],
        generator=generator, num_images_per_prompt=n_images, num_inference_steps=steps,
        guidance_scale=guidance, output_type="np").images)
np.save(folder + "/../stock.npy", np.stack(images))
"""


@pytest.fixture(scope="module")
def fitted(small_synthetic):
    encoder = SynapseEncoder(random_state=0, verbose=False, **FAST_ENCODER).fit(
        small_synthetic.epochs)
    gen = EEGImageGenerator(encoder=encoder, base_model=_tiny_base(), max_steps=2, batch_size=4,
                            unconditional_context="zero_latent", random_state=0,
                            verbose=False).fit(small_synthetic.epochs)
    # Distinct new k/v per layer, so that numbering the layers in another order
    # than diffusers would change the images.
    torch.manual_seed(1)
    with torch.no_grad():
        for proc in gen.unet_.attn_processors.values():
            if hasattr(proc, "to_k_ip"):
                proc.to_k_ip.weight.add_(0.3 * torch.randn_like(proc.to_k_ip.weight))
                proc.to_v_ip.weight.add_(0.3 * torch.randn_like(proc.to_v_ip.weight))
    return gen, small_synthetic.epochs


def test_stock_diffusers_gives_the_images_of_generate(fitted, tmp_path):
    gen, epochs = fitted
    epochs = epochs[:3]
    folder = gen.export_diffusers(tmp_path / "export")
    np.save(tmp_path / "z.npy", gen.encoder_.latent(epochs))
    steps, guidance, n_images, seed = 3, 4.0, 2, 7
    subprocess.run([sys.executable, "-c", STOCK, str(folder), str(seed), str(steps),
                    str(guidance), str(n_images)], check=True, capture_output=True)
    stock = np.load(tmp_path / "stock.npy")  # (n_epochs, n_images, H, W, 3) floats in [0, 1]
    ours = gen.generate(epochs, n_images=n_images, num_inference_steps=steps,
                        guidance_scale=guidance, random_state=seed, output_type="np")
    assert stock.shape == ours.shape
    # generate() rounds to uint8: equal up to the rounding of float noise.
    np.testing.assert_allclose(ours, np.round(stock * 255), atol=1)
    assert np.mean(ours != np.round(stock * 255)) < 0.01
    # Before rounding: what generate() feeds its pipeline equals the stock floats.
    pipe = gen._get_pipeline()
    context, negative = gen._contexts(gen.encoder_.latent(epochs), torch)
    with torch.no_grad():
        floats = pipe(prompt_embeds=context, negative_prompt_embeds=negative,
                      num_images_per_prompt=n_images, num_inference_steps=steps,
                      guidance_scale=guidance, generator=torch.Generator().manual_seed(seed),
                      output_type="np").images
    np.testing.assert_allclose(floats.reshape(stock.shape), stock, atol=1e-4)


def test_folder_layout(fitted, tmp_path):
    from safetensors.torch import load_file

    gen, _ = fitted
    folder = gen.export_diffusers(tmp_path / "export")
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md", "ip_adapter.safetensors", "model_index.json", "scheduler", "unet", "vae"]
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    assert index["text_encoder"] == [None, None] and index["unet"][1] == "UNet2DConditionModel"
    assert json.loads((folder / "scheduler" / "scheduler_config.json").read_text())[
        "_class_name"] == gen.scheduler
    unet_weights = load_file(folder / "unet" / "diffusion_pytorch_model.safetensors")
    assert not any("processor" in k for k in unet_weights)  # stock attention processors
    trained = {k: v for k, v in gen.unet_.named_parameters()
               if v.requires_grad and ".processor." not in k}
    assert trained and all(torch.equal(unet_weights[k], v.detach()) for k, v in trained.items())
    ip = load_file(folder / "ip_adapter.safetensors")
    cross = [name for name in gen.unet_.attn_processors if name.endswith("attn2.processor")]
    expected = {f"image_proj.{p}.{w}" for p in ("proj", "norm") for w in ("weight", "bias")}
    expected |= {f"ip_adapter.{2 * i + 1}.to_{kv}_ip.weight"
                 for i in range(len(cross)) for kv in "kv"}
    assert set(ip) == expected and len(cross) == 4
    torch.testing.assert_close(ip["image_proj.proj.weight"], gen.adapter_.proj.weight)
    layer = gen.unet_.attn_processors[cross[2]]
    torch.testing.assert_close(ip["ip_adapter.5.to_v_ip.weight"], layer.to_v_ip.weight)
    readme = (folder / "README.md").read_text()
    assert "library_name: diffusers" in readme and "pipe.load_ip_adapter(folder" in readme
    assert "One epoch per call" in readme


def test_existing_target_refused_unless_overwrite(fitted, tmp_path):
    gen, _ = fitted
    target = tmp_path / "export"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="exists and is not empty; pass overwrite=True"):
        gen.export_diffusers(target)
    assert sorted(p.name for p in target.iterdir()) == ["keep.txt"]
    gen.export_diffusers(target, overwrite=True)
    assert not (target / "keep.txt").exists() and (target / "model_index.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]  # no temporaries left
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="is a file"):
        gen.export_diffusers(tmp_path / "file", overwrite=True)


def test_interrupted_export_leaves_nothing_half_written(fitted, tmp_path, monkeypatch):
    import safetensors.torch

    gen, _ = fitted
    target = tmp_path / "export"

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", crash)
    with pytest.raises(OSError, match="disk full"):
        gen.export_diffusers(target)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    gen.export_diffusers(target)
    before = sorted(str(p.relative_to(target)) for p in target.rglob("*"))
    monkeypatch.setattr(safetensors.torch, "save_file", crash)
    with pytest.raises(OSError, match="disk full"):
        gen.export_diffusers(target, overwrite=True)
    assert sorted(str(p.relative_to(target)) for p in target.rglob("*")) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]


def test_what_diffusers_cannot_compute_is_refused_before_writing(fitted, small_synthetic,
                                                                  tmp_path):
    from sklearn.exceptions import NotFittedError

    gen, _ = fitted
    with pytest.raises(NotFittedError):
        EEGImageGenerator().export_diffusers(tmp_path / "x")
    two = EEGImageGenerator(encoder=gen.encoder_, base_model=_tiny_base(), n_adapt_tokens=2,
                            max_steps=1, batch_size=2, random_state=0,
                            verbose=False).fit(small_synthetic.epochs[:4])
    with pytest.raises(ValueError, match="reads 4 adapter tokens.*n_adapt_tokens=2"):
        two.export_diffusers(tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_integer_seed_is_a_torch_generator_seed(fitted):
    gen, epochs = fitted
    kw = dict(num_inference_steps=2, output_type="np")
    a = gen.generate(epochs[:1], random_state=3, **kw)
    b = gen.generate(epochs[:1], random_state=np.int64(3), **kw)
    np.testing.assert_array_equal(a, b)
    c = gen.generate(epochs[:1], random_state=np.random.RandomState(3), **kw)
    assert c.shape == a.shape
