"""
=====================================================
Generalising to a new subject: leave one subject out
=====================================================

Brains differ: the synthetic subjects have their own lead fields, latencies
and gains, like real ones. A model that will be used on a new person should be
evaluated on a person it was not trained on. With ``groups=subject``,
:class:`~sklearn.model_selection.LeaveOneGroupOut` trains on all subjects but
one and tests on the one left out.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from mne.decoding import Vectorizer
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import LeaveOneGroupOut, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mne_synapse import SynapseEncoder
from mne_synapse.datasets import make_synthetic
from mne_synapse.evaluation import leave_one_subject_out

data = make_synthetic(n_classes=5, n_images_per_class=10, n_subjects=3, random_state=0)
epochs = data.epochs
md = epochs.metadata
y, subjects = md.label.to_numpy(), md.subject.to_numpy()

synapse = make_pipeline(SynapseEncoder(max_epochs=15, random_state=0, verbose=False),
                        LogisticRegression(max_iter=1000))
linear = make_pipeline(Vectorizer(), StandardScaler(), LogisticRegression(C=0.01, max_iter=1000))
eeg = epochs.get_data()[:, :, ::4]  # the linear model on 4x decimated EEG

# %%
# New subject, same images
# ------------------------
# Every subject saw the same images, so the left-out subject's test trials
# show images the model was trained on (through other brains).
#
# The encoder's alignment layer whitens each subject's EEG with that subject's
# own covariance. A subject it has not seen gets the subject-agnostic whitener
# of all training epochs (with a warning), until
# :meth:`~mne_synapse.SynapseEncoder.calibrate` learns its own from its EEG
# alone, without labels. The score is taken both ways.
import warnings

logo = LeaveOneGroupOut()
rows = []
for train, test in logo.split(eeg, y, groups=subjects):
    model = clone(synapse).fit(epochs[train], y[train])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "not calibrated": we know
        uncalibrated = model.score(epochs[test], y[test])
    model[0].calibrate(epochs[test])  # the new subject's EEG only, no labels
    rows.append({"SYNAPSE+LR uncalibrated": uncalibrated,
                 "SYNAPSE+LR calibrated": model.score(epochs[test], y[test])})
scores = pd.DataFrame(rows, index=pd.Index(np.unique(subjects), name="left-out subject"))
scores["linear"] = cross_val_score(linear, eeg, y, groups=subjects, cv=logo)
print(scores.round(3).to_string())

# %%
# New subject *and* new images
# ----------------------------
# The stricter question: train on the ``'train'`` images of the other
# subjects, test on the ``'test'`` images of the left-out one.
# :func:`mne_synapse.evaluation.leave_one_subject_out` runs these folds on
# Epochs in one call, calibrating the new subject's alignment on its test EEG
# (no labels), with the chance level (and, by default, a shuffled-label
# control). For other models, :class:`~sklearn.model_selection.LeaveOneGroupOut`
# folds filtered by the image-disjoint ``split`` column do the same.
is_test = (md.split == "test").to_numpy()
strict_cv = [(train[~is_test[train]], test[is_test[test]])
             for train, test in logo.split(eeg, y, groups=subjects)]
loso = leave_one_subject_out(synapse, epochs, y, shuffled_control=False)
strict = pd.DataFrame({
    "SYNAPSE+LR calibrated": loso.score.to_numpy(),
    "linear": cross_val_score(linear, eeg, y, cv=strict_cv),
}, index=scores.index)
print(strict.round(3).to_string())

# %%
# Both settings, per left-out subject, with the chance level.
fig, ax = plt.subplots(figsize=(6, 2.8), layout="constrained")
width = 0.2
for i, (setting, table) in enumerate((("same images", scores), ("new images", strict))):
    for j, model in enumerate(["SYNAPSE+LR calibrated", "linear"]):
        ax.bar(np.arange(len(table)) + (2 * i + j - 1.5) * width, table[model], width,
               label=f"{model}, {setting}", color=f"C{j}", alpha=1 if i == 0 else 0.5)
ax.axhline(1 / len(data.class_names), ls="--", color="k", label="chance")
ax.set(xticks=range(len(scores)), xticklabels=[f"subject {s}" for s in scores.index],
       ylabel="accuracy", ylim=(0, 1))
ax.legend(fontsize=7, ncols=2, loc="upper left")
