"""SynapseEncoder with the authors' network: preset='paper', from_official, saved folders.

Their files are written here from our reimplementation with random weights,
under their exact key names and shapes (see ``test_official_autoencoder.py``),
then read back through the estimator.
"""

import json
import re

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError

from mne_synapse import SynapseEncoder
from mne_synapse.generator import EEGImageGenerator
from mne_synapse.models import OfficialAutoencoder, build_autoencoder, count_parameters
from test_generator import _tiny_base

# The authors' architecture at the miniature world's sizes (64 samples, tiny CLIP).
SMALL_PAPER = dict(preset="paper", max_epochs=2, batch_size=16, random_state=0, verbose=False,
                   module_kwargs=dict(n_times=64, widths=(32, 32, 32, 64, 64), n_layer=1,
                                      n_head=4, n_tokens=24, embed_dim=64, mlp_width=32))


def _randomised(module, seed=0):
    """Every parameter random, so a mix-up of any two shows in the outputs."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            param.copy_(torch.randn(param.shape, generator=gen) * 0.05)
    return module.eval()


@pytest.fixture(scope="module")
def official():
    return _randomised(OfficialAutoencoder())


@pytest.fixture(scope="module")
def eeg():
    return np.random.default_rng(0).standard_normal((3, 128, 440)).astype(np.float32)


@pytest.fixture(scope="module")
def files(official, tmp_path_factory):
    """Their released encoder file and their trainer's checkpoint (DDP prefixes, optimiser)."""
    folder = tmp_path_factory.mktemp("official")
    encoder_file = folder / "EEGEncoder_BLIP2_69000.pth"
    torch.save({"net": official.Encoder.state_dict()}, encoder_file)
    checkpoint = folder / "EEG_condition_69000.pth"
    torch.save({"net": {f"module.{k}": v for k, v in official.state_dict().items()},
                "optim": {"state": {}, "param_groups": [{"lr": 1e-4, "params": []}]}},
               checkpoint)
    return dict(encoder=encoder_file, checkpoint=checkpoint)


def _theirs(official, eeg):
    with torch.no_grad():
        z, x_hat = official(torch.as_tensor(eeg))
    return z.numpy(), x_hat.numpy()


def test_paper_preset_is_the_authors_network():
    module = build_autoencoder("paper")
    assert type(module) is OfficialAutoencoder
    assert count_parameters(module.Encoder) == 27_590_878
    assert count_parameters(module) == 49_459_914
    est = SynapseEncoder(preset="paper")
    assert est.get_params()["preset"] == "paper"
    paper = SynapseEncoder.paper(max_epochs=3)
    assert (paper.preset, paper.clip_model, paper.text_layer, paper.cosine_axis) == (
        "paper", "ViT-H-14", "last", "tokens")
    assert (paper.lr, paper.batch_size, paper.max_epochs, paper.alignment) == (1e-4, 32, 3, None)
    assert not paper.learn_temperature


def test_paper_configuration_is_documented_value_by_value():
    from pathlib import Path

    from mne_synapse import PAPER_STAGE1
    from mne_synapse._paper import STAGE1_SOURCES

    params = SynapseEncoder.paper().get_params()
    assert {k: params[k] for k in PAPER_STAGE1} == PAPER_STAGE1
    SynapseEncoder.paper()._validate_params()
    method = (Path(__file__).parents[1] / "doc" / "method.rst").read_text()
    for name, (value, source) in STAGE1_SOURCES.items():
        assert source.startswith("src/") and (".py" in source or ".json" in source), name
        assert f'   ``{name}``, ``{value!r}``, "{source}"' in method, name


def test_from_official_encoder_file(official, files, eeg):
    enc = SynapseEncoder.from_official(files["encoder"])
    z, _ = _theirs(official, eeg)
    np.testing.assert_allclose(enc.latent(eeg), z, rtol=0, atol=1e-6)
    assert enc.latent(eeg).shape == (3, 77, 1024)
    np.testing.assert_allclose(enc.transform(eeg), z.mean(axis=1), rtol=0, atol=1e-6)
    assert (enc.preset, enc.alignment, enc.recon_weight) == ("paper", None, 0.0)
    assert enc.module_kwargs == dict(n_layer=2, n_head=64, decoder=False)
    with pytest.raises(ValueError, match="no decoder.*trainer's checkpoint"):
        enc.reconstruct(eeg)


