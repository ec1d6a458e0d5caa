"""
=========================================================
Fit the Stage-1 encoder and look at its latent space
=========================================================

:class:`~mne_synapse.SynapseEncoder` maps each EEG epoch to ``Z_latent``, a
sequence of tokens aligned with CLIP (the caption's text states and the
stimulus' image embedding). Here we fit it on the training images of the
synthetic data set and embed epochs of *held-out* images: if the encoder
learned what the stimuli look like rather than which trials it saw, epochs of
one class gather together (the paper's Figs. 4-5 show the same on CVPR40).
"""

# %%
# Data: 5 classes of procedurally drawn stimuli, 2 simulated subjects. The
# ``split`` column is image-disjoint: no ``'test'`` image is in ``'train'``.
from mne_synapse import SynapseEncoder
from mne_synapse.datasets import make_synthetic
from mne_synapse.metrics import neighbour_agreement
from mne_synapse.viz import plot_latent_tsne, plot_training_curves

data = make_synthetic(n_classes=5, n_images_per_class=20, n_subjects=2, random_state=0)
epochs = data.epochs
train = epochs[epochs.metadata.split != "test"]
test = epochs[epochs.metadata.split == "test"]
print(f"{len(train)} training epochs, {len(test)} held-out epochs of "
      f"{test.metadata.image_id.nunique()} images never seen in training")

# %%
# Fit the encoder
# ---------------
# The ``'tiny'`` preset and the miniature world's CLIP run on a laptop CPU;
# ``SynapseEncoder.paper()`` is the authors' model and training (GPU). The
# loss is the sum of reconstruction, CLIP-text alignment and CLIP-image
# contrastive terms; its curve shows the training converging.
encoder = SynapseEncoder(max_epochs=30, random_state=0, verbose=False).fit(train)
fig = plot_training_curves(encoder, show=False)

# %%
# The latent space of held-out images
# -----------------------------------
# :meth:`~mne_synapse.SynapseEncoder.transform` returns the token mean of
# ``Z_latent``, a point in CLIP space. Each panel is its own t-SNE: all
# subjects together (markers tell the subject), then each subject alone.
latents = encoder.transform(test)
md = test.metadata
fig = plot_latent_tsne(latents, md.label, subjects=md.subject,
                       class_names=data.class_names, perplexity=10, show=False)

# %%
# For comparison, the same t-SNE on the raw EEG of those epochs.
fig = plot_latent_tsne(test.get_data().reshape(len(test), -1), md.label, subjects=md.subject,
                       class_names=data.class_names, perplexity=10, show=False)

# %%
# A number rather than a picture: the share of each epoch's 5 nearest
# neighbours (cosine) that belong to its class. Neighbours showing the *same
# image* are excluded, so repeated trials of one image cannot inflate it.
for name, x in (("encoder latents", latents), ("raw EEG", test.get_data())):
    score = neighbour_agreement(x, md.label, n_neighbors=5, groups=md.image_id)
    print(f"{name:>15}: {score}")
