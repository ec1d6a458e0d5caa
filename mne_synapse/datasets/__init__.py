"""Data sets: a synthetic EEG-image set and readers for public EEG-image files."""

from .cvpr40 import load_cvpr40
from .synthetic import SyntheticEEGImages, make_synthetic

__all__ = ["SyntheticEEGImages", "load_cvpr40", "make_synthetic"]