def test_from_official_checkpoint_reconstructs_and_saves(official, files, eeg, tmp_path):
    enc = SynapseEncoder.from_official(files["checkpoint"], output="tokens")
    z, x_hat = _theirs(official, eeg)
    np.testing.assert_allclose(enc.transform(eeg), z, rtol=0, atol=1e-6)
    np.testing.assert_allclose(enc.reconstruct(eeg), x_hat, rtol=0, atol=1e-5)
    enc.save(tmp_path / "enc")
    config = json.loads((tmp_path / "enc" / "config.json").read_text())
    assert config["architecture"] == "OfficialAutoencoder" and config["format_version"] == 2
    loaded = SynapseEncoder.load(tmp_path / "enc")
    np.testing.assert_array_equal(loaded.latent(eeg), enc.latent(eeg))
    np.testing.assert_array_equal(loaded.reconstruct(eeg), enc.reconstruct(eeg))
    # Its decoder-less sibling saves and loads too.
    SynapseEncoder.from_official(files["encoder"]).save(tmp_path / "enc_only")
    assert SynapseEncoder.load(tmp_path / "enc_only").net_.module_.Decoder is None


def test_from_official_names_every_mismatched_key(official, tmp_path):
    state = dict(official.Encoder.state_dict())
    state["main_flow.2.1.norm_1.weight"] = state.pop("main_flow.2.1.norm1.weight")
    del state["downs.2.proj.linear.weight"]
    state["posEmbed.1"] = state["posEmbed.1"][..., :63]
    fname = tmp_path / "changed.pth"
    torch.save({"net": state}, fname)
    with pytest.raises(ValueError, match="does not match the network") as info:
        SynapseEncoder.from_official(fname)
    for pattern in (r"missing keys \(2\): downs\.2\.proj\.linear\.weight, "
                    r"main_flow\.2\.1\.norm1\.weight",
                    r"unexpected keys \(1\): main_flow\.2\.1\.norm_1\.weight",
                    r"mis-shaped key posEmbed\.1: expected \(1, 128, 64\), found \(1, 128, 63\)"):
        assert re.search(pattern, str(info.value)), str(info.value)[:600]


class _Settings:
    """A Python object in a checkpoint: weights_only loading refuses it."""


def test_bad_inputs_fail_clearly(files, eeg, tmp_path):
    enc = SynapseEncoder.from_official(files["encoder"])
    for bad in (eeg[:, :64], eeg[..., :400]):
        with pytest.raises(ValueError, match=r"128 electrodes x 440 samples.*CVPR40 montage"
                                             r".*20:460.*epochs\.crop"):
            enc.transform(bad)
    with pytest.raises(ValueError, match=r"got 440 x 128"):
        enc.transform(eeg.transpose(0, 2, 1))
    with pytest.raises(NotFittedError):
        SynapseEncoder(preset="paper").transform(eeg)
    torch.save({"net": torch.nn.Linear(2, 3).state_dict()}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="does not hold the authors' Stage-1"):
        SynapseEncoder.from_official(tmp_path / "other.pth")
    torch.save({"net": {}, "settings": _Settings()}, tmp_path / "pickled.pth")
    with pytest.raises(ValueError, match="refused for safety"):
        SynapseEncoder.from_official(tmp_path / "pickled.pth")
    with pytest.raises(ValueError, match="alignment must be None"):
        SynapseEncoder.from_official(files["encoder"], alignment="euclidean")


def test_paper_preset_checks_data_and_targets(small_synthetic):
    epochs = small_synthetic.epochs[:8]  # 128 channels x 64 samples
    with pytest.raises(ValueError, match=r"128 electrodes x 440 samples, got 128 x 64.*crop"
                                         r".*module_kwargs=\{'n_chans'"):
        SynapseEncoder(preset="paper").fit(epochs)
    with pytest.raises(ValueError, match=r"latent of 77 x 1024 .* gives 24 x 64.*ViT-H-14"):
        SynapseEncoder(preset="paper", module_kwargs=dict(n_times=64)).fit(epochs)
    with pytest.raises(ValueError, match="set recon_weight=0"):
        SynapseEncoder(**dict(SMALL_PAPER, module_kwargs=dict(
            SMALL_PAPER["module_kwargs"], decoder=False))).fit(epochs)


