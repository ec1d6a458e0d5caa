"""Deprecated path of :mod:`mne_synapse.miniature.tiny_clip` (and its training program).

Kept for one release; import from ``mne_synapse.miniature`` instead.
"""

import warnings

from .miniature.tiny_clip import *  # noqa: F401,F403
from .miniature.tiny_clip import SHIPPED_WEIGHTS  # noqa: F401
from .miniature.train_tiny_clip import *  # noqa: F401,F403
from .miniature.train_tiny_clip import main

warnings.warn("mne_synapse.tiny_clip moved to mne_synapse.miniature.tiny_clip (model) and "
              "mne_synapse.miniature.train_tiny_clip (training); the old path goes away in "
              "the next release.", FutureWarning, stacklevel=2)

if __name__ == "__main__":
    main()
