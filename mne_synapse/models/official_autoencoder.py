"""The authors' Stage-1 network (CVMILab-CUK/synapse), reimplemented so their files load.

This is the network behind the released ``EEGEncoder_BLIP2_*.pth`` files, in
the configuration of their ``Train_LDM.json`` (``n_layer=2``, ``n_head=64``;
``Train_AE.json`` says 3 / 16): 1x1 convolutions over time samples, five
levels of widths ``64..1024`` on ``128, 64, 16, 4, 1`` electrodes, every
level projected to ``1024`` features (``214`` tokens in all), an MLP over the
token axis down to ``77`` tokens and a global transformer. The decoder mirrors
it with linear up-sampling over the token axis.

It computes what their code computes (checked against it to float tolerance)
and its ``state_dict`` has their key names and shapes, so their files load
strictly; see :mod:`mne_synapse.interop.official` to read them. Our own
network, :class:`~mne_synapse.models.SynapseAutoencoder`, differs on purpose
(see the method documentation).

Unlike their code, these modules take EEG the way MNE and our estimators do,
``(n_epochs, 128 electrodes, 440 samples)``, return ``Z_latent`` as
``(n_epochs, 77, 1024)`` (what their Stage 2 feeds Stable Diffusion after a
permute), and run on any device.
"""

import numbers

import torch
from torch import nn

from .eeg_module import EEGLatentModule
from .official_blocks import (Pointwise, Stage, TokenLinear, TokenResample, TransformerUnit,
                              trunc_normal_embedding)

N_ELECTRODES = 128
N_SAMPLES = 440
WIDTHS = (64, 128, 256, 512, 1024)
# Electrodes at each level; the linear down-sampling between levels divides by 4.
ELECTRODES = (128, 64, 16, 4, 1)
N_TOKENS = 77
EMBED_DIM = 1024
# All level outputs plus the output layer's one token, concatenated on the token axis.
N_SKIP_TOKENS = sum(ELECTRODES) + 1
MLP_WIDTH = 1024


def _check_sizes(n_layer, n_head, dropout):
    for name, value in (("n_layer", n_layer), ("n_head", n_head)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}.")
    if WIDTHS[0] % n_head:
        # Every width is a multiple of the first, so this one test covers all.
        raise ValueError(f"n_head={n_head} must divide every width {WIDTHS}; "
                         "the released encoder uses 64.")
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}.")


def _check_eeg(x):
    expected = (N_ELECTRODES, N_SAMPLES)
    if isinstance(x, torch.Tensor) and x.ndim == 3 and tuple(x.shape[1:]) == expected:
        return
    got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
    hint = ""
    if isinstance(x, torch.Tensor) and x.ndim == 3 and tuple(x.shape[1:]) == expected[::-1]:
        hint = (" This looks like the authors' (time x electrode) layout: pass "
                "x.transpose(1, 2).")
    raise ValueError(
        f"The authors' network takes EEG of shape (n_epochs, {N_ELECTRODES}, "
        f"{N_SAMPLES}): their {N_ELECTRODES} electrodes (CVPR40 montage) and "
        f"{N_SAMPLES} samples, i.e. samples 20:460 (20-460 ms after onset) at 1 kHz; "
        f"got {got}.{hint}")


class OfficialEncoder(nn.Module):
    """The authors' Stage-1 EEG encoder (``eeg_encoder`` in their code).

    Parameters
    ----------
    n_layer : int
        Residual units per level (2 in the released encoder).
    n_head : int
        Attention heads (64 in the released encoder); must divide 64. Not
        visible in the weights: a wrong value loads but computes other outputs.
    dropout : float
        Dropout of every residual unit and transformer (0.5 in their configs).

    Notes
    -----
    ``forward`` takes ``(n_epochs, 128, 440)`` and returns ``Z_latent``,
    ``(n_epochs, 77, 1024)``. 27,590,878 parameters with ``n_layer=2``.
    """

    def __init__(self, n_layer=2, n_head=64, dropout=0.5):
        super().__init__()
        _check_sizes(n_layer, n_head, dropout)
        self.n_layer, self.n_head, self.dropout = n_layer, n_head, dropout
        in_widths = (WIDTHS[0],) + WIDTHS[:-1]
        self.posEmbed = nn.ParameterList(
            [trunc_normal_embedding(w, e) for w, e in zip(WIDTHS, ELECTRODES)])
        # Their time axis is the channel axis: one 1x1 convolution mixes the
        # 440 samples of each electrode into 64 features.
        self.in_layer = Pointwise(N_SAMPLES, WIDTHS[0], bias=True)
        self.main_flow = nn.ModuleList([
            Stage(w_in, w_out, e, n_layer, n_head, dropout)
            for w_in, w_out, e in zip(in_widths, WIDTHS, ELECTRODES)])
        self.downs = nn.ModuleList([
            TokenResample(e_in, e_out) for e_in, e_out in zip(ELECTRODES, ELECTRODES[1:])])
        self.skips = nn.ModuleList([Pointwise(w, EMBED_DIM) for w in WIDTHS])
        self.out_layer = Pointwise(WIDTHS[-1], EMBED_DIM, bias=True)
        # An MLP over the token axis, then attention across the 77 tokens. The
        # feed-forward width of that transformer is 2 x 77 = 154 in their code
        # (the token count, not the feature width, times dff_factor).
        self.skips_agg = nn.Sequential(
            TokenLinear(N_SKIP_TOKENS, MLP_WIDTH), nn.ReLU(),
            TokenLinear(MLP_WIDTH, MLP_WIDTH), nn.ReLU(),
            TokenLinear(MLP_WIDTH, N_TOKENS),
            TransformerUnit(EMBED_DIM, N_TOKENS, n_head, 2 * N_TOKENS, dropout))

    def forward(self, x):
        """Map EEG ``(n_epochs, 128, 440)`` to ``Z_latent`` ``(n_epochs, 77, 1024)``."""
        _check_eeg(x)
        h = self.in_layer(x.transpose(1, 2))
        skips = []
        for level, stage in enumerate(self.main_flow):
            h = stage(h, self.posEmbed[level])
            skips.append(self.skips[level](h))
            if level < len(self.downs):
                h = self.downs[level](h)
        skips.append(self.out_layer(h))
        return self.skips_agg(torch.cat(skips, dim=2)).transpose(1, 2)


