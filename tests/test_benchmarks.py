"""The benchmarks' protocol and models: folds, the shared preprocessing, stored results."""

import numpy as np
import pytest

from benchmarks import _peers, _protocol


@pytest.mark.parametrize("seed", [0, 1])
def test_folds_are_image_disjoint_and_loso_leaves_one_subject_out(small_synthetic, seed):
    md = small_synthetic.epochs.metadata
    train, test = _protocol.folds(md, "multi", seed)
    assert not set(md.image_id.iloc[train]) & set(md.image_id.iloc[test])
    assert len(train) + len(test) == len(md)
    train, test = _protocol.folds(md, "loso", seed)
    left_out = sorted(md.subject.unique())[seed % md.subject.nunique()]
    assert set(md.subject.iloc[test]) == {left_out}
    assert left_out not in set(md.subject.iloc[train])
    assert not set(md.image_id.iloc[train]) & set(md.image_id.iloc[test])
    with pytest.raises(ValueError, match="setting"):
        _protocol.folds(md, "within", seed)


def test_shared_front_is_the_encoders_alignment(small_synthetic):
    """Without shrinkage each subject's aligned training EEG has an identity mean covariance."""
    from mne_synapse._alignment import mean_covariance

    epochs = small_synthetic.epochs
    subjects = epochs.metadata.subject.to_numpy()
    front = _peers.SharedFront("euclidean", shrinkage=0.0).fit(epochs)
    raw = front._aligned(epochs)
    for subject in np.unique(subjects):
        cov = mean_covariance(raw[subjects == subject])
        np.testing.assert_allclose(cov, np.eye(len(cov)), atol=1e-3)
    x = front.transform(epochs)
    assert x.dtype == np.float32 and x.shape == (len(epochs), 128, 64)
    np.testing.assert_allclose(x.mean(axis=(0, 2)), 0, atol=1e-4)
    np.testing.assert_allclose(x.std(axis=(0, 2)), 1, atol=1e-3)
    plain = _peers.SharedFront(None).fit(epochs).transform(epochs)
    assert not np.allclose(plain, x)
    # A subject not seen in fit: the subject-agnostic whitener until calibrated.
    first = (subjects == subjects[0])
    front = _peers.SharedFront("euclidean", shrinkage=0.0).fit(epochs[first])
    other = epochs[~first]
    cov = mean_covariance(front._aligned(other))
    assert not np.allclose(cov, np.eye(len(cov)), atol=1e-2)
    cov = mean_covariance(front.calibrate(other)._aligned(other))
    np.testing.assert_allclose(cov, np.eye(len(cov)), atol=1e-3)
    # ShallowFBCSPNet's 250 Hz from the 128 Hz of this data set: 64 -> 125 samples.
    assert _peers.SharedFront(None, sfreq=250.0).fit(epochs).transform(epochs).shape[-1] == 125


@pytest.mark.parametrize("name", _peers.MODELS)
def test_every_model_fits_and_predicts_from_epochs(small_synthetic, name):
    epochs = small_synthetic.epochs
    y = epochs.metadata.label.to_numpy()
    params = dict(SynapseEncoder=dict(augment=True, C=1.0), EEGNet=dict(n_epochs=1),
                  ShallowFBCSPNet=dict(n_epochs=1), linear=dict(C=0.01))
    params["Xdawn+TS+LR"] = dict(nfilter=2, C=1.0)
    model = _peers.make_model(name, "euclidean", params[name], seed=0, budget=1)
    if name == "SynapseEncoder":
        model[0].set_params(module_kwargs=dict(widths=(16, 32), n_heads=2))
    proba = model.fit(epochs, y).predict_proba(epochs[:7])
    assert proba.shape == (7, len(np.unique(y)))
    np.testing.assert_allclose(proba.sum(1), 1, atol=1e-5)
    with pytest.raises(ValueError, match="Unknown model"):
        _peers.make_model("Deep4Net", None, {}, 0, 1)


