"""Stage-1 autoencoders by preset name: our hybrid network at two sizes, the authors' network.

``SynapseEncoder(preset=...)`` builds its network here, and so does anyone who
wants the same network without the estimator.
"""

from .hybrid_autoencoder import SynapseAutoencoder
from .official_autoencoder import OfficialAutoencoder

# The class each preset builds. "paper" is always the authors' network (in the
# configuration of their released encoder); ours keeps its own names.
ARCHITECTURES = {"tiny": SynapseAutoencoder, "hybrid": SynapseAutoencoder,
                 "paper": OfficialAutoencoder}


def build_autoencoder(preset, **kwargs):
    """Build the Stage-1 autoencoder of a preset.

    Parameters
    ----------
    preset : ``'tiny'`` | ``'hybrid'`` | ``'paper'``
        ``'tiny'`` and ``'hybrid'``: our :class:`SynapseAutoencoder` at the
        sizes of :data:`~mne_synapse.models.PRESETS` (the miniature world's,
        and full size: 77 x 1024 latent). ``'paper'``: the authors' network,
        :class:`~mne_synapse.models.OfficialAutoencoder`, by default exactly
        the configuration of their released encoder (128 x 440 EEG, 77 x 1024
        latent, ``n_layer=2``, ``n_head=64``).
    **kwargs
        Constructor arguments of that class (sizes, ``n_chans``, ``n_times``...).

    Returns
    -------
    module : SynapseAutoencoder | OfficialAutoencoder
        The network, with fresh weights; ``forward`` returns ``(z, x_hat)``.
    """
    if preset not in ARCHITECTURES:
        raise ValueError(f"Unknown preset {preset!r}; known presets: {sorted(ARCHITECTURES)}.")
    if ARCHITECTURES[preset] is OfficialAutoencoder:
        return OfficialAutoencoder(**kwargs)
    return SynapseAutoencoder.from_preset(preset, **kwargs)
