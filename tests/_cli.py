"""Shared by the command-line tests: ``mne-synapse`` run as a shell user runs it."""

import subprocess
import sys


def run_cli(*args, timeout=900):
    return subprocess.run([sys.executable, "-m", "mne_synapse.cli", *args],
                          capture_output=True, text=True, timeout=timeout)
