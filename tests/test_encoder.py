import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, cross_val_score
from sklearn.pipeline import make_pipeline

from mne_synapse import SynapseEncoder

FAST = dict(max_epochs=2, batch_size=16, module_kwargs=dict(widths=(16, 32), n_heads=2))


@pytest.fixture(scope="module")
def fitted(small_synthetic):
    return SynapseEncoder(random_state=0, verbose=False, **FAST).fit(small_synthetic.epochs)


def test_fit_transform_shapes(fitted, small_synthetic):
    epochs = small_synthetic.epochs
    Z = fitted.transform(epochs)
    assert Z.shape == (len(epochs), 64)  # tiny CLIP: 64-d embedding space
    assert np.isfinite(Z).all()
    tokens = clone(fitted).set_params(output="tokens")
    tokens.fit(epochs[:20])
    assert tokens.transform(epochs[:3]).shape == (3, 24, 64)  # tiny CLIP: 24 caption tokens
    x_hat = fitted.reconstruct(epochs[:4])
    assert x_hat.shape == (4, 128, 64)
    assert fitted.n_chans_ == 128 and fitted.n_times_ == 64 and fitted.sfreq_ == 128.0
    history = fitted.history_[:, "train_loss"]
    assert len(history) == 2 and all(np.isfinite(history))


def test_training_lowers_the_loss(small_synthetic):
    est = SynapseEncoder(random_state=0, verbose=False, max_epochs=8, batch_size=16,
                         module_kwargs=dict(widths=(16, 32), n_heads=2))
    est.fit(small_synthetic.epochs)
    losses = est.history_[:, "train_loss"]
    assert losses[-1] < losses[0] * 0.95


def test_augmentation_changes_training(small_synthetic):
    epochs = small_synthetic.epochs[:30]
    plain = SynapseEncoder(random_state=3, verbose=False, augment_noise=0, augment_shift=0,
                           **FAST).fit(epochs).transform(epochs)
    augmented = SynapseEncoder(random_state=3, verbose=False, **FAST).fit(epochs).transform(epochs)
    assert not np.allclose(plain, augmented)


@pytest.mark.parametrize("option", [dict(augment_channel_drop=0.3), dict(augment_mix=1.0)])
def test_channel_dropout_and_mixing_train_reproducibly(small_synthetic, option):
    epochs = small_synthetic.epochs[:30]
    runs = [SynapseEncoder(random_state=3, verbose=False, **option, **FAST).fit(epochs)
            for _ in range(2)]
    np.testing.assert_array_equal(runs[0].transform(epochs), runs[1].transform(epochs))


def test_channel_dropout_zeroes_whole_channels_at_its_rate():
    import torch

    from mne_synapse._training import SynapseNet

    net = SynapseNet.__new__(SynapseNet)  # _augment reads the augment_* attributes only
    net.augment_channel_drop = 0.3
    x = torch.randn(64, 128, 10) + 5.0  # no sample is 0 by chance
    torch.manual_seed(0)
    out = net._augment(x)
    factor = out / x  # braindecode's mask: a steep sigmoid, 0 or 1 but near the rate
    torch.testing.assert_close(factor, factor[..., :1].expand_as(factor))  # whole channels
    assert 0.25 < (factor[..., 0] < 0.01).float().mean() < 0.35
    assert 0.65 < (factor[..., 0] > 0.99).float().mean() < 0.75
    torch.manual_seed(0)
    torch.testing.assert_close(net._augment(x), out)  # drawn from torch's generator


def test_cosine_schedule_decays_the_learning_rate(small_synthetic):
    est = SynapseEncoder(random_state=0, verbose=False, lr_schedule="cosine",
                         **dict(FAST, max_epochs=4)).fit(small_synthetic.epochs[:30])
    expected = [est.lr * 0.5 * (1 + np.cos(np.pi * e / 4)) for e in range(4)]
    np.testing.assert_allclose(est.history_[:, "lr"], expected)
    assert est.net_.optimizer_.param_groups[0]["lr"] == pytest.approx(expected[-1])
    with pytest.raises(ValueError, match="lr_schedule must be 'cosine' or None"):
        SynapseEncoder(lr_schedule="step").fit(small_synthetic.epochs)


