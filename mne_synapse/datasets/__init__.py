"""Data sets: a synthetic EEG-image set and readers for public EEG-image files."""

from .cvpr40 import load_cvpr40
from .synthetic import SyntheticEEGImages, make_synthetic
from .things_eeg2 import load_things_eeg2, things_eeg2_to_npz

__all__ = ["SyntheticEEGImages", "load_cvpr40", "load_things_eeg2", "make_synthetic",
           "things_eeg2_to_npz"]
