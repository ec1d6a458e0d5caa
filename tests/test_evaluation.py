"""Leave-one-subject-out evaluation helper."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from mne_synapse.evaluation import leave_one_subject_out, permute_stimuli


def _flat(epochs):
    return epochs.get_data()[:, :, ::4].reshape(len(epochs), -1)


def _linear():
    return make_pipeline(FunctionTransformer(_flat), StandardScaler(),
                         LogisticRegression(C=0.01, max_iter=500))


def test_folds_are_subject_and_image_disjoint(small_synthetic):
    epochs = small_synthetic.epochs
    md = epochs.metadata
    seen = []

    class Spy(LogisticRegression):
        def fit(self, X, y):
            seen.append(("fit", len(X)))
            return super().fit(X, y)

    model = make_pipeline(FunctionTransformer(_flat), Spy(max_iter=200))
    scores = leave_one_subject_out(model, epochs, md.label, shuffled_control=False)
    assert sorted(scores.subject) == sorted(md.subject.unique())
    for _, row in scores.iterrows():
        others = md[md.subject != row.subject]
        assert row.n_train == (others.split != "test").sum()
        assert row.n_test == ((md.subject == row.subject) & (md.split == "test")).sum()
    assert [n for _, n in seen] == list(scores.n_train)


def test_scores_beat_chance_and_the_shuffled_control(small_synthetic):
    import mne

    # Class templates shared by the subjects, so that a linear model transfers.
    md = small_synthetic.epochs.metadata
    rng = np.random.default_rng(0)
    templates = rng.standard_normal((md.label.max() + 1, 4, 32))
    data = templates[md.label] + 2.0 * rng.standard_normal((len(md), 4, 32))
    info = mne.create_info(4, 100.0, "eeg")
    epochs = mne.EpochsArray(data, info, metadata=md, verbose=False)
    scores = leave_one_subject_out(_linear(), epochs, epochs.metadata.label)
    assert {"score", "chance", "shuffled"} <= set(scores.columns)
    assert np.all((scores.chance > 0) & (scores.chance < 1))
    assert scores.score.mean() > scores.chance.mean() + 0.1
    assert scores.shuffled.mean() < scores.score.mean()


def test_permute_stimuli_moves_the_stimuli_not_the_eeg(small_synthetic):
    epochs = small_synthetic.epochs
    md = epochs.metadata
    shuffled = permute_stimuli(epochs, random_state=0)
    new = shuffled.metadata
    np.testing.assert_array_equal(shuffled.get_data(), epochs.get_data())
    np.testing.assert_array_equal(new.subject, md.subject)  # kept with the EEG
    assert (new.image_id != md.image_id).mean() > 0.8
    # Each epoch's stimulus columns come from one other epoch, all together.
    rows = {tuple(r) for r in md[["image_id", "label", "caption"]].itertuples(index=False)}
    assert {tuple(r) for r in new[["image_id", "label", "caption"]].itertuples(index=False)} \
        <= rows
    assert sorted(new.image_id) == sorted(md.image_id)
    np.testing.assert_array_equal(shuffled.events[:, 2], new.label.to_numpy() + 1)
    assert list(new.dtypes) == list(md.dtypes)
    assert (epochs.metadata.image_id == md.image_id).all()  # the original is untouched
    again = permute_stimuli(epochs, random_state=0).metadata
    assert (again.image_id == new.image_id).all()
    with pytest.raises(TypeError, match="metadata"):
        permute_stimuli(epochs.get_data())
    with pytest.raises(ValueError, match="not in the metadata"):
        permute_stimuli(epochs, keep=("session",))


def test_bad_inputs(small_synthetic):
    epochs = small_synthetic.epochs
    y = epochs.metadata.label
    with pytest.raises(TypeError, match="mne.Epochs"):
        leave_one_subject_out(_linear(), epochs.get_data(), y)
    with pytest.raises(ValueError, match="no 'participant' column"):
        leave_one_subject_out(_linear(), epochs, y, subject_column="participant")
    with pytest.raises(ValueError, match="3 labels"):
        leave_one_subject_out(_linear(), epochs, y[:3])
    with pytest.raises(ValueError, match="at least 2 subjects"):
        one = epochs[(epochs.metadata.subject == epochs.metadata.subject.iloc[0]).to_numpy()]
        leave_one_subject_out(_linear(), one, one.metadata.label)
    with pytest.raises(ValueError, match="test_split value"):
        leave_one_subject_out(_linear(), epochs, y, test_split="holdout")


class _EmbeddingEncoder:
    """Stand-in encoder whose transform is a (noisy) embedding of each epoch's stimulus."""

    def __init__(self, embed, noise, seed=0):
        self.embed, self.noise, self.rng = embed, noise, np.random.default_rng(seed)

    def transform(self, epochs):
        z = self.embed(list(epochs.metadata.image_path))
        return z + self.noise * self.rng.standard_normal(z.shape)


