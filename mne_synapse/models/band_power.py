"""A learned filter-bank band-power front end: tokens of log power for the latent.

Why: a linear map of each electrode's samples (the autoencoder's first layer)
followed by per-feature nonlinearities reads phase-locked activity well but
struggles with induced activity, whose phase is random on every trial and
whose information is in band power. The classic EEG answer (FBCSP; the
``conv -> square -> mean -> log`` of ShallowFBCSPNet, Schirrmeister et al.
2017) is spatial filters, temporal band-pass filters, then the log of the
power. This module learns both filter sets and returns one token per spatial
filter, so its output joins the U-Net skips that make ``Z_latent``.
"""

import torch
from torch import nn

from ._checks import check_int


class BandPowerTokens(nn.Module):
    """Spatial filters -> temporal filters -> log power -> one token per spatial filter.

    Parameters
    ----------
    n_chans : int
        EEG channels of the input.
    n_times : int
        Samples of the input.
    n_filters : int
        Learned spatial filters (tokens out).
    n_bands : int
        Learned temporal filters (band-pass), shared by every spatial filter.
    embed_dim : int
        Width of each output token.
    kernel_size : int | None
        Length of the temporal filters in samples; None: ``n_times // 8``
        (at least 3, at most ``n_times``), e.g. 16 samples (64 ms, a resolution
        of about 15 Hz) for 128 samples at 250 Hz.
    norm : ``'bands'`` | ``'all'``
        What the LayerNorm before the projection normalises: each spatial
        filter's vector of band log powers (``'bands'``: the token carries the
        filter's spectral profile, not its overall level), or all filters and
        bands of an epoch together (``'all'``: each filter keeps its level
        relative to the others).

    Notes
    -----
    Input ``(batch, n_chans, n_times)``, output ``(batch, n_filters, embed_dim)``.
    The input is expected standardised (``SynapseEncoder`` standardises each
    channel): powers below 1e-6 are clipped before the log.
    """

    def __init__(self, n_chans, n_times, n_filters, n_bands, embed_dim, kernel_size=None,
                 norm="bands"):
        super().__init__()
        for name, value in dict(n_chans=n_chans, n_times=n_times, n_filters=n_filters,
                                n_bands=n_bands, embed_dim=embed_dim).items():
            check_int(value, name)
        if kernel_size is None:  # very short windows (a few samples) get one as long
            kernel_size = min(n_times, max(3, n_times // 8))
        check_int(kernel_size, "kernel_size")
        if kernel_size > n_times:
            raise ValueError(f"kernel_size={kernel_size} is longer than the window "
                             f"(n_times={n_times}).")
        if norm not in ("bands", "all"):
            raise ValueError(f"norm must be 'bands' or 'all', got {norm!r}.")
        self.n_filters, self.n_bands, self.norm_over = n_filters, n_bands, norm
        self.spatial = nn.Linear(n_chans, n_filters, bias=False)
        self.temporal = nn.Conv1d(1, n_bands, kernel_size, bias=False)
        self.norm = nn.LayerNorm(n_bands if norm == "bands" else (n_filters, n_bands))
        self.proj = nn.Linear(n_bands, embed_dim)

    def log_power(self, x):
        """``(batch, n_filters, n_bands)``: log mean power of each filtered signal."""
        b, _, t = x.shape
        sources = self.spatial(x.transpose(1, 2)).transpose(1, 2)  # (B, F, T)
        banded = self.temporal(sources.reshape(b * self.n_filters, 1, t)).float()  # (B*F, K, T')
        # Log of the mean power: the variance of a zero-mean band is what carries
        # induced activity; the log makes it additive (as in FBCSP). Float32: the
        # square of half-precision activations can overflow.
        power = banded.square().mean(dim=-1).clamp_min(1e-6).log()
        return power.to(sources.dtype).reshape(b, self.n_filters, self.n_bands)

    def forward(self, x):
        return self.proj(self.norm(self.log_power(x)))
