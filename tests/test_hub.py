"""Hub folders of both estimators: save_pretrained / from_pretrained / push_to_hub, offline.

No network: hub calls are either refused offline or replaced by fakes.
"""

import numpy as np
import pytest

from mne_synapse import EEGImageGenerator, SynapseEncoder
from mne_synapse._model_card import hub_id

from test_generator import FAST_ENCODER, _tiny_base  # noqa: E402


@pytest.fixture(scope="module")
def fitted(small_synthetic):
    epochs = small_synthetic.epochs[:20]
    encoder = SynapseEncoder(random_state=0, verbose=False, **FAST_ENCODER).fit(epochs)
    base = _tiny_base()
    generator = EEGImageGenerator(encoder=encoder, base_model=base, max_steps=1, batch_size=2,
                                  random_state=0, verbose=False).fit(epochs[:4])
    return encoder, generator, base, epochs


@pytest.fixture
def online(monkeypatch):
    """The hub as if a network were there (tests then replace every hub call)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


def _card(folder):
    from huggingface_hub import ModelCard

    return ModelCard.load(folder / "README.md")


def test_encoder_folder_is_a_hub_repo_with_a_card(fitted, tmp_path):
    encoder, _, _, epochs = fitted
    folder = encoder.save_pretrained(tmp_path / "enc", license="mit",
                                     datasets="luigi-s/EEG_Image_CVPR_ALL_subj",
                                     metrics={"top1": 0.5}, tags=["cvpr40"])
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json",
                                                        "model.safetensors"]
    card = _card(folder)
    assert card.data.library_name == "mne-synapse" and card.data.license == "mit"
    assert {"eeg", "clip", "cvpr40"} <= set(card.data.tags)
    assert card.data.datasets == ["luigi-s/EEG_Image_CVPR_ALL_subj"]
    assert card.data.metrics == ["top1"] and "| top1 | 0.5 |" in card.text
    n_params = sum(p.numel() for p in encoder.net_.module_.parameters())
    assert f"{n_params:,} trainable parameters" in card.text
    assert "SynapseEncoder.from_pretrained('path/to/this/folder')" in card.text
    assert '"max_epochs": 1' in card.text  # the training configuration
    loaded = SynapseEncoder.from_pretrained(folder)
    np.testing.assert_array_equal(loaded.transform(epochs), encoder.transform(epochs))
    # save/load are the same thing under their old names.
    np.testing.assert_array_equal(SynapseEncoder.load(encoder.save(tmp_path / "old"))
                                  .transform(epochs[:2]), encoder.transform(epochs[:2]))
    assert (tmp_path / "old" / "README.md").is_file()


def test_generator_folder_round_trip_and_card(fitted, tmp_path):
    _, generator, base, epochs = fitted
    folder = generator.save_pretrained(tmp_path / "gen", metrics={"fid": 123.4})
    assert (folder / "README.md").is_file() and (folder / "encoder" / "config.json").is_file()
    assert not (folder / "encoder" / "README.md").exists()
    card = _card(folder)
    assert {"eeg", "eeg-to-image", "stable-diffusion"} <= set(card.data.tags)
    assert card.data.base_model is None  # an in-memory base has no hub id
    assert f"{generator.n_trainable_params_:,} trainable parameters" in card.text
    assert "export_diffusers" in card.text and "| fid | 123.4 |" in card.text
    loaded = EEGImageGenerator.from_pretrained(folder, base_model=base)
    kwargs = dict(num_inference_steps=2, random_state=0, output_type="np")
    np.testing.assert_array_equal(loaded.generate(epochs[:2], **kwargs),
                                  generator.generate(epochs[:2], **kwargs))


def test_card_names_a_hub_base_model_only():
    assert hub_id("stabilityai/stable-diffusion-2-1") == "stabilityai/stable-diffusion-2-1"
    for name in ("tiny", "in-memory", "/abs/folder", "./rel/folder", "a/b/c", None):
        assert hub_id(name) is None


def test_hub_id_offline_fails_at_once_with_our_message(fitted, tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    for cls in (SynapseEncoder, EEGImageGenerator):
        with pytest.raises(FileNotFoundError, match=r"^Cannot load the .* 'user/repo': .*"
                           r"offline \(HF_HUB_OFFLINE=1\).*pass that folder"):
            cls.from_pretrained("user/repo", cache_dir=tmp_path)
    with pytest.raises(OSError, match="offline.*save_pretrained"):
        fitted[0].push_to_hub("user/repo")


def test_hub_id_without_network_fails_with_our_message_first(online, monkeypatch):
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    def no_network(*args, **kwargs):
        raise LocalEntryNotFoundError("Got: ConnectError: [Errno -2] Name or service not "
                                      "known\nAn error happened ...")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", no_network)
    with pytest.raises(FileNotFoundError, match=r"^Cannot load the SynapseEncoder 'user/repo'"
                       r".*could not give it \(LocalEntryNotFoundError: Got: ConnectError"):
        SynapseEncoder.from_pretrained("user/repo")


def test_hub_id_downloads_then_loads(fitted, tmp_path, online, monkeypatch):
    import huggingface_hub

    encoder, _, _, epochs = fitted
    folder = encoder.save_pretrained(tmp_path / "snapshot")
    calls = []

    def fake_snapshot(repo_id, **kwargs):
        calls.append((repo_id, kwargs))
        return str(folder)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    loaded = SynapseEncoder.from_pretrained("user/repo", revision="v1")
    np.testing.assert_array_equal(loaded.transform(epochs[:3]), encoder.transform(epochs[:3]))
    assert calls[0][0] == "user/repo" and calls[0][1]["revision"] == "v1"
    assert calls[0][1]["library_name"] == "mne-synapse"


def test_push_to_hub_uploads_the_saved_folder(fitted, online, monkeypatch):
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoUrl

    _, generator, _, _ = fitted
    seen = {}

    def create_repo(self, repo_id, **kwargs):
        seen["create"] = kwargs
        return RepoUrl(f"https://huggingface.co/{repo_id}")

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        seen.update(repo_id=repo_id, upload=kwargs, files=sorted(
            str(p.relative_to(folder_path)) for p in folder_path.rglob("*") if p.is_file()),
            card=(folder_path / "README.md").read_text())
        return "commit"

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    assert generator.push_to_hub("user/eeg-gen", private=True, license="openrail++") == "commit"
    assert seen["repo_id"] == "user/eeg-gen" and seen["create"]["private"] is True
    assert seen["files"] == ["README.md", "encoder/config.json", "encoder/model.safetensors",
                             "generator.json", "generator.safetensors"]
    assert "EEGImageGenerator.from_pretrained('user/eeg-gen')" in seen["card"]
    assert "license: openrail++" in seen["card"]


@pytest.mark.parametrize("case, match", [
    ("encoder-as-generator", "is a saved SynapseEncoder, not a saved EEGImageGenerator; "
                             "load it with SynapseEncoder.from_pretrained"),
    ("generator-as-encoder", "is a saved EEGImageGenerator.*EEGImageGenerator.from_pretrained"),
    ("other-version", "format 7.*save it again with a matching version"),
    ("torch-module-folder", "names no mne-synapse estimator.*that class's from_pretrained"),
    ("diffusers-folder", "stock diffusers pipeline.*StableDiffusionPipeline.from_pretrained"),
])
def test_folder_of_another_kind_is_named(fitted, tmp_path, case, match):
    import json

    encoder, generator, base, _ = fitted
    folder = tmp_path / case
    if case == "encoder-as-generator":
        call = lambda: EEGImageGenerator.from_pretrained(  # noqa: E731
            encoder.save_pretrained(folder), base_model=base)
    elif case == "generator-as-encoder":
        call = lambda: SynapseEncoder.from_pretrained(generator.save_pretrained(folder))  # noqa
    else:
        encoder.save_pretrained(folder)
        config = json.loads((folder / "config.json").read_text())
        if case == "other-version":
            config["format_version"] = 7
        elif case == "torch-module-folder":
            config = {"n_chans": 4}
        else:
            (folder / "model_index.json").write_text("{}")
        (folder / "config.json").write_text(json.dumps(config))
        call = lambda: SynapseEncoder.from_pretrained(folder)  # noqa: E731
    with pytest.raises(ValueError, match=match):
        call()


def test_neither_a_folder_nor_a_hub_id(fitted, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist, and is not a Hugging Face hub id"):
        SynapseEncoder.from_pretrained(tmp_path / "missing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file; pass the folder"):
        SynapseEncoder.from_pretrained(tmp_path / "file")