class OfficialDecoder(nn.Module):
    """The authors' Stage-1 EEG decoder (``eeg_decoder``, ``up_mode='linear'``).

    It mirrors the encoder from ``Z_latent`` alone (no skip connections from
    the encoder: their ``skip_mode='down'`` feeds the skips into the latent).

    Parameters
    ----------
    n_layer, n_head, dropout
        As for :class:`OfficialEncoder`.

    Notes
    -----
    ``forward`` takes ``(n_epochs, 77, 1024)`` and returns ``(n_epochs, 128, 440)``.
    """

    def __init__(self, n_layer=2, n_head=64, dropout=0.5):
        super().__init__()
        _check_sizes(n_layer, n_head, dropout)
        self.n_layer, self.n_head, self.dropout = n_layer, n_head, dropout
        out_widths = WIDTHS[::-1]
        in_widths = (WIDTHS[-1],) + out_widths[:-1]
        # The deepest level works on the 77 latent tokens, not on one electrode.
        tokens = (N_TOKENS,) + ELECTRODES[::-1][1:]
        self.posEmbed = nn.ParameterList(
            [trunc_normal_embedding(w, t) for w, t in zip(out_widths, tokens)])
        self.in_layer = Pointwise(EMBED_DIM, WIDTHS[-1], bias=True)
        self.main_flow = nn.ModuleList([
            Stage(w_in, w_out, t, n_layer, n_head, dropout)
            for w_in, w_out, t in zip(in_widths, out_widths, tokens)])
        self.ups = nn.ModuleList([
            TokenResample(t_in, t_out) for t_in, t_out in zip(tokens, tokens[1:])])
        self.out_layer = Pointwise(WIDTHS[0], N_SAMPLES, bias=True)

    def forward(self, z):
        """Map ``Z_latent`` ``(n_epochs, 77, 1024)`` to EEG ``(n_epochs, 128, 440)``."""
        if not (isinstance(z, torch.Tensor) and z.ndim == 3
                and tuple(z.shape[1:]) == (N_TOKENS, EMBED_DIM)):
            got = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
            raise ValueError(f"Expected Z_latent of shape (n_epochs, {N_TOKENS}, "
                             f"{EMBED_DIM}), got {got}.")
        h = self.in_layer(z.transpose(1, 2))
        for level, stage in enumerate(self.main_flow):
            h = stage(h, self.posEmbed[level])
            if level < len(self.ups):
                h = self.ups[level](h)
        return self.out_layer(h).transpose(1, 2)


class OfficialAutoencoder(EEGLatentModule):
    """The authors' Stage-1 autoencoder (``eeg_AutoEncoder``): encoder and decoder.

    Parameters
    ----------
    n_layer, n_head, dropout
        As for :class:`OfficialEncoder`.
    n_outputs : int | None
        Classes of a linear head on the token mean of ``Z_latent`` (not in
        their code); with it ``forward`` returns class scores instead of
        ``(z, x_hat)``, for ``braindecode.EEGClassifier``.
    n_chans, n_times, chs_info, input_window_seconds, sfreq
        braindecode's signal properties. The network is built for their
        ``128`` electrodes and ``440`` samples (20-460 ms at 1 kHz), the
        defaults; other values are refused.

    Notes
    -----
    49,459,914 parameters with ``n_layer=2``. The attribute names ``Encoder``
    and ``Decoder`` are theirs: they prefix the keys of their trainer's files
    (the head, when there is one, is ``final_layer.*``). A braindecode model
    like :class:`~mne_synapse.models.SynapseAutoencoder` (see
    :class:`~mne_synapse.models.eeg_module.EEGLatentModule`).
    """

    def __init__(self, n_layer=2, n_head=64, dropout=0.5, *, n_outputs=None, n_chans=None,
                 n_times=None, chs_info=None, input_window_seconds=None, sfreq=None):
        if n_chans is None and chs_info is None:
            n_chans = N_ELECTRODES
        if n_times is None and (input_window_seconds is None or sfreq is None):
            n_times = N_SAMPLES
        super().__init__(n_outputs=n_outputs, n_chans=n_chans, chs_info=chs_info,
                         n_times=n_times, input_window_seconds=input_window_seconds,
                         sfreq=sfreq)
        if (self.n_chans, self.n_times) != (N_ELECTRODES, N_SAMPLES):
            raise ValueError(
                f"The authors' network takes {N_ELECTRODES} electrodes x {N_SAMPLES} "
                f"samples (20-460 ms at 1 kHz); got n_chans={self.n_chans}, "
                f"n_times={self.n_times}. Use SynapseAutoencoder for other montages.")
        self.Encoder = OfficialEncoder(n_layer, n_head, dropout)
        self.Decoder = OfficialDecoder(n_layer, n_head, dropout)
        self._build_head(EMBED_DIM)

    def encode(self, x):
        """``Z_latent`` ``(n_epochs, 77, 1024)`` of EEG ``(n_epochs, 128, 440)``."""
        return self.Encoder(x)

    def decode(self, z):
        """EEG ``(n_epochs, 128, 440)`` rebuilt from ``Z_latent`` ``(n_epochs, 77, 1024)``."""
        return self.Decoder(z)
