"""Data sets: a synthetic EEG-image set and readers for public EEG-image files."""

from .class_names import CVPR40_CLASS_NAMES, class_caption, cvpr40_class_name
from .cvpr40 import load_cvpr40
from .cvpr40_parquet import load_cvpr40_parquet
from .splits import audit_splits, authors_split, image_split
from .synthetic import SyntheticEEGImages, make_synthetic
from .things_eeg2 import load_things_eeg2, things_eeg2_to_npz

__all__ = ["CVPR40_CLASS_NAMES", "SyntheticEEGImages", "audit_splits", "authors_split",
           "class_caption", "cvpr40_class_name", "image_split", "load_cvpr40",
           "load_cvpr40_parquet", "load_things_eeg2", "make_synthetic", "things_eeg2_to_npz"]
