"""
=================================================================
CVPR40 with the paper's models: ViT-H-14 and Stable Diffusion 2.1
=================================================================

The full recipe of the paper on real data. **This example is not run when the
documentation builds**: it needs the CVPR40 files and ImageNet stimuli (see
:doc:`/data`), about 10 GB of model downloads, and a GPU:

- Stage 1 (the ``'paper'`` encoder, about 55 M parameters, with OpenCLIP
  ViT-H-14 targets) trains on one GPU with 16 GB or more; the CLIP embeddings of
  the 2,000 stimuli and their captions are computed once and cached.
- Stage 2 finetunes about 108 M of SD 2.1's 866 M U-Net parameters at 512 x 512
  pixels; with fp16 and gradient checkpointing it fits one 24 GB GPU (the paper's
  setting), with batch 8 and 4 accumulation steps. Expect hours to a day of
  training on one GPU; :doc:`/distributed` spreads it over several.

On a CPU the same code runs in the miniature world (``clip_model='tiny'``,
``base_model='tiny'``), as in the other examples.
"""

# %%
# Load CVPR40
# -----------
# The splits file is image-disjoint: no test image appears in training (the
# block design of CVPR40 makes anything else overstate accuracy; see
# :ref:`block-design`). ``subjects=[4]`` would give the single-subject setting
# most papers report next to all subjects.
import numpy as np
from PIL import Image

from mne_synapse import EEGImageGenerator, SynapseEncoder
from mne_synapse.datasets import load_cvpr40
from mne_synapse.viz import plot_generated_grid

epochs = load_cvpr40("cvpr40/eeg_5_95_std.pth", image_root="cvpr40/imagenet40",
                     splits_fname="cvpr40/block_splits_by_image_all.pth")
md = epochs.metadata
train = epochs[md.split.isin(["train", "val"])]
test = epochs[md.split == "test"]
print(epochs)  # about 11,900 epochs of 128 channels x 440 samples (20-460 ms)

# %%
# Stage 1: the CLIP-aligned encoder
# ---------------------------------
# The authors' network and training (``SynapseEncoder.paper()``: AdamW, lr 1e-4,
# batch 32, up to 1000 epochs, clipping at 1, ViT-H-14 targets, their losses).
# ``SynapseEncoder.from_official("EEGEncoder_BLIP2_69000.pth")`` would instead
# start from their released weights. Captions: CVPR40 has none, so the
# class wnid fills ``caption_template``; add a ``caption`` column to
# ``epochs.metadata`` (the authors used BLIP-2 captions) for richer targets.
# A validation set of held-out *images* stops training when it stops improving.
encoder = SynapseEncoder.paper(
    validation_fraction=0.1, early_stopping=50, device="cuda", random_state=0,
    verbose=True,
).fit(train)
encoder.save("synapse-cvpr40/encoder")

# %%
# Stage 2: adapter + finetuning of SD 2.1
# ---------------------------------------
# The paper's recipe: the cross-attentions, time embeddings and ``norm2``
# layers of the U-Net plus the adapter are trained with AdamW (lr 2e-5), batch
# 8 x 4 accumulation, 100 warm-up steps, min-SNR weighting (gamma 0.5),
# condition dropout 0.1 and an EMA, in fp16 with gradient checkpointing.
generator = EEGImageGenerator(
    encoder=encoder, base_model="stabilityai/stable-diffusion-2-1", recipe="paper",
    max_steps=20000, batch_size=8, grad_accumulation=4, lr=2e-5, warmup_steps=100,
    snr_gamma=0.5, condition_dropout=0.1, ema_decay=0.9999,
    mixed_precision="fp16", gradient_checkpointing=True,
    num_inference_steps=250, guidance_scale=7.5, device="cuda", random_state=0,
    verbose=True,
).fit(train)
print(f"finetuned {generator.n_trainable_params_:,} parameters")
generator.save("synapse-cvpr40/generator")  # the trained weights only, not SD 2.1

# %%
# Generate and look
# -----------------
# DDIM with 250 steps and guidance 7.5, 5 images per EEG epoch (the paper's
# sampling). One held-out epoch per class for the first 8 classes:
test_rows = np.flatnonzero(md.split == "test")
rows = test_rows[np.unique(md.label.to_numpy()[test_rows], return_index=True)[1][:8]]
images = generator.generate(epochs[rows], n_images=5, random_state=0, output_type="np")
stimuli = [Image.open(path).convert("RGB") for path in md.image_path.iloc[rows]]
fig = plot_generated_grid(stimuli, images, titles=list(md.class_name.iloc[rows]))

# %%
# Score
# -----
# ``mne-synapse evaluate --generator synapse-cvpr40/generator`` computes the
# n-way top-1 accuracy with a shuffled-EEG control; ``mne_synapse.metrics``
# has FID, KID, Inception Score, CLIP similarity and SSIM with any feature
# extractor (the standard Inception-v3 needs torch-fidelity's weights).
# The same two stages from a shell, with the options in a TOML file, are shown
# in :doc:`/cli`.
