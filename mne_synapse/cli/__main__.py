"""``python -m mne_synapse.cli``: the same as the ``mne-synapse`` command."""

import sys

from . import main

sys.exit(main())
