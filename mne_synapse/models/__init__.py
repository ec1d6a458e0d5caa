"""Torch modules of SYNAPSE (plain ``nn.Module`` s; only shipped configs are read)."""

from .adapter import EEGAdapter
from .attention import EEGAttnProcessor, install_eeg_processors
from .hybrid_autoencoder import PRESETS, SynapseAutoencoder, count_parameters
from .recipes import RECIPES, apply_recipe, count_recipe
from .sd_configs import UNET_CONFIGS, load_unet_config

__all__ = ["PRESETS", "RECIPES", "UNET_CONFIGS", "EEGAdapter", "EEGAttnProcessor",
           "SynapseAutoencoder", "apply_recipe", "count_parameters", "count_recipe",
           "install_eeg_processors", "load_unet_config"]
