"""Both Stage-1 autoencoders as braindecode models: signal properties, a head that
braindecode.EEGClassifier trains, torch.export, braindecode's hub mixin (local folders)."""

import numpy as np
import pytest
import torch

from mne_synapse.models import OfficialAutoencoder, SynapseAutoencoder

TINY = dict(widths=(8, 16), n_heads=2, n_tokens=4, embed_dim=8, dropout=0.1)


def _tiny(**kwargs):
    kwargs = {**dict(n_chans=6, n_times=32), **TINY, **kwargs}
    return SynapseAutoencoder.from_preset("tiny", **kwargs)


def _chs_info(n):
    import mne

    return mne.create_info([f"EEG{i:03d}" for i in range(n)], 1000.0, "eeg")["chs"]


def test_both_are_braindecode_models_with_braindecodes_inference():
    from braindecode.models.base import EEGModuleMixin

    ours = _tiny(n_chans=None, n_times=None, chs_info=_chs_info(6), sfreq=64.0,
                 input_window_seconds=0.5)
    assert isinstance(ours, EEGModuleMixin)
    assert (ours.n_chans, ours.n_times, ours.sfreq) == (6, 32, 64.0)
    assert ours.input_window_seconds == 0.5 and ours.input_shape == (1, 6, 32)
    assert len(ours.chs_info) == 6
    with pytest.raises(ValueError, match="n_outputs not specified"):
        ours.n_outputs
    with pytest.raises(ValueError, match="n_times=33 different from input_window_seconds"):
        _tiny(n_times=33, sfreq=64.0, input_window_seconds=0.5)

    theirs = OfficialAutoencoder(n_layer=1, sfreq=1000.0)
    assert isinstance(theirs, EEGModuleMixin)
    assert (theirs.n_chans, theirs.n_times, theirs.input_window_seconds) == (128, 440, 0.44)
    assert OfficialAutoencoder(n_layer=1, chs_info=_chs_info(128)).n_chans == 128
    # Their electrode schedule (n_chans, n_chans / 2, then / 4 per level) must end on one.
    with pytest.raises(ValueError, match="n_chans=64 does not fit 5 levels.*128 to 255"):
        OfficialAutoencoder(n_layer=1, n_chans=64)


@pytest.mark.parametrize("make", [
    lambda **kw: _tiny(**kw),
    lambda **kw: OfficialAutoencoder(n_layer=1, dropout=0.1, **kw),
], ids=["ours", "authors"])
def test_head_on_the_pooled_latent(make):
    torch.manual_seed(0)
    autoencoder = make().eval()
    torch.manual_seed(0)
    classifier = make(n_outputs=3).eval()
    x = torch.randn(2, autoencoder.n_chans, autoencoder.n_times)
    with torch.no_grad():
        z, x_hat = autoencoder(x)
        assert x_hat.shape == x.shape
        scores = classifier(x)
        features = classifier(x, return_features=True)
    assert scores.shape == (2, 3) and classifier.n_outputs == 3
    # The head comes last: every other weight is the autoencoder's, and the head
    # reads the token mean of Z_latent.
    head = {k for k in classifier.state_dict() if k.startswith("final_layer.")}
    assert head == {"final_layer.weight", "final_layer.bias"}
    assert set(classifier.state_dict()) - head == set(autoencoder.state_dict())
    torch.testing.assert_close(features["latent"], z)
    torch.testing.assert_close(features["features"], z.mean(dim=1))
    torch.testing.assert_close(scores, classifier.final_layer(z.mean(dim=1)))
    classifier.reset_head(5)
    assert classifier(x).shape == (2, 5) and classifier.get_config()["n_outputs"] == 5


@pytest.mark.parametrize("make, first, decoder", [
    (lambda: _tiny(n_outputs=2), "temporal_proj.weight", "dec_out.1.weight"),
    (lambda: OfficialAutoencoder(n_layer=1, n_outputs=2), "Encoder.in_layer.conv.weight",
     "Decoder.out_layer.conv.weight"),
], ids=["ours", "authors"])
def test_eeg_classifier_trains_it_end_to_end(make, first, decoder):
    from braindecode import EEGClassifier

    torch.manual_seed(0)
    module = make()
    rng = np.random.RandomState(0)
    n = 24 if module.n_chans < 128 else 8  # the authors' network: 41 M weights at 128 x 440
    X = rng.randn(n, module.n_chans, module.n_times).astype(np.float32)
    y = np.arange(n) % 2
    X[y == 1, 0] += 2.0  # an easy class signal on one channel
    before = {k: v.clone() for k, v in module.state_dict().items()}
    clf = EEGClassifier(module, max_epochs=3, batch_size=8, lr=1e-2 if n == 24 else 1e-4,
                        train_split=None, optimizer=torch.optim.AdamW, verbose=0)
    clf.fit(X, y)
    assert clf.predict_proba(X).shape == (n, 2)
    losses = clf.history[:, "train_loss"]
    assert losses[-1] < losses[0]
    after = clf.module_.state_dict()
    # End to end: the encoder's first layer moved, not only the head; the
    # decoder gets no gradient from the classification loss.
    assert not torch.equal(before[first], after[first])
    assert torch.equal(before[decoder], after[decoder])


