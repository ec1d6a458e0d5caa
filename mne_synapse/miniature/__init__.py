"""The miniature world: a tiny CLIP and a tiny Stable Diffusion for the synthetic data.

Real CLIP and Stable Diffusion weights cannot be downloaded everywhere (CI,
laptops offline), so the synthetic data set brings its own, small enough for a
CPU and shipped in ``weights/``:

- :mod:`~mne_synapse.miniature.tiny_clip`: a 0.3 M-parameter OpenCLIP
  (``build_tiny_clip``), what ``CLIPEmbedder('tiny', 'synthetic')`` loads;
- :mod:`~mne_synapse.miniature.tiny_sd`: a 5 M-parameter latent diffusion model
  (``build_tiny_sd``), what ``EEGImageGenerator(base_model='tiny')`` finetunes;
- :mod:`~mne_synapse.miniature.train_tiny_clip` and
  :mod:`~mne_synapse.miniature.train_tiny_sd`: the programs that made the
  shipped weights (``python -m mne_synapse.miniature.train_tiny_sd``).
"""
