"""Figures render under Agg (set in conftest) and show what they claim."""

from types import SimpleNamespace

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest

from mne_synapse import SynapseEncoder
from mne_synapse.viz import plot_generated_grid, plot_latent_tsne, plot_training_curves


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_backend_is_agg():
    assert matplotlib.get_backend().lower() == "agg"


def test_generated_grid():
    rng = np.random.default_rng(0)
    stimuli = rng.integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    generated = rng.integers(0, 256, (3, 2, 8, 8, 3), dtype=np.uint8)
    fig = plot_generated_grid(stimuli, generated, titles=["a", "b", "c"], show=False)
    assert len(fig.axes) == 9
    assert fig.axes[0].get_title() == "seen" and fig.axes[3].get_ylabel() == "b"
    np.testing.assert_array_equal(fig.axes[1].images[0].get_array(), generated[0, 0])
    fig.canvas.draw()
    with pytest.raises(ValueError, match="stimuli"):
        plot_generated_grid(stimuli[:2], generated, show=False)


def test_latent_tsne_panels_per_subject():
    rng = np.random.default_rng(0)
    labels = np.tile(np.arange(3), 16)
    subjects = np.repeat([1, 2], 24)
    latents = np.eye(3)[labels][:, :, None] * 4 + rng.normal(size=(48, 3, 2))  # tokens
    fig = plot_latent_tsne(latents, labels, subjects, class_names=["x", "y", "z"],
                           perplexity=5, show=False)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["all subjects (marker: subject)", "subject 1", "subject 2"]
    # Every epoch is drawn once per panel it belongs to.
    assert sum(len(c.get_offsets()) for c in fig.axes[0].collections) == 48
    assert sum(len(c.get_offsets()) for c in fig.axes[1].collections) == 24
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["x", "y", "z"]
    fig.canvas.draw()
    single = plot_latent_tsne(latents[:, :, 0], labels, show=False)
    assert len(single.axes) == 1 and single.axes[0].get_title() == "all epochs"


def test_latent_tsne_bad_input():
    with pytest.raises(ValueError, match="labels"):
        plot_latent_tsne(np.zeros((10, 2)), np.zeros(9), show=False)
    with pytest.raises(ValueError, match="per subject"):
        plot_latent_tsne(np.zeros((10, 2)), np.zeros(10), np.r_[np.zeros(7), np.ones(3)],
                         show=False)


@pytest.fixture(scope="module")
def encoder(small_synthetic):
    return SynapseEncoder(max_epochs=3, batch_size=16, validation_fraction=0.2,
                          module_kwargs=dict(widths=(16, 32), n_heads=2), random_state=0,
                          verbose=False).fit(small_synthetic.epochs)


def test_training_curves_from_encoder_and_generator(encoder):
    fig = plot_training_curves(encoder, show=False)
    (ax,) = fig.axes
    train, valid = ax.get_lines()
    np.testing.assert_allclose(train.get_ydata(), encoder.history_[:, "train_loss"])
    np.testing.assert_allclose(valid.get_ydata(), encoder.history_[:, "valid_loss"])
    np.testing.assert_array_equal(train.get_xdata(), [1, 2, 3])
    fig.canvas.draw()

    losses = list(np.linspace(1, 0.5, 30))
    generator = SimpleNamespace(loss_curve_=losses, encoder_=encoder)
    fig = plot_training_curves(generator, smooth=10, show=False)
    assert [ax.get_title() for ax in fig.axes] == ["Stage 1 (encoder)", "Stage 2 (generator)"]
    per_step, mean = fig.axes[1].get_lines()
    np.testing.assert_allclose(per_step.get_ydata(), losses)
    assert len(mean.get_ydata()) == 21
    assert mean.get_ydata()[0] == pytest.approx(np.mean(losses[:10]))
    # skorch net, History and a plain list of losses work too.
    assert len(plot_training_curves(encoder.net_, show=False).axes) == 1
    assert len(plot_training_curves(encoder.history_, show=False).axes) == 1
    assert fig.axes[1].get_xlabel() == "optimisation step"
    assert len(plot_training_curves(losses, show=False).axes) == 1


def test_training_curves_unfitted():
    with pytest.raises(ValueError, match="not fitted"):
        plot_training_curves(SynapseEncoder(), show=False)
    with pytest.raises(ValueError, match="empty"):
        plot_training_curves([], show=False)
