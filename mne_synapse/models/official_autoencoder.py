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
permute), and run on any device. The sizes their code reads from its config
(``in_seq``, ``in_channels``, ``dims``, ``z_channels``, ``out_seq``) are
arguments too, so the architecture also trains at other sizes; their files
load only at the defaults.
"""

import numbers

import torch
from torch import nn

# The input of their released encoder, and what to do with other EEG: shared with the
# estimators' input checks, so they live in a module without torch.
from .._paper import INPUT_HINT, N_ELECTRODES, N_SAMPLES
from .eeg_module import EEGLatentModule
from .official_blocks import (GROUPS, Pointwise, Stage, TokenLinear, TokenResample,
                              TransformerUnit, trunc_normal_embedding)

WIDTHS = (64, 128, 256, 512, 1024)
N_TOKENS = 77
EMBED_DIM = 1024
# Width of the MLP over the token axis: a constant in their code, not a config entry.
MLP_WIDTH = 1024
# The linear down-sampling between levels divides the electrodes by this (their ``stride``).
STRIDE = 4


def electrode_schedule(n_chans, n_levels):
    """Electrodes at each level as their code computes them: ``n_chans``, then halved
    and divided by 4 level after level (128 -> 64, 16, 4, 1).

    Their design ends on one electrode (a global token; the output layer adds one
    more token to the skips), so only some counts fit a number of levels.
    """
    if n_levels < 2:
        raise ValueError(f"The authors' network needs at least 2 levels (widths), "
                         f"got {n_levels}.")
    schedule = (n_chans,) + tuple(int((n_chans / 2) // STRIDE ** i) for i in range(n_levels - 1))
    if schedule[-1] != 1:
        low = 2 * STRIDE ** (n_levels - 2)
        raise ValueError(
            f"n_chans={n_chans} does not fit {n_levels} levels: their electrode schedule "
            f"(n_chans, then n_chans / 2 divided by {STRIDE} per level) gives {schedule}, "
            f"but it must end on one electrode; with {n_levels} widths use {low} to "
            f"{2 * low - 1} electrodes (the released encoder: 128 with 5 widths).")
    return schedule


def _check_sizes(sizes, n_head, dropout):
    for name, value in dict(sizes, n_head=n_head).items():
        values = value if isinstance(value, tuple) else (value,)
        if not values or any(isinstance(v, bool) or not isinstance(v, numbers.Integral)
                             or v < 1 for v in values):
            raise ValueError(f"{name} must be a positive int (or a tuple of them), "
                             f"got {value!r}.")
    features = (*sizes["widths"], sizes["embed_dim"])
    if any(f % n_head for f in features):
        raise ValueError(f"n_head={n_head} must divide every width {sizes['widths']} and "
                         f"embed_dim={sizes['embed_dim']}; the released encoder uses 64.")
    if any(w % GROUPS for w in sizes["widths"]) or min(sizes["widths"][-2:]) < 2 * GROUPS:
        # The last level has one electrode and normalises the last two widths
        # there: at 32 features a group would hold one value (GroupNorm fails).
        raise ValueError(f"Every width must be a multiple of {GROUPS} (their GroupNorm has "
                         f"{GROUPS} groups) and the last two, normalised on one electrode, "
                         f"at least {2 * GROUPS}; got widths={sizes['widths']}.")
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}.")


def _check_eeg(x, n_chans, n_times):
    expected = (n_chans, n_times)
    if isinstance(x, torch.Tensor) and x.ndim == 3 and tuple(x.shape[1:]) == expected:
        return
    got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
    hint = ""
    if isinstance(x, torch.Tensor) and x.ndim == 3 and tuple(x.shape[1:]) == expected[::-1]:
        hint = (" This looks like the authors' (time x electrode) layout: pass "
                "x.transpose(1, 2).")
    elif expected == (N_ELECTRODES, N_SAMPLES):
        hint = f" As their files: {INPUT_HINT}."
    raise ValueError(f"The authors' network takes EEG of shape (n_epochs, {n_chans}, "
                     f"{n_times}) (electrodes x samples); got {got}.{hint}")


class _Sizes:
    """Sizes both halves share, checked once; the defaults are the released encoder's."""

    def _set_sizes(self, n_layer, n_head, dropout, n_chans, n_times, widths, n_tokens,
                   embed_dim, mlp_width):
        widths = tuple(widths)
        _check_sizes(dict(n_layer=n_layer, n_chans=n_chans, n_times=n_times, widths=widths,
                          n_tokens=n_tokens, embed_dim=embed_dim, mlp_width=mlp_width),
                     n_head, dropout)
        self.n_layer, self.n_head, self.dropout = n_layer, n_head, dropout
        self.n_chans, self.n_times, self.widths = n_chans, n_times, widths
        self.n_tokens, self.embed_dim, self.mlp_width = n_tokens, embed_dim, mlp_width
        self.electrodes = electrode_schedule(n_chans, len(widths))


