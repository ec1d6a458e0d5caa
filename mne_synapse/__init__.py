"""mne-synapse: EEG-to-image synthesis (SYNAPSE) for MNE and Braindecode.

Heavy libraries (torch, diffusers, open_clip, braindecode) are imported only
when the object that needs them is first used, so ``import mne_synapse`` stays
fast.
"""

import importlib

__version__ = "0.1.0.dev0"

_LAZY = {
    "datasets": "mne_synapse.datasets",
    "models": "mne_synapse.models",
    "losses": "mne_synapse.losses",
    "SynapseEncoder": "mne_synapse.encoder",
    "EEGImageGenerator": "mne_synapse.generator",
    "metrics": "mne_synapse.metrics",
    "viz": "mne_synapse.viz",
    "evaluation": "mne_synapse.evaluation",
    "CLIPEmbedder": "mne_synapse.clip",
    "get_cache_dir": "mne_synapse.utils",
    "PAPER_STAGE1": "mne_synapse._paper",
    "PAPER_STAGE2": "mne_synapse._paper",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'mne_synapse' has no attribute {name!r}")
    module = importlib.import_module(_LAZY[name])
    value = module if module.__name__.endswith(name) else getattr(module, name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
