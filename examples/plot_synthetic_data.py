"""
===================================
The synthetic EEG-image data set
===================================

:func:`mne_synapse.datasets.make_synthetic` draws stimuli (a shape and a colour
per class, varying in texture, position, size and rotation) and simulates the
EEG of several subjects seeing them. Here we look at the stimuli and at the
evoked response of one class.
"""

# %%
import matplotlib.pyplot as plt

from mne_synapse.datasets import make_synthetic

data = make_synthetic(n_subjects=2)
print(data.epochs)
print(data.epochs.metadata[["subject", "class_name", "image_id", "caption", "split"]].head())

# %%
# One stimulus per class
fig, axes = plt.subplots(1, len(data.class_names), figsize=(12, 1.6))
for k, ax in enumerate(axes):
    ax.imshow(data.images[data.labels == k][0])
    ax.set_title(data.class_names[k], fontsize=7)
    ax.axis("off")

# %%
# The evoked response to the first class (a visual ERP between 80 and 400 ms)
evoked = data.epochs[data.epochs.metadata.label == 0].average()
evoked.plot_joint(times=[0.1, 0.17, 0.3])
