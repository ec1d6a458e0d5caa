"""
==========================================================
Cross-validated decoding, next to a braindecode network
==========================================================

:class:`~mne_synapse.SynapseEncoder` is a scikit-learn transformer, so it fits
in a :class:`~sklearn.pipeline.Pipeline` and in :func:`~sklearn.model_selection.cross_val_score`
like any MNE decoding step. Here a logistic regression on its CLIP-space
embedding decodes the stimulus class, next to braindecode's
:class:`~braindecode.models.ShallowFBCSPNet` trained end to end on the same
folds, a linear model on the raw EEG, and the chance level.

The folds are grouped by **image**: every repetition of an image is on the
same side of the split. Folds that share images between training and test
measure how well a model recognises trials of images it has seen (on CVPR40,
whose blocks of one class also share slow drifts, this inflates accuracy; see
:doc:`/data`).
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from braindecode import EEGClassifier
from braindecode.models import ShallowFBCSPNet
from mne.decoding import Vectorizer
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mne_synapse import SynapseEncoder
from mne_synapse.datasets import make_synthetic

data = make_synthetic(n_classes=5, n_images_per_class=8, n_subjects=2, random_state=0)
epochs = data.epochs
y = epochs.metadata.label.to_numpy()
groups = epochs.metadata.image_id.to_numpy()
cv = GroupKFold(n_splits=4)
print(f"{len(epochs)} epochs of {len(set(groups))} images; 4 folds of whole images")

# %%
# The models
# ----------
# The SYNAPSE pipeline takes :class:`mne.Epochs`: the encoder reads each
# epoch's stimulus image from the metadata to align with CLIP while it fits
# (at prediction time it needs only the EEG). braindecode's network takes a
# float32 array in microvolts, the linear model any array.
eeg_uv = (epochs.get_data() * 1e6).astype(np.float32)
models = {
    "SynapseEncoder + LR": (epochs, make_pipeline(
        SynapseEncoder(max_epochs=20, random_state=0, verbose=False),
        LogisticRegression(max_iter=1000))),
    "ShallowFBCSPNet": (eeg_uv, EEGClassifier(
        ShallowFBCSPNet, optimizer=torch.optim.AdamW, lr=1e-3, batch_size=32,
        max_epochs=30, train_split=None, verbose=0)),
    "linear on raw EEG": (eeg_uv[:, :, ::4], make_pipeline(
        Vectorizer(), StandardScaler(), LogisticRegression(C=0.01, max_iter=1000))),
    "chance (most frequent)": (eeg_uv, DummyClassifier(strategy="most_frequent")),
}

# %%
# Cross-validate
# --------------
torch.manual_seed(0)
scores = pd.DataFrame({
    name: cross_val_score(model, X, y, groups=groups, cv=cv)
    for name, (X, model) in models.items()
})
print(scores.describe().loc[["mean", "std"]].round(3).T)

# %%
# Each dot is a fold; the dashed line is ``1 / n_classes``.
fig, ax = plt.subplots(figsize=(6, 2.6), layout="constrained")
for i, name in enumerate(scores):
    ax.scatter(scores[name], np.full(len(scores), i), color="k", s=15)
    ax.plot([scores[name].mean()] * 2, [i - 0.3, i + 0.3], color="C0", lw=3)
ax.axvline(1 / len(data.class_names), ls="--", color="C3", label="chance")
ax.set(yticks=range(scores.shape[1]), yticklabels=scores.columns,
       xlabel="accuracy on held-out images", xlim=(0, 1))
ax.legend(loc="lower right")
