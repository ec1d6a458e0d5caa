import numpy as np
import pytest

from mne_synapse.clip import CLIPEmbedder, read_image
from mne_synapse.datasets._drawing import class_table, draw_image, sample_image_params
from mne_synapse.miniature.tiny_clip import CompactTokenizer, build_tiny_clip, synthetic_vocabulary


def test_compact_tokenizer_keeps_known_words_and_eot_last():
    tok = CompactTokenizer(synthetic_vocabulary())
    ids = tok(["a red circle", "a zebra"]).numpy()
    assert ids.shape == (2, 24)
    assert ids.max() == tok.vocab_size - 1  # end-of-text: largest id, for OpenCLIP pooling
    assert 1 in ids[1] and 1 not in ids[0]  # 'zebra' is unknown, the rest is known
    assert (ids[0, 5:] == 0).all()


def test_shipped_tiny_clip_recognises_the_synthetic_classes():
    """Zero-shot: the shipped tiny CLIP names the class of fresh stimuli."""
    clip = CLIPEmbedder("tiny", "synthetic")
    table = class_table(10)
    rng = np.random.default_rng(123)
    labels = np.repeat(np.arange(10), 5)
    images = [draw_image(sample_image_params(k, 10, rng)) for k in labels]
    # Caption-style prompts, as in training (short "a red circle" prompts score lower).
    prompts = [f"a {colour} {shape} at the centre on a dark background"
               for shape, colour, _ in table]
    image_emb = clip.embed_images(images)
    text = clip.embed_caption_tokens(prompts)  # token states, (10, 24, 64)
    assert text.shape == (10, 24, 64) and image_emb.shape == (50, 64)
    import torch

    with torch.no_grad():
        text_emb = clip.model.encode_text(clip._tokenizer(prompts), normalize=True).numpy()
    accuracy = np.mean((image_emb @ text_emb.T).argmax(1) == labels)
    assert accuracy > 0.7, accuracy  # chance 0.1; 0.89 measured on 200 images
    random_clip = CLIPEmbedder("tiny", None)
    assert not np.allclose(random_clip.embed_images(images[:2]), image_emb[:2])


def test_embeddings_are_cached_on_disk(tmp_path):
    images = [np.full((32, 32, 3), v, np.uint8) for v in (0, 100, 200)]
    first = CLIPEmbedder("tiny", "synthetic", cache_dir=tmp_path).embed_images(images)
    files = list(tmp_path.rglob("*.npy"))
    assert len(files) == 3
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1, rtol=1e-5)
    # Equal images give equal embeddings; a second embedder reads the disk cache.
    again = CLIPEmbedder("tiny", "synthetic", cache_dir=tmp_path).embed_images(images[::-1])
    np.testing.assert_allclose(again, first[::-1], rtol=1e-6)


def test_read_image_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_image(tmp_path / "missing.png")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="unreadable"):
        read_image(tmp_path / "bad.png")
    with pytest.raises(ValueError, match="height, width, 3"):
        read_image(np.zeros((4, 4, 5)))
    assert read_image(np.zeros((4, 4))).shape == (4, 4, 3)


def test_missing_weights_fail_fast_with_a_hint(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m mne_synapse.miniature.train_tiny_clip"):
        build_tiny_clip(tmp_path / "nope.safetensors")
    with pytest.raises(ValueError, match="Unknown CLIP model"):
        CLIPEmbedder("ViT-H-15").model
    with pytest.raises(ValueError, match="Unknown pretrained tag"):
        CLIPEmbedder("ViT-B-32", "not-a-tag").model
    with pytest.raises(FileNotFoundError, match="does not exist"):
        CLIPEmbedder("ViT-B-32", str(tmp_path / "w.bin")).model