def test_same_stimulus_mix_mixes_within_the_view_and_stimulus():
    from torch.utils.data import Subset

    from mne_synapse._training import EEGDataset, SameStimulusMix

    rng = np.random.default_rng(0)
    data = rng.standard_normal((24, 3, 5)).astype(np.float32)
    stimulus = np.repeat(np.arange(6), 4)
    view_rows = np.flatnonzero(stimulus != 0)  # stimulus 0 held out (validation)
    view_rows = view_rows[view_rows != 7]  # stimulus 1 keeps 3 epochs
    view_rows = np.append(view_rows[view_rows // 4 != 2], 8)  # stimulus 2: one epoch
    dataset = Subset(EEGDataset(data, 0.0, 1.0, np.arange(24)), view_rows)
    history = []  # its length is the epoch number
    view = SameStimulusMix(dataset, stimulus, 1.0, seed=1, history=history)
    first = [x for x, _ in view.__getitems__(list(range(len(view))))]
    history.append({})  # next epoch: other draws
    second = [x for x, _ in view.__getitems__(list(range(len(view))))]
    assert not np.allclose(np.stack(first), np.stack(second))
    history.pop()  # the first epoch again (a resumed run): the same draws
    fresh = SameStimulusMix(dataset, stimulus, 1.0, seed=1, history=history)
    again = [x for x, _ in fresh.__getitems__(list(range(len(view))))]
    np.testing.assert_array_equal(np.stack(first), np.stack(again))
    for _ in range(5):
        history.append({})
        for position, (x, pair) in enumerate(view.__getitems__(list(range(len(view))))):
            row = view_rows[position]
            assert pair == row  # labels untouched
            if row == 8:  # alone with its stimulus: left as it is
                np.testing.assert_array_equal(x, data[8])
                continue
            assert not np.allclose(x, data[row])  # probability 1: every other epoch mixed
            others = [r for r in view_rows if stimulus[r] == stimulus[row] and r != row]
            # x lies on a segment between the epoch and another of its stimulus in the view
            fits = []
            for other in others:
                step = data[row] - data[other]
                lam = float(np.sum((x - data[other]) * step) / np.sum(step * step))
                fits.append(0 <= lam <= 1 and np.allclose(x, data[other] + lam * step,
                                                          atol=1e-5))
            assert any(fits)
    assert len(view) == len(dataset)


def test_same_random_state_same_output(small_synthetic):
    epochs = small_synthetic.epochs[:30]
    a = SynapseEncoder(random_state=3, verbose=False, **FAST).fit(epochs).transform(epochs)
    b = SynapseEncoder(random_state=3, verbose=False, **FAST).fit(epochs).transform(epochs)
    c = SynapseEncoder(random_state=4, verbose=False, **FAST).fit(epochs).transform(epochs)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_arrays_with_explicit_stimuli(small_synthetic):
    data = small_synthetic
    md = data.epochs.metadata
    X = data.epochs.get_data()
    images = data.images[md.image_index.to_numpy()]
    est = SynapseEncoder(random_state=0, verbose=False, **FAST)
    est.fit(X, images=images, captions=md.caption.to_numpy())
    assert est.transform(X[:5]).shape == (5, 64)
    assert est.sfreq_ is None and est.ch_names_ is None


def test_pickle_clone_and_save_load(fitted, small_synthetic, tmp_path):
    epochs = small_synthetic.epochs[:10]
    expected = fitted.transform(epochs)
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_allclose(restored.transform(epochs), expected, rtol=1e-5, atol=1e-6)
    assert clone(fitted).get_params() == fitted.get_params()
    assert not hasattr(clone(fitted), "net_")
    fitted.save(tmp_path / "enc")
    loaded = SynapseEncoder.load(tmp_path / "enc")
    np.testing.assert_allclose(loaded.transform(epochs), expected, rtol=1e-5, atol=1e-6)
    # A corrupted weights file is detected, not silently loaded.
    weights = tmp_path / "enc" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])
    with pytest.raises(ValueError, match="hash"):
        SynapseEncoder.load(tmp_path / "enc")


