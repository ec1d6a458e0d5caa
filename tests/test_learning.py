"""Tests that fail when learning breaks, on a small synthetic world (5 classes, 2 subjects).

Shape, determinism and falling-loss tests pass for a model that learns nothing
useful; these do not. Each compares held-out scores with chance, or with the
same pipeline fitted on EEG whose stimuli are permuted, by a margin. The
margins sit well inside what was measured at seeds 0-2 (numbers beside each
assert), so that a broken EEG-target pairing fails them and noise does not.
"""

import numpy as np
import pytest

from mne_synapse import SynapseEncoder
from mne_synapse.evaluation import permute_stimuli, zero_shot

WORLD = dict(n_classes=5, n_images_per_class=20, n_subjects=2, n_repetitions=2, n_times=64,
             sfreq=128.0)
ENCODER = dict(max_epochs=10, batch_size=32, module_kwargs=dict(widths=(16, 32), n_heads=2),
               verbose=False)


@pytest.fixture(scope="module")
def world(_isolated_cache):
    from mne_synapse.datasets import make_synthetic

    data = make_synthetic(**WORLD)
    md = data.epochs.metadata
    train = data.epochs[(md.split != "test").to_numpy()]
    test = data.epochs[(md.split == "test").to_numpy()]  # 15 images never seen in fit
    return data, train, test


@pytest.fixture(scope="module")
def clip():
    from mne_synapse.clip import CLIPEmbedder

    return CLIPEmbedder("tiny", "synthetic")


@pytest.fixture(scope="module")
def learned(world):
    return SynapseEncoder(random_state=0, **ENCODER).fit(world[1])


def _clip_space_accuracy(encoder, test, clip):
    """Class of held-out epochs read from the CLIP space alone: no classifier is trained.

    Each test epoch's embedding is matched (cosine) to the mean CLIP image
    embedding of each class's test images; only the encoder's EEG -> CLIP
    mapping can make this beat chance.
    """
    scores = zero_shot(encoder, test, clip.embed_images)
    return scores.top1["classification"], scores.chance["classification"]


def test_encoder_learns_clip_space_above_chance(learned, world, clip):
    accuracy, chance = _clip_space_accuracy(learned, world[2], clip)
    assert chance == pytest.approx(0.2)
    assert accuracy >= chance + 0.3, accuracy  # measured 0.65-0.78


def test_encoder_at_chance_when_eeg_target_pairing_is_shuffled(world, clip):
    shuffled = permute_stimuli(world[1], random_state=0)
    encoder = SynapseEncoder(random_state=0, **ENCODER).fit(shuffled)
    accuracy, chance = _clip_space_accuracy(encoder, world[2], clip)
    assert accuracy <= chance + 0.15, accuracy  # measured 0.15-0.22


def test_generator_learns_the_class_above_the_shuffled_eeg_control(learned, world, clip):
    """Images generated from held-out EEG show its class more often than from other EEG.

    The judge is the nearest class prototype of tiny-CLIP embeddings of the
    real training stimuli (it labels the real test stimuli right). The
    control generates from the same test EEG in permuted order, so it has the
    same images' statistics and no pairing.
    """
    from mne_synapse.generator import EEGImageGenerator

    data, train, test = world
    md = train.metadata
    embedded = clip.embed_images(list(data.images[md.image_index.to_numpy()]))
    prototypes = np.stack([embedded[md.label.to_numpy() == k].mean(0) for k in range(5)])

    def judge(images):
        e = clip.embed_images(list(images))
        cosine = (e / np.linalg.norm(e, axis=1, keepdims=True)) @ (
            prototypes / np.linalg.norm(prototypes, axis=1, keepdims=True)).T
        return cosine.argmax(1)

    truth = test.metadata.label.to_numpy()
    assert np.mean(judge(data.images[test.metadata.image_index.to_numpy()]) == truth) > 0.9
    generator = EEGImageGenerator(encoder=learned, max_steps=60, batch_size=16,
                                  random_state=0, verbose=False).fit(train)
    kw = dict(num_inference_steps=10, random_state=0, output_type="np")
    generated = generator.generate(test, **kw)[:, 0]
    order = np.random.default_rng(0).permutation(len(test))
    control = generator.generate(test[order], **kw)[:, 0]
    accuracy, shuffled = np.mean(judge(generated) == truth), np.mean(judge(control) == truth)
    assert accuracy >= 0.2 + 0.15, accuracy  # chance 0.2; measured 0.45-0.58
    assert accuracy - shuffled >= 0.12, (accuracy, shuffled)  # measured 0.22-0.35
