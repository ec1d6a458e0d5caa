"""Building blocks of the authors' Stage-1 network, computed as their code computes it.

Every tensor here is laid out ``(batch, features, tokens)``: features are the
channels of 1x1 convolutions, tokens are electrodes (or latent tokens). The
modules nest exactly as the authors' do (``conv1.conv``, ``mha.wq.conv``,
``proj.linear``...), because the parameter names of their released files are
those paths: the extra level of nesting is what lets those files load strictly.
"""

import torch
from torch import nn
from torch.nn import functional as F

# Their GroupNorm and LayerNorm both use this epsilon (PyTorch's default is 1e-5).
NORM_EPS = 1e-6
# Groups of every GroupNorm (their ``groups``).
GROUPS = 32


class Pointwise(nn.Module):
    """A 1x1 convolution over the feature axis, stored under ``.conv``.

    Parameters
    ----------
    in_features, out_features : int
        Feature widths.
    bias : bool
        Whether the convolution has a bias (theirs has none unless asked).
    """

    def __init__(self, in_features, out_features, bias=False):
        super().__init__()
        self.conv = nn.Conv1d(in_features, out_features, kernel_size=1, bias=bias)

    def forward(self, x):
        return self.conv(x)


class TokenLinear(nn.Module):
    """A bias-free linear map over the last (token) axis, stored under ``.linear``."""

    def __init__(self, in_tokens, out_tokens):
        super().__init__()
        self.linear = nn.Linear(in_tokens, out_tokens, bias=False)

    def forward(self, x):
        return self.linear(x)


class TokenResample(nn.Module):
    """Changes the number of tokens (electrodes) with a learned linear map.

    Their down- and up-sampling blocks in ``linear`` mode are a
    :class:`TokenLinear` held under ``.proj``; no pooling, no interpolation.
    """

    def __init__(self, in_tokens, out_tokens):
        super().__init__()
        self.proj = TokenLinear(in_tokens, out_tokens)

    def forward(self, x):
        return self.proj(x)


class ResidualUnit(nn.Module):
    """GroupNorm -> SiLU -> 1x1 conv -> GroupNorm -> SiLU -> dropout -> 1x1 conv.

    The shortcut is always a learned 1x1 convolution, even when the widths
    agree: their released configuration sets ``shortcut=1`` everywhere.
    """

    def __init__(self, in_features, out_features, dropout, groups=GROUPS):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_features, eps=NORM_EPS)
        self.conv1 = Pointwise(in_features, out_features)
        self.norm2 = nn.GroupNorm(groups, out_features, eps=NORM_EPS)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = Pointwise(out_features, out_features)
        self.shortcut = Pointwise(in_features, out_features)

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.shortcut(x) + h


class TokenAttention(nn.Module):
    """Multi-head self-attention across tokens with bias-free 1x1 projections.

    The features are split into heads head-major (feature ``f`` belongs to head
    ``f // (features / n_head)``), and the scores are plain dot products: the
    authors do not divide by the square root of the head width, so neither do
    we, otherwise their weights would give other outputs.
    """

    def __init__(self, features, n_head):
        super().__init__()
        self.n_head = n_head
        self.wq = Pointwise(features, features)
        self.wk = Pointwise(features, features)
        self.wv = Pointwise(features, features)
        self.out = Pointwise(features, features)

    def _heads(self, x):
        batch, features, tokens = x.shape
        return x.reshape(batch, self.n_head, features // self.n_head, tokens).transpose(2, 3)

    def forward(self, x):
        q, k, v = (self._heads(proj(x)) for proj in (self.wq, self.wk, self.wv))
        # Written out rather than F.scaled_dot_product_attention: with 64 heads
        # the first level has one feature a head, which CUDA's fused kernels
        # refuse ("query is not correctly aligned"); at <= 128 tokens the plain
        # product is cheap.
        h = torch.softmax(q @ k.transpose(2, 3), dim=-1) @ v
        return self.out(h.transpose(2, 3).reshape(x.shape))


class FeedForward(nn.Module):
    """1x1 conv -> GELU -> dropout -> 1x1 conv, both convolutions with bias."""

    def __init__(self, features, hidden, dropout):
        super().__init__()
        self.conv1 = Pointwise(features, hidden, bias=True)
        self.drop = nn.Dropout(dropout)
        self.conv2 = Pointwise(hidden, features, bias=True)

    def forward(self, x):
        return self.conv2(self.drop(F.gelu(self.conv1(x))))


class TransformerUnit(nn.Module):
    """The authors' transformer block, with its unusual normalisation.

    Both LayerNorms normalise a sample's whole ``(features, tokens)`` map at
    once, with one affine weight per feature *and* token, so the block only
    works for the token count it was built for. The input is normalised first
    and the attention residual is added to the *normalised* input (the raw
    input never reaches the output); a second LayerNorm follows the attention
    residual and the feed-forward residual is not normalised. Dropout (their
    ``rate``) follows the attention and the feed-forward outputs.
    """

    def __init__(self, features, tokens, n_head, hidden, dropout):
        super().__init__()
        self.mha = TokenAttention(features, n_head)
        self.ffn = FeedForward(features, hidden, dropout)
        self.layernorm1 = nn.LayerNorm([features, tokens], eps=NORM_EPS)
        self.layernorm2 = nn.LayerNorm([features, tokens], eps=NORM_EPS)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, x):
        x = self.layernorm1(x)
        x = self.layernorm2(x + self.dropout1(self.mha(x)))
        return x + self.dropout2(self.ffn(x))


class Stage(nn.ModuleList):
    """One level: ``n_layer`` residual units, then the positional embedding and a transformer.

    A list rather than a module with named parts, because their parameter
    names index the units (``main_flow.<level>.<unit>``), the transformer last.

    Parameters
    ----------
    in_features, out_features : int
        Widths; the first residual unit changes the width.
    tokens : int
        Tokens (electrodes) at this level.
    n_layer : int
        Residual units.
    n_head : int
        Attention heads.
    dropout : float
        Dropout of the residual units and the transformer.
    dff_factor : int
        Feed-forward width as a multiple of ``out_features``.
    """

    def __init__(self, in_features, out_features, tokens, n_layer, n_head, dropout,
                 dff_factor=2):
        units = [ResidualUnit(in_features, out_features, dropout)]
        units += [ResidualUnit(out_features, out_features, dropout)
                  for _ in range(n_layer - 1)]
        units.append(TransformerUnit(out_features, tokens, n_head,
                                     dff_factor * out_features, dropout))
        super().__init__(units)

    def forward(self, h, pos_embed):
        *residual_units, transformer = self
        for unit in residual_units:
            h = unit(h)
        return transformer(h + pos_embed)


def trunc_normal_embedding(features, tokens):
    """A learned positional embedding ``(1, features, tokens)``, truncated normal, std 0.02."""
    embed = nn.Parameter(torch.empty(1, features, tokens))
    nn.init.trunc_normal_(embed, std=0.02)
    return embed
