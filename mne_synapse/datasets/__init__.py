"""Data sets: a synthetic EEG-image set and readers for public EEG-image files."""

from .synthetic import SyntheticEEGImages, make_synthetic

__all__ = ["SyntheticEEGImages", "make_synthetic"]