def test_store_resumes_without_recomputing(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return dict(top1=[1, 0], image=["a", "b"])

    store = _protocol.Store(tmp_path)
    key = dict(step="fit", seed=0)
    assert store.get(key, compute) == store.get(key, compute) == compute()
    assert len(calls) == 2  # the second get read the file
    assert _protocol.Store(None).get(key, compute) and len(calls) == 3


def test_hits_intervals_and_paired_differences():
    scores = np.array([[0.9, 0.1, 0.0], [0.2, 0.5, 0.3], [0.1, 0.2, 0.7]])
    hits = _protocol.top_k_hits(scores, np.array([0, 2, 0]))
    assert hits["top1"] == [1, 0, 0] and hits["top5"] == [1, 1, 1]
    ours = [dict(top1=[1, 1, 0, 0], image=["a", "a", "b", "b"])]
    theirs = [dict(top1=[0, 0, 0, 0], image=["a", "a", "b", "b"])]
    mean, low, high = _protocol.paired_difference(ours, theirs)
    assert mean == pytest.approx(0.5) and low == pytest.approx(0.0) and high == 1.0
    assert _protocol.interval(ours)[0] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="same test epochs"):
        _protocol.paired_difference(ours, [dict(top1=[0, 0, 0, 0], image=["c"] * 4)])


