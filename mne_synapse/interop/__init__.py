"""Bridges to other people's files: the authors' checkpoints -> ours, export to stock diffusers.

- :func:`~mne_synapse.interop.official.load_official_stage1` reads the authors'
  (CVMILab-CUK/synapse) Stage-1 files (the released ``EEGEncoder_BLIP2_*.pth``
  encoder, or their trainer's autoencoder checkpoint) into
  :class:`~mne_synapse.models.official_autoencoder.OfficialEncoder` /
  :class:`~mne_synapse.models.official_autoencoder.OfficialAutoencoder`,
  strictly: every missing, unexpected or mis-shaped parameter is named.

- :func:`~mne_synapse.interop.official_stage2.load_official_stage2` reads a
  ``checkpoint-N/`` folder of their Stage-2 trainer (U-Net with their IP
  processors, EMA U-Net, adapter) onto a base Stable Diffusion, every tensor
  under its own name; ``EEGImageGenerator.from_official`` builds a generator
  from it.

Their ``.pth`` files are read with ``torch.load(weights_only=True)``: tensors and
plain containers only, never arbitrary Python objects; their Stage-2 files are
safetensors.
"""
