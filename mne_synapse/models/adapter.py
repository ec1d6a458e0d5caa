"""f_adapt of SYNAPSE Stage 2: a few global EEG tokens for the decoupled cross-attention.

``Z_latent`` already stands in for the 77 text tokens; the adapter adds
``n_adapt_tokens`` tokens pooled from the whole latent, which the U-Net reads
through its own key/value projections (see :mod:`mne_synapse.models.attention`).
"""

import torch
from torch import nn

from ._checks import check_int


class EEGAdapter(nn.Module):
    """Map ``Z_latent`` to ``Z_adapt``: mean over tokens, linear, reshape, LayerNorm.

    Parameters
    ----------
    embed_dim : int
        Width of ``Z_latent`` (1024 for the paper's SD 2.1 setting).
    cross_attention_dim : int | None
        Width of the adapter tokens, i.e. the U-Net's ``cross_attention_dim``.
        None uses ``embed_dim``, which Stable Diffusion requires anyway since
        ``Z_latent`` itself enters the same cross-attentions.
    n_adapt_tokens : int
        Number of adapter tokens.

    Notes
    -----
    The output is the second part of the U-Net context::

        context = torch.cat([z_latent, adapter(z_latent)], dim=1)
    """

    def __init__(self, embed_dim=1024, cross_attention_dim=None, n_adapt_tokens=4):
        super().__init__()
        if cross_attention_dim is None:
            cross_attention_dim = embed_dim
        for name, val in dict(embed_dim=embed_dim, cross_attention_dim=cross_attention_dim,
                              n_adapt_tokens=n_adapt_tokens).items():
            check_int(val, name)
        self.embed_dim = int(embed_dim)
        self.cross_attention_dim = int(cross_attention_dim)
        self.n_adapt_tokens = int(n_adapt_tokens)
        self.proj = nn.Linear(self.embed_dim, self.n_adapt_tokens * self.cross_attention_dim)
        self.norm = nn.LayerNorm(self.cross_attention_dim)

    def forward(self, z_latent):
        """Compute ``Z_adapt``.

        Parameters
        ----------
        z_latent : torch.Tensor, shape (batch, n_tokens, embed_dim)
            The Stage-1 latent.

        Returns
        -------
        z_adapt : torch.Tensor, shape (batch, n_adapt_tokens, cross_attention_dim)
            The adapter tokens.
        """
        if not isinstance(z_latent, torch.Tensor):
            raise ValueError(f"Expected a torch.Tensor, got {type(z_latent).__name__}.")
        if (z_latent.ndim != 3 or z_latent.shape[1] == 0
                or z_latent.shape[-1] != self.embed_dim):
            raise ValueError(f"Expected Z_latent of shape (batch, n_tokens >= 1, embed_dim="
                             f"{self.embed_dim}), got {tuple(z_latent.shape)}.")
        pooled = self.proj(z_latent.mean(dim=1))
        tokens = pooled.reshape(-1, self.n_adapt_tokens, self.cross_attention_dim)
        return self.norm(tokens)