def test_pipeline_cross_val_score_on_epochs(small_synthetic):
    epochs = small_synthetic.epochs
    md = epochs.metadata
    clf = make_pipeline(SynapseEncoder(random_state=0, verbose=False, **FAST),
                        LogisticRegression(max_iter=200))
    scores = cross_val_score(clf, epochs, md.label, groups=md.image_id, cv=GroupKFold(2))
    assert scores.shape == (2,) and np.all((0 <= scores) & (scores <= 1))


def test_uncertainty_weighting_parameters_are_trained(small_synthetic):
    est = SynapseEncoder(random_state=0, verbose=False, uncertainty_weighting=True, **FAST)
    est.fit(small_synthetic.epochs[:40])
    log_vars = est.net_.criterion_.log_vars.detach().numpy()
    assert np.any(log_vars != 0)  # initialised at 0, moved by the optimiser


@pytest.mark.parametrize("make_input, match", [
    (lambda ep: ep.get_data()[:, :10], "channels"),
    (lambda ep: ep.get_data()[:, :, :30], "times"),
    (lambda ep: ep.get_data()[0], "3-D|channels"),
    (lambda ep: np.full((2, 128, 64), np.nan), "NaN"),
    (lambda ep: ep.copy().resample(64.0), "Hz"),
    (lambda ep: "not data", "mne.Epochs"),
])
def test_transform_rejects_bad_input(fitted, small_synthetic, make_input, match):
    with pytest.raises((ValueError, TypeError), match=match):
        fitted.transform(make_input(small_synthetic.epochs))


def test_unfitted_and_bad_fit_inputs(small_synthetic):
    from sklearn.exceptions import NotFittedError

    epochs = small_synthetic.epochs[:10]
    with pytest.raises(NotFittedError):
        SynapseEncoder().transform(epochs)
    no_images = epochs.copy()
    no_images.metadata = no_images.metadata.drop(columns=["image_path"])
    with pytest.raises(ValueError, match="image_path"):
        SynapseEncoder(**FAST).fit(no_images)
    with pytest.raises(ValueError, match="labels"):
        SynapseEncoder(**FAST).fit(epochs, y=np.zeros(3))
    with pytest.raises(ValueError, match="images"):
        SynapseEncoder(**FAST).fit(epochs.get_data(), images=small_synthetic.images[:3])
    with pytest.raises(ValueError, match="preset"):
        SynapseEncoder(preset="huge").fit(epochs)
    with pytest.raises(ValueError, match="augment_noise"):
        SynapseEncoder(augment_noise=-1.0).fit(epochs)
    bad_path = epochs.copy()
    bad_path.metadata.loc[:, "image_path"] = "/nonexistent/image.png"
    with pytest.raises(FileNotFoundError, match="image_path"):
        SynapseEncoder(**FAST).fit(bad_path)


# scikit-learn's own estimator checks. They feed 2-D arrays (samples x features),
# which the encoder refuses (EEG epochs are 3-D, as for MNE's CSP); this subclass
# reads each row as a single-channel epoch, so the checks test the estimator's
# contract (parameters, fitted state, clone, pickling, determinism, sample order).
# Without stimuli it trains as a plain autoencoder (align and contrastive terms off).
_EXPECTED_FAILED_CHECKS = {
    "check_estimators_empty_data_messages": "3-D EEG input; the message names n_times, not features",
    "check_fit2d_predict1d": "1-D input is rejected with a 3-D shape message",
    "check_n_features_in_after_fitting": "the shape error speaks of channels x times, not features",
    "check_transformer_preserve_dtypes": "output is float32 whatever the input (torch)",
}


def _one_channel(X):
    try:
        array = np.asarray(X)
    except (TypeError, ValueError):
        return X
    return array[:, None, :] if array.ndim == 2 else X


class RowsAsEpochs(SynapseEncoder):
    def fit(self, X, y=None, **kwargs):
        return super().fit(_one_channel(X), y, **kwargs)

    def transform(self, X, subjects=None):
        return super().transform(_one_channel(X), subjects)


