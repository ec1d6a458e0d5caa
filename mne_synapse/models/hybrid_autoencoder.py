"""Stage 1 of SYNAPSE: the CLIP-aligned hybrid (CNN + transformer) EEG autoencoder.

The encoder maps an EEG window ``(batch, n_chans, n_times)`` to ``Z_latent``,
a ``(batch, n_tokens, embed_dim)`` tensor shaped like the text-encoder output
that conditions Stable Diffusion 2.1 (``77 x 1024`` for the paper sizes). The
decoder rebuilds the EEG from ``Z_latent`` alone, so the reconstruction loss
regularises the latent itself rather than a side path.
"""

import torch
from torch import nn
from torch.nn import functional as F

from ._checks import check_int
from .band_power import BandPowerTokens
from .eeg_module import EEGLatentModule

# Electrode counts of the paper after the first level (128 -> 64 -> 16 -> 4 -> 1).
_PAPER_ELECTRODE_TAIL = (64, 16, 4, 1)

# Sizes of our network by name (the authors' network is preset "paper", see presets.py).
# Both sizes read band power through 16 learned spatial filters: chosen on validation
# images (benchmarks/bench_encoder_levers.py, section "Stage 1 levers" of RESULTS.md).
PRESETS = {
    "hybrid": dict(
        widths=(64, 128, 256, 512, 1024), electrode_schedule=(128, 64, 16, 4, 1),
        n_res_blocks=2, n_heads=16, n_tokens=77, embed_dim=1024, dropout=0.5,
        power_filters=16,
    ),
    "tiny": dict(
        widths=(32, 64), electrode_schedule=None, n_res_blocks=1, n_heads=4,
        n_tokens=24, embed_dim=64, dropout=0.5, power_filters=16,
    ),
}


