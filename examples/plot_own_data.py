"""
==================================================
Your own experiment: from mne.Epochs to images
==================================================

A lab's visual experiment, as it comes out of MNE: 64 EEG channels at 250 Hz,
0.5 s epochs in volts, and in ``epochs.metadata`` the stimulus file and the
subject of each trial. Here the recording is simulated and the stimuli are
crops of two photographs; with yours, start at :ref:`the metadata
<own-metadata>`. :doc:`/own_data` lists everything the estimators need.
"""

# %%
import tempfile
import warnings
from pathlib import Path

import mne
import numpy as np
import pandas as pd
from PIL import Image
from sklearn.datasets import load_sample_images

from mne_synapse import EEGImageGenerator, SynapseEncoder
from mne_synapse.viz import plot_generated_grid

rng = np.random.default_rng(0)
folder = Path(tempfile.mkdtemp())
(folder / "stimuli").mkdir()

# 12 stimuli in 4 classes: 128 px PNG files, as a lab keeps them.
photos = load_sample_images().images
stimulus_files = []
for k in range(12):
    top, left = rng.integers(0, 200), rng.integers(0, 400)
    crop = photos[k % 2][top:top + 200, left:left + 200]
    stimulus_files.append(folder / "stimuli" / f"image_{k:02d}.png")
    Image.fromarray(crop).resize((128, 128)).save(stimulus_files[-1])

# 3 subjects saw each image twice: a class-specific response under each
# subject's own mixing of the sources at the scalp, plus noise, in volts.
info = mne.create_info(mne.channels.make_standard_montage("biosemi64").ch_names,
                       sfreq=250.0, ch_types="eeg")
erp = np.sin(np.linspace(0, 3 * np.pi, 125)) * np.hanning(125)
topographies = rng.standard_normal((4, 64))
data, image_of_epoch, subject_of_epoch = [], [], []
for subject in ("sub-01", "sub-02", "sub-03"):
    mixing = np.eye(64) + 0.3 * rng.standard_normal((64, 64))
    for image in np.repeat(np.arange(12), 2):
        signal = np.outer(topographies[image // 3], erp) + rng.standard_normal((64, 125))
        data.append(1e-5 * mixing @ signal)
        image_of_epoch.append(image)
        subject_of_epoch.append(subject)

# %%
# .. _own-metadata:
#
# The metadata
# ------------
# One row per epoch: the stimulus file (``image_path``, required), its class
# (``class_name``: the caption becomes "a photo of a class 0") and the subject.
image_of_epoch = np.array(image_of_epoch)
metadata = pd.DataFrame(dict(
    image_path=[str(stimulus_files[i]) for i in image_of_epoch],
    class_name=[f"class {i // 3}" for i in image_of_epoch],
    subject=subject_of_epoch,
))
epochs = mne.EpochsArray(np.array(data), info, tmin=0.0, metadata=metadata, verbose=False)
epochs.set_montage("biosemi64")
print(epochs)

# %%
# Stage 1 on two subjects
# -----------------------
# The encoder learns one alignment (whitener) per subject, and a
# subject-agnostic one from all training epochs.
md = epochs.metadata
train = epochs[md.subject != "sub-03"]
encoder = SynapseEncoder(max_epochs=10, random_state=0, verbose=False).fit(train)
print(sorted(encoder.whiteners_))

# %%
# A new subject
# -------------
# ``sub-03`` was not seen in fit. Uncalibrated, its epochs get the
# subject-agnostic whitener, and the encoder warns. Calibrated once from its
# own epochs (no labels), it is known to every later call: an epoch's
# embedding is then the same alone, in a batch, or as an array with its
# subject.
new = epochs[md.subject == "sub-03"]
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    encoder.transform(new[:1])
print(caught[0].message)

encoder.calibrate(new)
z_batch = encoder.transform(new)
z_alone = encoder.transform(new[5:6])
z_array = encoder.transform(new.get_data()[5:6], subjects="sub-03")
print(np.abs(z_alone - z_batch[5:6]).max(), np.abs(z_array - z_batch[5:6]).max())

# %%
# Stage 2, and where the miniature models stop
# --------------------------------------------
# The default base model, ``'tiny'``, knows only the synthetic shapes of
# :func:`~mne_synapse.datasets.make_synthetic`. Given photographs it warns, and
# draws coloured blobs, at its own size (32 px): the pipeline runs, but only
# the paper's models (ViT-H-14 and Stable Diffusion 2.1, on a GPU) can draw
# these stimuli. See :doc:`/own_data` and the CVPR40 recipe.
generator = EEGImageGenerator(encoder=encoder, max_steps=20, batch_size=8,
                              num_inference_steps=10, random_state=0, verbose=False)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    generator.fit(train)
print(caught[0].message)

first = [list(new.metadata.image_path).index(str(f)) for f in stimulus_files[::3]]
images = generator.generate(new[first], n_images=2, output_type="np", random_state=0)
stimuli = np.stack([np.asarray(Image.open(stimulus_files[i]).resize((32, 32)))
                    for i in image_of_epoch[md.subject == "sub-03"][first]])
fig = plot_generated_grid(stimuli, images, titles=list(new.metadata.class_name.iloc[first]))