def _sklearn_check_estimators():
    return [RowsAsEpochs(
        align_weight=0, contrastive_weight=0, max_epochs=1, batch_size=8, random_state=0,
        verbose=False, module_kwargs=dict(widths=(8, 16), n_heads=2, embed_dim=8, n_tokens=4),
    )]


from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402


@parametrize_with_checks(_sklearn_check_estimators(),
                         expected_failed_checks=lambda est: _EXPECTED_FAILED_CHECKS)
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_grid_search_and_mne_cross_val_multiscore(small_synthetic):
    from mne.decoding import cross_val_multiscore
    from sklearn.model_selection import GridSearchCV

    epochs = small_synthetic.epochs[:48]
    md = epochs.metadata
    clf = make_pipeline(SynapseEncoder(random_state=0, verbose=False, **FAST),
                        LogisticRegression(max_iter=200))
    search = GridSearchCV(clf, {"logisticregression__C": [0.1, 1.0]}, cv=GroupKFold(2))
    search.fit(epochs, md.label, groups=md.image_id)
    assert search.best_params_["logisticregression__C"] in (0.1, 1.0)
    scores = cross_val_multiscore(clf, epochs, md.label.to_numpy(), cv=GroupKFold(2),
                                  groups=md.image_id.to_numpy())
    assert scores.shape == (2,)


def test_extra_skorch_callbacks_run(small_synthetic):
    from skorch.callbacks import LRScheduler

    est = SynapseEncoder(random_state=0, verbose=False, callbacks=[
        ("lr", LRScheduler("StepLR", step_size=1, gamma=0.1))], **FAST)
    est.fit(small_synthetic.epochs[:20])
    lrs = [g["lr"] for g in est.net_.optimizer_.param_groups]
    assert np.allclose(lrs, est.lr * 0.01)  # two epochs, two decays


def test_checkpoint_given_as_a_path_is_saved(small_synthetic, tmp_path):
    from pathlib import Path

    import mne_synapse

    weights = Path(mne_synapse.__file__).parent / "miniature" / "weights" / "tiny_clip.safetensors"
    epochs = small_synthetic.epochs[:16]
    encoder = SynapseEncoder(clip_pretrained=weights, random_state=0, verbose=False,
                             **dict(FAST, max_epochs=1)).fit(epochs)
    loaded = SynapseEncoder.load(encoder.save(tmp_path / "encoder"))
    assert loaded.clip_pretrained == str(weights)
    np.testing.assert_array_equal(loaded.transform(epochs), encoder.transform(epochs))


def test_saved_network_loads_whatever_the_presets_default(small_synthetic, tmp_path,
                                                          monkeypatch):
    """A folder keeps the band-power size it was fitted with; a folder saved before
    band-power tokens existed (no ``power_filters`` in it) loads as a network without them."""
    import json

    from mne_synapse.models import PRESETS

    epochs = small_synthetic.epochs[:20]
    est = SynapseEncoder(random_state=0, verbose=False, **FAST).fit(epochs)
    assert est.module_kwargs_["power_filters"] == PRESETS["tiny"]["power_filters"]
    est.save(tmp_path / "now")
    monkeypatch.setitem(PRESETS, "tiny", {**PRESETS["tiny"], "power_filters": 3})
    np.testing.assert_allclose(SynapseEncoder.load(tmp_path / "now").transform(epochs),
                               est.transform(epochs), rtol=1e-5, atol=1e-6)

    kwargs = dict(FAST["module_kwargs"], power_filters=0)
    old = SynapseEncoder(random_state=0, verbose=False, **dict(FAST, module_kwargs=kwargs))
    old.fit(epochs).save(tmp_path / "old")
    config_path = tmp_path / "old" / "config.json"
    config = json.loads(config_path.read_text())
    for entry in (config["module_kwargs"], config["params"]["module_kwargs"]):
        del entry["power_filters"]  # as written before band-power tokens existed
    config_path.write_text(json.dumps(config))
    loaded = SynapseEncoder.load(tmp_path / "old")
    assert loaded.net_.module_.band_power is None
    np.testing.assert_allclose(loaded.transform(epochs), old.transform(epochs),
                               rtol=1e-5, atol=1e-6)