def _embed(paths):
    # What a CLIP image tower would give: a class direction (the class is in the
    # synthetic file name, synth_<class>_<image>.png) plus an image-specific part.
    def vector(path):
        name = path.rsplit("/", 1)[-1]
        class_vec = np.random.default_rng(int(name.split("_")[1])).standard_normal(16)
        image_vec = np.random.default_rng(1000 + int(name.split("_")[2][:4])).standard_normal(16)
        return class_vec + 0.3 * image_vec
    return np.stack([vector(p) for p in paths])


def test_zero_shot_perfect_and_random_encoders(small_synthetic):
    from mne_synapse.evaluation import zero_shot

    epochs = small_synthetic.epochs
    n_images = epochs.metadata.image_id.nunique()
    n_classes = epochs.metadata.label.nunique()
    perfect = zero_shot(_EmbeddingEncoder(_embed, 0.0), epochs, _embed)
    assert list(perfect.index) == ["retrieval", "classification"]
    assert perfect.loc["retrieval", "n_way"] == n_images
    assert perfect.loc["classification", "n_way"] == n_classes
    assert perfect.loc["retrieval", "top1"] == 1.0
    assert perfect.loc["classification", "top1"] == 1.0
    np.testing.assert_allclose(perfect.chance, [1 / n_images, 1 / n_classes])
    assert np.all(perfect.shuffled < 0.5)
    noise = zero_shot(_EmbeddingEncoder(_embed, 100.0), epochs, _embed)
    assert abs(noise.loc["retrieval", "top1"] - 1 / n_images) < 0.1
    assert np.isnan(noise.loc["classification", "top5"])  # 5-way: top-5 is always 1


def test_zero_shot_needs_images_and_classes(small_synthetic):
    from mne_synapse.evaluation import zero_shot

    epochs = small_synthetic.epochs
    with pytest.raises(ValueError, match="no 'stimulus' column"):
        zero_shot(_EmbeddingEncoder(_embed, 0.0), epochs, _embed, image_column="stimulus")
    one = epochs[(epochs.metadata.label == 0).to_numpy()]
    with pytest.raises(ValueError, match="at least 2 classes"):
        zero_shot(_EmbeddingEncoder(_embed, 0.0), one, _embed)


def test_the_left_out_subject_is_calibrated_unlabelled(small_synthetic):
    """With calibrate=True the first step learns the new subject's alignment from its
    test epochs (EEG only, no labels) before scoring; with False it never does."""
    from sklearn.base import BaseEstimator, TransformerMixin

    calls = []

    class Calibrated(TransformerMixin, BaseEstimator):
        def fit(self, X, y=None):
            return self

        def calibrate(self, X):
            calls.append(sorted(set(X.metadata.subject)))
            return self

        def transform(self, X):
            return _flat(X)

    epochs = small_synthetic.epochs
    model = make_pipeline(Calibrated(), LogisticRegression(max_iter=200))
    scores = leave_one_subject_out(model, epochs, epochs.metadata.label,
                                   shuffled_control=False)
    assert calls == [[s] for s in scores.subject]
    calls.clear()
    leave_one_subject_out(model, epochs, epochs.metadata.label, shuffled_control=False,
                          calibrate=False)
    assert calls == []