def _n_groups(width, n_positions, max_groups=32):
    """Largest divisor of ``width`` up to ``max_groups`` that leaves >= 2 values a group.

    A group holding a single value (one channel at one electrode) would be
    normalised to exactly zero, which silently kills the signal on the
    one-electrode levels of small models.
    """
    for groups in range(min(max_groups, width), 0, -1):
        if width % groups == 0 and (width // groups) * n_positions >= 2:
            return groups
    return 1


def _derive_schedule(n_chans, n_levels):
    """Electrode schedule ``(n_chans, 64, 16, 4, 1)`` adapted to ``n_levels``.

    Each level keeps the paper's count but at most half of the previous one,
    so that small montages still shrink level after level; once a single
    electrode (a global token) is reached, further levels stay at one.
    """
    schedule = [n_chans]
    for i in range(1, n_levels):
        cap = _PAPER_ELECTRODE_TAIL[i - 1] if i - 1 < len(_PAPER_ELECTRODE_TAIL) else 1
        schedule.append(max(1, min(cap, schedule[-1] // 2)))
    return tuple(schedule)


class _AxisLinear(nn.Module):
    """A linear map over axis 1 (electrodes or tokens) of a ``(B, N, C)`` tensor."""

    def __init__(self, n_in, n_out):
        super().__init__()
        self.linear = nn.Linear(n_in, n_out)

    def forward(self, x):
        return self.linear(x.transpose(1, 2)).transpose(1, 2)


class _ResBlock(nn.Module):
    """GroupNorm -> SiLU -> 1x1 conv -> dropout, with a (projected) skip.

    Works on ``(B, n_electrodes, width)``; the 1x1 convolution over the feature
    axis is written as a ``Linear`` to avoid transposes.
    """

    def __init__(self, in_width, out_width, n_electrodes, dropout):
        super().__init__()
        self.norm = nn.GroupNorm(_n_groups(in_width, n_electrodes), in_width)
        self.act = nn.SiLU()
        self.conv = nn.Linear(in_width, out_width)
        self.drop = nn.Dropout(dropout)
        self.skip = (nn.Identity() if in_width == out_width
                     else nn.Linear(in_width, out_width))

    def forward(self, x):
        # GroupNorm wants channels on axis 1: features, not electrodes.
        h = self.norm(x.transpose(1, 2)).transpose(1, 2)
        return self.skip(x) + self.drop(self.conv(self.act(h)))


class _TransformerBlock(nn.Module):
    """Pre-norm transformer block with a learned positional embedding."""

    def __init__(self, width, n_tokens, n_heads, mlp_ratio=4):
        super().__init__()
        self.n_heads = n_heads
        self.pos_embed = nn.Parameter(torch.zeros(1, n_tokens, width))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.norm1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, mlp_ratio * width), nn.GELU(),
                                 nn.Linear(mlp_ratio * width, width))

    def forward(self, x):
        x = x + self.pos_embed
        b, n, c = x.shape
        qkv = self.qkv(self.norm1(x)).reshape(b, n, 3, self.n_heads, c // self.n_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        attn = F.scaled_dot_product_attention(q, k, v)
        x = x + self.proj(attn.transpose(1, 2).reshape(b, n, c))
        return x + self.mlp(self.norm2(x))


class _Level(nn.Module):
    """Residual blocks and one electrode-axis transformer block at one level.

    The encoder runs the residual blocks first (the first one widens the
    features), the decoder mirrors that: attention first, then residual
    blocks whose last one narrows the features.
    """

    def __init__(self, in_width, out_width, n_electrodes, n_res_blocks, n_heads,
                 dropout, decoder=False):
        super().__init__()
        self.decoder = decoder
        attn_width = in_width if decoder else out_width
        # The width changes in the encoder's first block and the decoder's last.
        if decoder:
            widths = [in_width] * n_res_blocks + [out_width]
        else:
            widths = [in_width] + [out_width] * n_res_blocks
        self.res = nn.Sequential(*[
            _ResBlock(widths[i], widths[i + 1], n_electrodes, dropout)
            for i in range(n_res_blocks)])
        self.attn = _TransformerBlock(attn_width, n_electrodes, n_heads)

    def forward(self, x):
        if self.decoder:
            return self.res(self.attn(x))
        return self.attn(self.res(x))


class SynapseAutoencoder(EEGLatentModule):
    """CLIP-aligned hybrid EEG autoencoder (Stage 1 of SYNAPSE).

    A per-electrode linear "1x1 temporal projection" turns each electrode's
    samples into ``widths[0]`` features; electrodes are the token axis from
    then on. Each encoder level applies ``n_res_blocks`` residual blocks over
    the features and one transformer block across electrodes, then a linear
    map over the electrode axis shrinks the montage to the next level's count.
    Every level's output is projected to ``embed_dim``, the levels are
    concatenated along the token axis (U-Net style skips into the latent), an
    MLP over the token axis maps them to ``n_tokens`` tokens and a final
    transformer block yields ``Z_latent``. The decoder mirrors the encoder
    from ``Z_latent`` only.

    Parameters
    ----------
    n_chans : int | None
        Number of EEG channels. Inferred from ``chs_info`` if None.
    n_times : int | None
        Number of samples per window. Inferred from
        ``input_window_seconds * sfreq`` if None.
    sfreq : float | None
        Sampling frequency (stored, or used to infer ``n_times`` or
        ``input_window_seconds``).
    chs_info : list of dict | None
        Channel descriptions, e.g. ``info["chs"]`` of :class:`mne.Info`.
    widths : tuple of int
        Feature width of each level.
    electrode_schedule : tuple of int | None
        Electrodes (tokens) at each level; first entry must equal ``n_chans``
        and entries must strictly decrease. None derives
        ``(n_chans, 64, 16, 4, 1)`` adapted to ``len(widths)``, each entry at
        most half of the previous one.
    n_res_blocks : int
        Residual blocks per level (>= 1).
    n_heads : int
        Attention heads; must divide every width and ``embed_dim``.
    n_tokens : int
        Tokens of ``Z_latent`` (77 for CLIP text).
    embed_dim : int
        Width of ``Z_latent`` (1024 for OpenCLIP ViT-H-14).
    dropout : float
        Dropout of the residual blocks.
    power_filters : int
        Spatial filters of a learned filter-bank band-power front end
        (:class:`~mne_synapse.models.band_power.BandPowerTokens`) whose log
        powers join the skips as ``power_filters`` more tokens; 0 (the
        default) builds none. It reads induced (non-phase-locked) activity,
        which the linear first layer reads poorly.
    power_bands : int
        Its temporal (band-pass) filters, shared by every spatial filter.
    power_norm : ``'bands'`` | ``'all'``
        Its LayerNorm: over each spatial filter's bands (the spectral profile)
        or over all filters and bands (keeps each filter's level).
    input_window_seconds : float | None
        Window length, used with ``sfreq`` to infer ``n_times``.
    n_outputs : int | None
        Classes of a linear head on the token mean of ``Z_latent``. Without
        it ``forward`` returns ``(z, x_hat)`` (what Stage 1 trains); with it,
        class scores, so ``braindecode.EEGClassifier`` trains the network end
        to end.

    Notes
    -----
    A braindecode model (``EEGModuleMixin``, see
    :class:`~mne_synapse.models.eeg_module.EEGLatentModule`): the signal
    properties are inferred as braindecode infers them, and ``forward(x,
    return_features=True)`` gives the pooled latent.
    """

    def __init__(self, n_chans=None, n_times=None, sfreq=None, chs_info=None, *,
                 widths=(64, 128, 256, 512, 1024), electrode_schedule=None,
                 n_res_blocks=2, n_heads=16, n_tokens=77, embed_dim=1024,
                 dropout=0.5, power_filters=0, power_bands=8, power_norm="bands",
                 input_window_seconds=None, n_outputs=None):
        # braindecode checks the signal properties against each other and infers
        # the missing ones (n_chans from chs_info, n_times from the window).
        super().__init__(n_outputs=n_outputs, n_chans=n_chans, chs_info=chs_info,
                         n_times=n_times, input_window_seconds=input_window_seconds,
                         sfreq=sfreq)
        n_chans, n_times = self.n_chans, self.n_times
        widths = tuple(widths)
        sizes = dict(n_chans=n_chans, n_times=n_times, n_res_blocks=n_res_blocks,
                     n_heads=n_heads, n_tokens=n_tokens, embed_dim=embed_dim,
                     power_bands=power_bands)
        sizes.update({f"widths[{i}]": w for i, w in enumerate(widths or [None])})
        for name, val in sizes.items():
            check_int(val, name)
        n_chans, n_times, widths = int(n_chans), int(n_times), tuple(map(int, widths))
        bad = [w for w in widths if w % n_heads]
        if bad:
            raise ValueError(f"Every width must be divisible by n_heads={n_heads}; "
                             f"got widths={widths} (bad: {bad}).")
        if embed_dim % n_heads:
            raise ValueError(f"embed_dim={embed_dim} must be divisible by "
                             f"n_heads={n_heads}.")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}.")
        if electrode_schedule is None:
            electrode_schedule = _derive_schedule(n_chans, len(widths))
        electrode_schedule = tuple(electrode_schedule)
        _check_schedule(electrode_schedule, n_chans, len(widths))
        electrode_schedule = tuple(map(int, electrode_schedule))

        self.widths, self.electrode_schedule = widths, electrode_schedule
        self.n_res_blocks, self.n_heads = n_res_blocks, n_heads
        self.n_tokens, self.embed_dim, self.dropout = n_tokens, embed_dim, dropout
        check_int(power_filters, "power_filters", minimum=0)
        self.power_filters, self.power_bands = int(power_filters), int(power_bands)
        sched = electrode_schedule

        # ---- encoder ----
        self.temporal_proj = nn.Linear(n_times, widths[0])
        self.enc_levels = nn.ModuleList([
            _Level(widths[max(i - 1, 0)], widths[i], sched[i], n_res_blocks,
                   n_heads, dropout) for i in range(len(widths))])
        self.enc_down = nn.ModuleList([
            _AxisLinear(sched[i], sched[i + 1]) for i in range(len(widths) - 1)])
        # ---- latent: U-Net skips of every level -> n_tokens x embed_dim ----
        self.skip_proj = nn.ModuleList([
            nn.Sequential(nn.LayerNorm(w), nn.Linear(w, embed_dim)) for w in widths])
        self.band_power = (BandPowerTokens(n_chans, n_times, self.power_filters,
                                           self.power_bands, embed_dim, norm=power_norm)
                           if self.power_filters else None)
        n_skip_tokens = sum(sched) + self.power_filters
        self.token_mlp = nn.Sequential(_AxisLinear(n_skip_tokens, n_tokens), nn.GELU(),
                                       _AxisLinear(n_tokens, n_tokens))
        self.latent_block = _TransformerBlock(embed_dim, n_tokens, n_heads)
        # ---- decoder (from Z_latent only) ----
        self.dec_tokens = _AxisLinear(n_tokens, sched[-1])
        self.dec_in = nn.Linear(embed_dim, widths[-1])
        self.dec_levels = nn.ModuleList([
            _Level(widths[i], widths[max(i - 1, 0)], sched[i], n_res_blocks,
                   n_heads, dropout, decoder=True) for i in range(len(widths))])
        self.dec_up = nn.ModuleList([
            _AxisLinear(sched[i + 1], sched[i]) for i in range(len(widths) - 1)])
        self.dec_out = nn.Sequential(nn.LayerNorm(widths[0]),
                                     nn.Linear(widths[0], n_times))
        self._build_head(embed_dim)

    @property
    def latent_shape(self):
        """Shape of ``Z_latent`` for one sample: ``(n_tokens, embed_dim)``."""
        return (self.n_tokens, self.embed_dim)

    @classmethod
    def from_preset(cls, name, **overrides):
        """Build a model from a named size preset.

        Parameters
        ----------
        name : str
            A key of :data:`PRESETS` (``"hybrid"``: full size, 77 x 1024
            latent; ``"tiny"``: the miniature world's).
        **overrides
            Constructor arguments, e.g. ``n_chans`` and ``n_times``, or any
            size to change. If ``n_chans`` or the number of widths differs
            from the preset's fixed electrode schedule (``hybrid``: 128 channels,
            5 levels) and no schedule is given, the schedule is derived instead.

        Returns
        -------
        model : SynapseAutoencoder
            The model.
        """
        if name not in PRESETS:
            raise ValueError(f"Unknown preset {name!r}; known presets: "
                             f"{sorted(PRESETS)}.")
        kwargs = dict(PRESETS[name])
        chs_info = overrides.get("chs_info")
        n_chans = overrides.get("n_chans",
                                None if chs_info is None else len(chs_info))
        sched = kwargs.get("electrode_schedule")
        n_levels = len(overrides.get("widths", kwargs["widths"]))
        if ("electrode_schedule" not in overrides and sched is not None
                and ((n_chans is not None and sched[0] != n_chans) or len(sched) != n_levels)):
            kwargs["electrode_schedule"] = None
        kwargs.update(overrides)
        return cls(**kwargs)

    # ---- forward passes ----
    def _check_input(self, x):
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"Expected a torch.Tensor, got {type(x).__name__}.")
        expected = (self.n_chans, self.n_times)
        if x.ndim != 3 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"Expected input of shape (batch, n_chans={expected[0]}, "
                f"n_times={expected[1]}), got {tuple(x.shape)}.")

    def encode(self, x):
        """Map EEG to ``Z_latent``.

        Parameters
        ----------
        x : torch.Tensor, shape (batch, n_chans, n_times)
            The EEG windows.

        Returns
        -------
        z : torch.Tensor, shape (batch, n_tokens, embed_dim)
            ``Z_latent``, shaped like the CLIP text-encoder hidden states.
        """
        self._check_input(x)
        h = self.temporal_proj(x)
        skips = []
        for i, level in enumerate(self.enc_levels):
            h = level(h)
            skips.append(self.skip_proj[i](h))
            if i < len(self.enc_down):
                h = self.enc_down[i](h)
        if self.band_power is not None:
            skips.append(self.band_power(x))
        z = self.token_mlp(torch.cat(skips, dim=1))
        return self.latent_block(z)

    def decode(self, z):
        """Reconstruct EEG from ``Z_latent``.

        Parameters
        ----------
        z : torch.Tensor, shape (batch, n_tokens, embed_dim)
            The latent.

        Returns
        -------
        x_hat : torch.Tensor, shape (batch, n_chans, n_times)
            The reconstructed EEG.
        """
        if (not isinstance(z, torch.Tensor) or z.ndim != 3
                or tuple(z.shape[1:]) != self.latent_shape):
            got = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
            raise ValueError(f"Expected a latent of shape (batch, n_tokens={self.n_tokens}, "
                             f"embed_dim={self.embed_dim}), got {got}.")
        h = self.dec_in(self.dec_tokens(z))
        for i in reversed(range(len(self.dec_levels))):
            h = self.dec_levels[i](h)
            if i > 0:
                h = self.dec_up[i - 1](h)
        return self.dec_out(h)


def _check_schedule(schedule, n_chans, n_levels):
    if len(schedule) != n_levels:
        raise ValueError(f"electrode_schedule={schedule} must have one entry per "
                         f"level ({n_levels} widths).")
    for e in schedule:
        check_int(e, "every entry of electrode_schedule")
    if schedule[0] != n_chans:
        raise ValueError(f"electrode_schedule[0]={schedule[0]} must equal "
                         f"n_chans={n_chans}.")
    if any(b > a or (b == a and b > 1) for a, b in zip(schedule, schedule[1:])):
        raise ValueError(f"electrode_schedule={schedule} must be strictly decreasing "
                         "(it may stay at 1 once it reaches a single electrode).")
