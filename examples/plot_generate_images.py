"""
===========================================
From EEG to images with the two stages
===========================================

Stage 2 of SYNAPSE, :class:`~mne_synapse.EEGImageGenerator`, freezes a
fitted :class:`~mne_synapse.SynapseEncoder` and finetunes a Stable Diffusion
U-Net to draw the image an EEG epoch saw: an adapter turns ``Z_latent`` into
4 extra tokens, and new key/value projections in every cross-attention read
them next to ``Z_latent`` itself (see :doc:`/method`).

Stable Diffusion 2.1 needs a GPU, so this example runs in the *miniature
world* shipped with the package: a 5 M-parameter latent diffusion model
(``base_model='tiny'``) pretrained on the synthetic stimuli, used exactly like
SD 2.1 (same noise schedule, v-prediction, diffusers pipeline).
"""

# %%
import numpy as np

from mne_synapse import EEGImageGenerator, SynapseEncoder
from mne_synapse.datasets import make_synthetic
from mne_synapse.viz import plot_generated_grid, plot_training_curves

data = make_synthetic(n_classes=5, n_images_per_class=20, n_subjects=2, random_state=0)
md = data.epochs.metadata
train = data.epochs[md.split != "test"]
test = data.epochs[md.split == "test"]

# %%
# Stage 1, then Stage 2
# ---------------------
# The generator finetunes the U-Net's cross-attention, time-embedding and
# ``norm2`` parameters plus the adapter (the paper's recipe): a sixth of this
# tiny U-Net; on SD 2.1 the same recipe trains about 108 M of 866 M parameters.
encoder = SynapseEncoder(max_epochs=30, random_state=0, verbose=False).fit(train)
generator = EEGImageGenerator(encoder=encoder, base_model="tiny", max_steps=300,
                              batch_size=16, random_state=0, verbose=False).fit(train)
print(f"finetuned {generator.n_trainable_params_:,} parameters "
      f"({100 * generator.trainable_fraction_:.1f}% of the U-Net)")
fig = plot_training_curves(generator, show=False)

# %%
# Images generated from held-out EEG
# ----------------------------------
# One held-out epoch per class: the left column is the image the subject saw
# (never used in training), the others are drawn from that epoch's EEG alone,
# with different noise seeds. Classifier-free guidance contrasts the EEG
# context with an all-zeros one.
rows = [np.flatnonzero(test.metadata.label.to_numpy() == k)[0] for k in range(5)]
images = generator.generate(test[rows], n_images=3, random_state=0, output_type="np")
stimuli = data.images[test.metadata.image_index.to_numpy()[rows]]
fig = plot_generated_grid(stimuli, images, titles=list(test.metadata.class_name.iloc[rows]),
                          show=False)

# %%
# ``generate`` returns PIL images by default (``output_type='pil'``), ready to
# save. :func:`mne_synapse.metrics.n_way_top_k` and friends score them; the
# command ``mne-synapse evaluate`` does so with a shuffled-EEG control.
pil_images = generator.generate(test[:2], n_images=1, random_state=0)
print(pil_images[0][0])