def test_paper_architecture_trains_saves_and_conditions_a_generator(small_synthetic, tmp_path):
    epochs = small_synthetic.epochs
    enc = SynapseEncoder(**SMALL_PAPER).fit(epochs)
    assert type(enc.net_.module_) is OfficialAutoencoder
    assert enc.transform(epochs[:5]).shape == (5, 64)
    assert enc.reconstruct(epochs[:2]).shape == (2, 128, 64)
    assert np.all(np.isfinite(enc.history_[:, "train_loss"]))
    enc.save(tmp_path / "enc")
    np.testing.assert_array_equal(SynapseEncoder.load(tmp_path / "enc").latent(epochs[:4]),
                                  enc.latent(epochs[:4]))
    gen = EEGImageGenerator(encoder=enc, base_model=_tiny_base(), max_steps=1, batch_size=2,
                            random_state=0, verbose=False).fit(epochs[:8])
    images = gen.generate(epochs[:1], num_inference_steps=2, random_state=0, output_type="np")
    assert images.shape[:2] == (1, 1)


def test_the_authors_losses_change_training(small_synthetic):
    epochs = small_synthetic.epochs[:30]
    ours = SynapseEncoder(**SMALL_PAPER).fit(epochs)
    theirs = SynapseEncoder(**dict(SMALL_PAPER, text_layer="last", cosine_axis="tokens",
                                   learn_temperature=False)).fit(epochs)
    assert ours.net_.criterion_.logit_scale.requires_grad
    assert not theirs.net_.criterion_.logit_scale.requires_grad
    assert theirs.net_.criterion_.temperature == pytest.approx(0.07)
    assert not np.allclose(ours.transform(epochs), theirs.transform(epochs))
    with pytest.raises(ValueError, match="cosine_axis must be"):
        SynapseEncoder(cosine_axis="electrodes").fit(epochs)
    with pytest.raises(ValueError, match="text_layer must be"):
        SynapseEncoder(text_layer="first").fit(epochs)


def test_official_encoder_trains_further_and_conditions_a_generator(official, files, eeg):
    enc = SynapseEncoder.from_official(files["checkpoint"], warm_start=True, max_epochs=1,
                                       batch_size=2, align_weight=0.0, contrastive_weight=0.0,
                                       random_state=0)
    before = enc.latent(eeg)
    module = enc.net_.module_
    enc.fit(eeg)  # reconstruction only: no CLIP targets needed
    assert enc.net_.module_ is module and len(enc.history_) == 1
    assert not np.allclose(enc.latent(eeg), before)
    np.testing.assert_array_equal(enc.scale_std_, 1.0)  # still the stored values
    gen = EEGImageGenerator(encoder=enc, base_model=_tiny_base(1024), max_steps=1,
                            batch_size=2, random_state=0, verbose=False)
    images = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    gen.fit(eeg, images=images)
    assert gen.generate(eeg[:1], num_inference_steps=2, output_type="np").shape[:2] == (1, 1)


def test_folders_of_format_1_load_as_the_hybrid_network(small_synthetic, tmp_path):
    epochs = small_synthetic.epochs[:20]
    enc = SynapseEncoder(preset="hybrid", max_epochs=1, random_state=0, verbose=False,
                         module_kwargs=dict(widths=(16, 32), n_heads=2, n_tokens=24,
                                            embed_dim=64)).fit(epochs)
    folder = enc.save(tmp_path / "old")
    config = json.loads((folder / "config.json").read_text())
    # What the version before the authors' network wrote: our network under "paper".
    config.update(format_version=1, params=dict(config["params"], preset="paper"))
    del config["architecture"]
    (folder / "config.json").write_text(json.dumps(config))
    loaded = SynapseEncoder.load(folder)
    assert loaded.preset == "hybrid"
    np.testing.assert_array_equal(loaded.transform(epochs[:3]), enc.transform(epochs[:3]))
    # A format-2 folder naming another network than its preset builds is refused.
    config.update(format_version=2, architecture="OfficialAutoencoder",
                  params=dict(config["params"], preset="hybrid"))
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="holds a OfficialAutoencoder, but preset='hybrid'"):
        SynapseEncoder.load(folder)