_SIZE_DOC = """n_layer : int
        Residual units per level (2 in the released encoder; ``Train_AE.json`` says 3).
    n_head : int
        Attention heads (64 in the released encoder; ``Train_AE.json`` says 16); must
        divide every width and ``embed_dim``. Not visible in the weights: a wrong
        value loads but computes other outputs.
    dropout : float
        Dropout of every residual unit and transformer (0.5 in their configs).
    n_chans, n_times : int
        Electrodes and samples of the input (their ``in_channels`` 128, ``in_seq`` 440).
    widths : tuple of int
        Feature width of each level (their ``dims``); multiples of 32.
    n_tokens, embed_dim : int
        ``Z_latent`` size (their ``z_channels`` 77 and ``out_seq`` 1024).
    mlp_width : int
        Hidden width of the MLP over the token axis (1024, fixed in their code)."""


class OfficialEncoder(_Sizes, nn.Module):
    """The authors' Stage-1 EEG encoder (``eeg_encoder`` in their code).

    Parameters
    ----------
    %s

    Notes
    -----
    ``forward`` takes ``(n_epochs, n_chans, n_times)`` and returns ``Z_latent``,
    ``(n_epochs, n_tokens, embed_dim)``. 27,590,878 parameters at the defaults.
    """

    def __init__(self, n_layer=2, n_head=64, dropout=0.5, *, n_chans=N_ELECTRODES,
                 n_times=N_SAMPLES, widths=WIDTHS, n_tokens=N_TOKENS, embed_dim=EMBED_DIM,
                 mlp_width=MLP_WIDTH):
        super().__init__()
        self._set_sizes(n_layer, n_head, dropout, n_chans, n_times, widths, n_tokens,
                        embed_dim, mlp_width)
        widths, electrodes = self.widths, self.electrodes
        in_widths = (widths[0],) + widths[:-1]
        self.posEmbed = nn.ParameterList(
            [trunc_normal_embedding(w, e) for w, e in zip(widths, electrodes)])
        # Their time axis is the channel axis: one 1x1 convolution mixes the
        # samples of each electrode into widths[0] features.
        self.in_layer = Pointwise(n_times, widths[0], bias=True)
        self.main_flow = nn.ModuleList([
            Stage(w_in, w_out, e, n_layer, n_head, dropout)
            for w_in, w_out, e in zip(in_widths, widths, electrodes)])
        self.downs = nn.ModuleList([
            TokenResample(e_in, e_out) for e_in, e_out in zip(electrodes, electrodes[1:])])
        self.skips = nn.ModuleList([Pointwise(w, embed_dim) for w in widths])
        self.out_layer = Pointwise(widths[-1], embed_dim, bias=True)
        # All level outputs plus the output layer's one token go through an MLP
        # over the token axis, then attention across the n_tokens tokens. The
        # feed-forward width of that transformer is 2 x n_tokens in their code
        # (the token count, not the feature width, times dff_factor).
        self.skips_agg = nn.Sequential(
            TokenLinear(sum(electrodes) + 1, mlp_width), nn.ReLU(),
            TokenLinear(mlp_width, mlp_width), nn.ReLU(),
            TokenLinear(mlp_width, n_tokens),
            TransformerUnit(embed_dim, n_tokens, n_head, 2 * n_tokens, dropout))

    def forward(self, x):
        """Map EEG ``(n_epochs, n_chans, n_times)`` to ``Z_latent``."""
        _check_eeg(x, self.n_chans, self.n_times)
        h = self.in_layer(x.transpose(1, 2))
        skips = []
        for level, stage in enumerate(self.main_flow):
            h = stage(h, self.posEmbed[level])
            skips.append(self.skips[level](h))
            if level < len(self.downs):
                h = self.downs[level](h)
        skips.append(self.out_layer(h))
        return self.skips_agg(torch.cat(skips, dim=2)).transpose(1, 2)


