"""Torch modules of SYNAPSE (plain ``nn.Module`` s; only shipped configs are read).

The Stage-1 autoencoders are braindecode models (``EEGModuleMixin``), and
braindecode takes seconds to import; names are therefore imported when first
used, so Stage 2 (adapter, attention, recipes) does not pay for it.
"""

import importlib

_LAZY = {
    "EEGAdapter": "adapter",
    "EEGAttnProcessor": "attention",
    "install_eeg_processors": "attention",
    "PRESETS": "hybrid_autoencoder",
    "SynapseAutoencoder": "hybrid_autoencoder",
    "OfficialAutoencoder": "official_autoencoder",
    "OfficialEncoder": "official_autoencoder",
    "OfficialDecoder": "official_autoencoder",
    "ARCHITECTURES": "presets",
    "build_autoencoder": "presets",
    "count_parameters": "_checks",
    "RECIPES": "recipes",
    "apply_recipe": "recipes",
    "count_recipe": "recipes",
    "UNET_CONFIGS": "sd_configs",
    "load_unet_config": "sd_configs",
}

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'mne_synapse.models' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