def test_authors_parameter_table_adds_up():
    """Each total is the sum of the parts above it; the recipe is count_recipe's."""
    from diffusers import UNet2DConditionModel

    from benchmarks.bench_stage2_options import authors_parameter_table, parameter_text
    from mne_synapse.models import count_recipe, install_eeg_processors

    config = dict(block_out_channels=(16, 32), layers_per_block=1, sample_size=8,
                  cross_attention_dim=32, attention_head_dim=8, norm_num_groups=8,
                  down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                  up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"))
    rows = authors_parameter_table(config)
    counts = list(dict(rows).values())
    unet = UNet2DConditionModel.from_config(config)
    install_eeg_processors(unet)
    assert counts[0] == sum(p.numel() for p in UNet2DConditionModel.from_config(
        config).parameters())
    assert counts[1] == count_recipe(unet, "paper")
    assert counts[2] == 32 * 4 * 32 + 4 * 32 + 2 * 32  # Linear(32, 4 x 32) + LayerNorm(32)
    recipe, adapter, stage2, encoder, with_encoder, decoder, everything = counts[1:]
    assert stage2 == recipe + adapter
    assert (encoder, decoder) == (27_590_878, 49_459_914 - 27_590_878)  # their network
    assert with_encoder == stage2 + encoder and everything == with_encoder + decoder
    text = parameter_text(rows)
    assert "152.69" in text and f"{stage2:,}" in text


def test_architecture_rows_build_the_networks_they_name(small_synthetic):
    """bench_architectures: each row's network, its encoder size, and what fit builds."""
    import torch

    from benchmarks import bench_architectures as arch
    from benchmarks._results import STANDALONE
    from mne_synapse.models import OfficialAutoencoder, SynapseAutoencoder

    assert arch.HEADING in STANDALONE  # python -m benchmarks keeps the section

    rows = arch.networks(128, 128)  # the benchmark worlds' 128 channels x 128 samples
    expected = {"ours (tiny, default)": (SynapseAutoencoder, 155_040),  # with band power
                "ours, 5 levels": (SynapseAutoencoder, 289_073),
                "authors' (5 levels)": (OfficialAutoencoder, 274_836),
                "authors' + their targets": (OfficialAutoencoder, 274_836)}
    assert list(rows) == list(expected) and rows["ours (tiny, default)"] == {}
    for row, (cls, n_encoder) in expected.items():
        module = arch.build(rows[row], 128, 128).eval()
        assert type(module) is cls and arch.encoder_parameters(module) == n_encoder
        with torch.no_grad():
            z, x_hat = module(torch.randn(2, 128, 128))
        assert z.shape == (2, 24, 64) and x_hat.shape == (2, 128, 128)
    theirs = rows["authors' + their targets"]
    assert theirs["text_layer"] == "last" and theirs["cosine_axis"] == "tokens"
    assert not theirs["learn_temperature"] and theirs["recon_weight"] == 0.5
    # A fit builds the same network: the authors' row on this data's 128 x 64 epochs.
    epochs = small_synthetic.epochs
    params = arch.networks(128, 64)["authors' + their targets"]
    model = _peers.make_model("SynapseEncoder", "euclidean",
                              dict(augment=True, C=1.0, encoder=params), seed=0, budget=1)
    model.fit(epochs, epochs.metadata.label.to_numpy())
    fitted = model[0].net_.module_
    assert type(fitted) is OfficialAutoencoder and model[0].text_layer == "last"
    assert arch.encoder_parameters(fitted) == arch.encoder_parameters(
        arch.build(params, 128, 64))


def test_stage2_rows_are_read_against_the_same_encoders_decoding():
    """Issue 20's goal row: generated top-1 minus 0.9 x decoding, paired per test epoch."""
    from benchmarks._results import STANDALONE
    from benchmarks.bench_stage2_options import (LEVERS_HEADING, _against_decoding, _rows,
                                                 option_params)

    assert LEVERS_HEADING in STANDALONE  # python -m benchmarks keeps the levers' section

    assert option_params("recipe='lean'") == {"recipe": "lean"}
    assert option_params("defaults") == {}
    image = ["a", "a", "b", "b", "c", "c"]

    def run(hits, trainable):
        return dict(image=image, trainable=trainable, decoding={"top1": [1, 1, 1, 1, 1, 0]},
                    sets={key: ({"10-way top-1": hits}, {}) for key in ("", "guidance_scale")})

    runs = {"defaults": [run([1, 1, 1, 1, 1, 0], 1000)],  # keeps all it decodes
            "recipe='lean'": [run([0, 0, 0, 0, 0, 0], 400)]}  # keeps nothing
    lines = _against_decoding(runs, _rows(runs, list(runs)), "10-way top-1")
    # defaults, defaults resampled with their guidance, lean
    defaults, lean = lines[-3].split(" | "), lines[-1].split(" | ")
    assert defaults[1:3] == ["1,000", "1.00"] and defaults[-1].startswith("met")
    assert lean[1:3] == ["400", "0.00"] and lean[-1].startswith("not met")
    assert lean[3].startswith("-0.750")  # 0 - 0.9 x 5/6


def test_stage1_levers_choose_on_validation_and_store_under_the_defaults(monkeypatch):
    """A lever becomes the default only if it is ahead on validation images with a
    paired interval above zero; the stored key of an encoder fit follows its defaults."""
    from benchmarks.bench_encoder_levers import BASELINE, choose
    from mne_synapse.models import PRESETS

    image = [f"i{k}" for k in range(20) for _ in range(2)]

    def runs(hits_per_seed):
        return [dict(top1=hits, image=image) for hits in hits_per_seed]

    levers = {BASELINE: None, "better": None, "noisy": None}
    ahead = [1.0] * 30 + [0.0] * 10
    behind = [1.0] * 10 + [0.0] * 30
    results = {("val", "w", BASELINE): runs([behind, behind]),
               ("val", "w", "better"): runs([ahead, ahead]),
               ("val", "w", "noisy"): runs([behind, behind])}
    chosen, means, margin = choose(["w"], levers, results)
    assert chosen == "better" and means["better"] == pytest.approx(0.75) and margin[1] > 0
    # Ahead in the mean only by chance (one image): the defaults stay.
    one_more = behind[:10] + [1.0, 1.0] + behind[12:]  # image i5 right as well
    results["val", "w", "better"] = runs([one_more, behind])
    chosen, means, margin = choose(["w"], levers, results)
    assert means["better"] > means[BASELINE] and chosen == BASELINE and margin[1] <= 0

    before = _protocol.encoder_defaults()
    assert _protocol.encoder_defaults() == before
    monkeypatch.setitem(PRESETS, "tiny", {**PRESETS["tiny"], "power_filters": 3})
    assert _protocol.encoder_defaults() != before