class OfficialDecoder(_Sizes, nn.Module):
    """The authors' Stage-1 EEG decoder (``eeg_decoder``, ``up_mode='linear'``).

    It mirrors the encoder from ``Z_latent`` alone (no skip connections from
    the encoder: their ``skip_mode='down'`` feeds the skips into the latent).

    Parameters
    ----------
    %s

    Notes
    -----
    ``forward`` takes ``(n_epochs, n_tokens, embed_dim)`` and returns
    ``(n_epochs, n_chans, n_times)``.
    """

    def __init__(self, n_layer=2, n_head=64, dropout=0.5, *, n_chans=N_ELECTRODES,
                 n_times=N_SAMPLES, widths=WIDTHS, n_tokens=N_TOKENS, embed_dim=EMBED_DIM,
                 mlp_width=MLP_WIDTH):
        super().__init__()
        self._set_sizes(n_layer, n_head, dropout, n_chans, n_times, widths, n_tokens,
                        embed_dim, mlp_width)
        out_widths = self.widths[::-1]
        in_widths = (self.widths[-1],) + out_widths[:-1]
        # The deepest level works on the latent tokens, not on one electrode.
        tokens = (n_tokens,) + self.electrodes[::-1][1:]
        self.posEmbed = nn.ParameterList(
            [trunc_normal_embedding(w, t) for w, t in zip(out_widths, tokens)])
        self.in_layer = Pointwise(embed_dim, self.widths[-1], bias=True)
        self.main_flow = nn.ModuleList([
            Stage(w_in, w_out, t, n_layer, n_head, dropout)
            for w_in, w_out, t in zip(in_widths, out_widths, tokens)])
        self.ups = nn.ModuleList([
            TokenResample(t_in, t_out) for t_in, t_out in zip(tokens, tokens[1:])])
        self.out_layer = Pointwise(self.widths[0], n_times, bias=True)

    def forward(self, z):
        """Map ``Z_latent`` ``(n_epochs, n_tokens, embed_dim)`` to EEG."""
        if not (isinstance(z, torch.Tensor) and z.ndim == 3
                and tuple(z.shape[1:]) == (self.n_tokens, self.embed_dim)):
            got = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
            raise ValueError(f"Expected Z_latent of shape (n_epochs, {self.n_tokens}, "
                             f"{self.embed_dim}), got {got}.")
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
    %s
    decoder : bool
        Whether to build the decoder. Their released encoder file holds none:
        an autoencoder rebuilt from it has ``Decoder = None``, returns
        ``x_hat = None`` and cannot reconstruct.
    n_outputs : int | None
        Classes of a linear head on the token mean of ``Z_latent`` (not in
        their code); with it ``forward`` returns class scores instead of
        ``(z, x_hat)``, for ``braindecode.EEGClassifier``.
    chs_info, input_window_seconds, sfreq
        braindecode's other signal properties, from which ``n_chans`` and
        ``n_times`` are inferred when None (else their 128 and 440).

    Notes
    -----
    49,459,914 parameters at the defaults. The attribute names ``Encoder``
    and ``Decoder`` are theirs: they prefix the keys of their trainer's files
    (the head, when there is one, is ``final_layer.*``). A braindecode model
    like :class:`~mne_synapse.models.SynapseAutoencoder` (see
    :class:`~mne_synapse.models.eeg_module.EEGLatentModule`).
    """

    def __init__(self, n_layer=2, n_head=64, dropout=0.5, *, n_chans=None, n_times=None,
                 widths=WIDTHS, n_tokens=N_TOKENS, embed_dim=EMBED_DIM, mlp_width=MLP_WIDTH,
                 decoder=True, n_outputs=None, chs_info=None, input_window_seconds=None,
                 sfreq=None):
        if n_chans is None and chs_info is None:
            n_chans = N_ELECTRODES
        if n_times is None and (input_window_seconds is None or sfreq is None):
            n_times = N_SAMPLES
        super().__init__(n_outputs=n_outputs, n_chans=n_chans, chs_info=chs_info,
                         n_times=n_times, input_window_seconds=input_window_seconds,
                         sfreq=sfreq)
        sizes = dict(n_layer=n_layer, n_head=n_head, dropout=dropout, n_chans=self.n_chans,
                     n_times=self.n_times, widths=widths, n_tokens=n_tokens,
                     embed_dim=embed_dim, mlp_width=mlp_width)
        self.Encoder = OfficialEncoder(**sizes)
        self.Decoder = OfficialDecoder(**sizes) if decoder else None
        self.reconstructs = bool(decoder)
        self._build_head(embed_dim)

    def encode(self, x):
        """``Z_latent`` ``(n_epochs, n_tokens, embed_dim)`` of EEG ``(n_epochs, n_chans,
        n_times)``."""
        return self.Encoder(x)

    def decode(self, z):
        """EEG ``(n_epochs, n_chans, n_times)`` rebuilt from ``Z_latent``."""
        if self.Decoder is None:
            raise ValueError(
                "This network has no decoder: it was rebuilt from the authors' encoder "
                "file, which holds none. Reconstruction needs their Stage-1 trainer's "
                "checkpoint ({'net': autoencoder state}, keys 'Encoder.' / 'Decoder.').")
        return self.Decoder(z)


for _cls in (OfficialEncoder, OfficialDecoder, OfficialAutoencoder):
    if _cls.__doc__:  # None under python -OO
        _cls.__doc__ = _cls.__doc__ % _SIZE_DOC
