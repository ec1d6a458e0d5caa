"""Tests of the stimulus captioner with a tiny random BLIP built from a config."""

import logging
import time

import numpy as np
import pytest

transformers = pytest.importorskip("transformers")

from mne_synapse.captions import add_captions, caption_images  # noqa: E402


@pytest.fixture(scope="module")
def tiny_blip(tmp_path_factory):
    """A BLIP captioner with random weights and a 13-word vocabulary, saved to a folder."""
    import torch
    from transformers import (BertTokenizer, BlipConfig, BlipForConditionalGeneration,
                              BlipImageProcessor, BlipProcessor)

    folder = tmp_path_factory.mktemp("tiny_blip")
    words = ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]", "a", "photo", "of", "plane",
             "cat", "the", "on", "sky"]
    (folder / "vocab.txt").write_text("\n".join(words) + "\n")
    processor = BlipProcessor(BlipImageProcessor(size={"height": 16, "width": 16}),
                              BertTokenizer(str(folder / "vocab.txt"), model_max_length=96))
    config = BlipConfig(
        vision_config=dict(hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                           num_attention_heads=2, image_size=16, patch_size=8),
        text_config=dict(vocab_size=len(words), hidden_size=8, intermediate_size=16,
                         num_hidden_layers=1, num_attention_heads=2,
                         max_position_embeddings=96, encoder_hidden_size=8, bos_token_id=1,
                         pad_token_id=0, sep_token_id=2, eos_token_id=2),
        projection_dim=8)
    torch.manual_seed(0)
    BlipForConditionalGeneration(config).save_pretrained(folder / "model")
    processor.save_pretrained(folder / "model")
    return str(folder / "model")


@pytest.fixture
def generate_calls(monkeypatch):
    """Record each generate call's batch size, settings and output length."""
    from transformers import BlipForConditionalGeneration

    calls = []
    original = BlipForConditionalGeneration.generate

    def spy(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        calls.append(dict(n=len(out), num_beams=kwargs["num_beams"],
                          max_new_tokens=kwargs["max_new_tokens"], length=out.shape[1]))
        return out

    monkeypatch.setattr(BlipForConditionalGeneration, "generate", spy)
    return calls


def _images(n, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (20, 24, 3), dtype=np.uint8) for _ in range(n)]


def test_batches_beams_tokens_and_cache(tiny_blip, generate_calls, tmp_path, monkeypatch):
    monkeypatch.setenv("MNE_SYNAPSE_CACHE", str(tmp_path))
    images = _images(5)
    images.append(images[1].copy())  # the same content is captioned once
    captions = caption_images(images, model=tiny_blip, batch_size=2, max_new_tokens=7)
    assert len(captions) == 6 and all(isinstance(c, str) for c in captions)
    assert captions[5] == captions[1]
    assert [c["n"] for c in generate_calls] == [2, 2, 1]
    assert {c["num_beams"] for c in generate_calls} == {3}
    assert {c["max_new_tokens"] for c in generate_calls} == {7}
    assert max(c["length"] for c in generate_calls) <= 7 + 1  # + BLIP's start token
    assert len(list(tmp_path.glob("captions/*/*.txt"))) == 5

    generate_calls.clear()
    again = caption_images(images[::-1], model=tiny_blip, batch_size=2, max_new_tokens=7)
    assert again == captions[::-1] and generate_calls == []  # all from the cache
    caption_images(images[:2], model=tiny_blip, num_beams=1, max_new_tokens=7)
    assert [(c["n"], c["num_beams"]) for c in generate_calls] == [(2, 1)]  # other settings


def test_add_captions_feeds_the_encoder(tiny_blip, tmp_path, monkeypatch):
    import mne
    import pandas as pd
    from PIL import Image

    from mne_synapse import _stimuli

    monkeypatch.setenv("MNE_SYNAPSE_CACHE", str(tmp_path))
    paths = []
    for k, image in enumerate(_images(3, seed=1)):
        paths.append(str(tmp_path / f"{k}.png"))
        Image.fromarray(image).save(paths[-1])
    metadata = pd.DataFrame(dict(image_path=paths + paths[:1], class_name="airliner"))
    epochs = mne.EpochsArray(np.zeros((4, 2, 10)), mne.create_info(2, 100.0, "eeg"),
                             metadata=metadata, verbose=False)
    assert add_captions(epochs, model=tiny_blip) is epochs
    expected = caption_images(paths + paths[:1], model=tiny_blip)
    assert epochs.metadata["caption"].tolist() == expected
    _, captions = _stimuli.resolve_stimuli(
        4, epochs.metadata, None, None, None, "image_path", "caption", "a photo of a {}",
        need_images=False, need_captions=True)
    assert list(captions) == expected
    with pytest.raises(ValueError, match="no 'stimulus' column"):
        add_captions(epochs, model=tiny_blip, image_column="stimulus")


def test_offline_without_weights(caplog, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("MNE_SYNAPSE_CACHE", str(tmp_path))
    caplog.set_level(logging.DEBUG)
    start = time.perf_counter()
    with pytest.raises(OSError, match="hf download Salesforce/blip2-flan-t5-xl "
                                      "--local-dir"):
        caption_images(_images(1))
    assert time.perf_counter() - start < 10
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    with pytest.raises(FileNotFoundError, match="captioning model folder"):
        caption_images(_images(1), model=str(tmp_path / "missing"))
