"""Torch modules of SYNAPSE (plain ``nn.Module`` s, no I/O)."""

from .hybrid_autoencoder import PRESETS, SynapseAutoencoder, count_parameters

__all__ = ["PRESETS", "SynapseAutoencoder", "count_parameters"]
