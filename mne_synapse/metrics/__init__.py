"""Scores of generated images and EEG embeddings, each with its chance level.

- :mod:`~mne_synapse.metrics.images`: :func:`fid`, :func:`kid`,
  :func:`inception_score` (torchmetrics, with any feature extractor),
  :func:`clip_similarity`, :func:`ssim`, :func:`pixel_correlation`;
- :mod:`~mne_synapse.metrics.decoding`: :func:`n_way_top_k` (classified
  generated images), :func:`decoding_accuracy`, :func:`retrieval_top_k`,
  :func:`neighbour_agreement` (Stage 1);
- :mod:`~mne_synapse.metrics.statistics`: :func:`shuffled_control` and
  :func:`permutation_pvalue` (permuted pairing of EEG and stimuli),
  :func:`bootstrap_interval` (intervals that resample test images, not trials).

Scores computed through a network return a :class:`Score` that names the
network: FID values from different feature extractors are not comparable.
"""

from ._score import Score
from .decoding import decoding_accuracy, n_way_top_k, neighbour_agreement, retrieval_top_k
from .images import clip_similarity, fid, inception_score, kid, pixel_correlation, ssim
from .statistics import bootstrap_interval, permutation_pvalue, shuffled_control

__all__ = ["Score", "bootstrap_interval", "clip_similarity", "decoding_accuracy", "fid", "inception_score", "kid",
           "n_way_top_k", "neighbour_agreement", "permutation_pvalue", "pixel_correlation",
           "retrieval_top_k", "shuffled_control", "ssim"]
