"""Deprecated path of :mod:`mne_synapse.miniature.tiny_sd` (and its training program).

Kept for one release; import from ``mne_synapse.miniature`` instead.
"""

import warnings

from .miniature.tiny_sd import *  # noqa: F401,F403
from .miniature.tiny_sd import SHIPPED_UNET, SHIPPED_VAE  # noqa: F401
from .miniature.train_tiny_sd import *  # noqa: F401,F403
from .miniature.train_tiny_sd import main

warnings.warn("mne_synapse.tiny_sd moved to mne_synapse.miniature.tiny_sd (models) and "
              "mne_synapse.miniature.train_tiny_sd (training); the old path goes away in "
              "the next release.", FutureWarning, stacklevel=2)

if __name__ == "__main__":
    main()