def test_eeg_classifier_builds_it_from_epochs():
    """The class-and-kwargs form: braindecode infers the signal properties from Epochs."""
    import mne
    from braindecode import EEGClassifier

    rng = np.random.RandomState(0)
    epochs = mne.EpochsArray(rng.randn(8, 6, 32) * 1e-6, mne.create_info(6, 64.0, "eeg"),
                             verbose=False)
    y = np.arange(8) % 2
    clf = EEGClassifier(SynapseAutoencoder, max_epochs=1, batch_size=4, train_split=None,
                        verbose=0, **{f"module__{k}": v for k, v in TINY.items()})
    clf.fit(epochs, y)
    module = clf.module_
    assert (module.n_chans, module.n_times, module.n_outputs, module.sfreq) == (6, 32, 2, 64.0)
    assert [ch["ch_name"] for ch in module.chs_info] == epochs.ch_names


@pytest.mark.parametrize("n_outputs", [None, 3])
def test_torch_export(n_outputs):
    model = _tiny(n_outputs=n_outputs).eval()
    x = torch.randn(2, 6, 32)
    program = torch.export.export(model, (x,))
    other = torch.randn(2, 6, 32)
    with torch.no_grad():
        expected, got = model(other), program.module()(other)
    for e, g in zip(*(t if isinstance(t, tuple) else (t,) for t in (expected, got))):
        torch.testing.assert_close(g, e)


@pytest.mark.slow
def test_torch_export_authors_network():
    model = OfficialAutoencoder(n_layer=1, n_outputs=2).eval()
    x = torch.randn(1, 128, 440)
    program = torch.export.export(model, (x,))
    with torch.no_grad():
        torch.testing.assert_close(program.module()(x), model(x))


def test_braindecode_hub_mixin_saves_and_loads_it(tmp_path):
    from huggingface_hub import ModelCard
    from safetensors.torch import load_file, save_file

    model = _tiny(n_chans=None, chs_info=_chs_info(6), sfreq=64.0).eval()
    model.save_pretrained(tmp_path / "ae")
    card = ModelCard.load(tmp_path / "ae" / "README.md")
    assert card.data.library_name == "mne-synapse"
    assert {"eeg", "braindecode", "SynapseAutoencoder"} <= set(card.data.tags)
    loaded = SynapseAutoencoder.from_pretrained(tmp_path / "ae")
    assert (loaded.n_chans, loaded.sfreq, loaded.widths) == (6, 64.0, TINY["widths"])
    assert [ch["ch_name"] for ch in loaded.chs_info] == [f"EEG{i:03d}" for i in range(6)]
    x = torch.randn(2, 6, 32)
    with torch.no_grad():
        for a, b in zip(model(x), loaded(x)):
            torch.testing.assert_close(a, b)
        # A saved autoencoder becomes a classifier: its weights plus a new head.
        clf = SynapseAutoencoder.from_pretrained(tmp_path / "ae", n_outputs=4)
        assert clf(x).shape == (2, 4)
        torch.testing.assert_close(clf(x, return_features=True)["latent"], model.encode(x))
    # Strict by default: a file missing a weight is refused, not half loaded.
    weights = tmp_path / "ae" / "model.safetensors"
    state = load_file(weights)
    state.pop("temporal_proj.weight")
    save_file(state, weights)
    with pytest.raises(RuntimeError, match="temporal_proj.weight"):
        SynapseAutoencoder.from_pretrained(tmp_path / "ae")


def test_braindecode_hub_mixin_authors_network(tmp_path):
    torch.manual_seed(0)
    model = OfficialAutoencoder(n_layer=1, n_outputs=2).eval()
    model.save_pretrained(tmp_path / "official")
    loaded = OfficialAutoencoder.from_pretrained(tmp_path / "official")
    assert loaded.n_outputs == 2 and loaded.Encoder.n_layer == 1
    x = torch.randn(1, 128, 440)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))
