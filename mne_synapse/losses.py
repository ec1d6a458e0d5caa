"""Losses of SYNAPSE Stage 1: reconstruction, CLIP-text alignment and InfoNCE.

All functions take torch tensors and return a scalar tensor (mean over the
batch), so they can be combined freely and used as a skorch criterion through
:class:`SynapseLoss`.
"""

import math

import torch
from torch import nn
from torch.nn import functional as F

# CLIP caps the logit scale at 100 so the softmax cannot collapse to one-hot.
MAX_LOGIT_SCALE = 100.0


def _check_same_shape(a, b, names):
    if a.shape != b.shape:
        raise ValueError(f"{names[0]} and {names[1]} must have the same shape, got "
                         f"{tuple(a.shape)} and {tuple(b.shape)}.")


def soft_signal_dice(x_hat, x, sharpness=100.0, eps=1e-8):
    """Soft Dice similarity of signals (SDSC).

    ``SDSC = 2 * sum(min(|x|, |x_hat|) * sigmoid(k * x * x_hat)) / sum(|x| + |x_hat|)``
    computed per sample, then averaged. The sigmoid is a smooth "same sign"
    indicator: overlapping amplitude only counts where the signals agree in
    sign.

    Parameters
    ----------
    x_hat : torch.Tensor, shape (batch, ...)
        Reconstruction.
    x : torch.Tensor, shape (batch, ...)
        Target.
    sharpness : float
        ``k``, steepness of the sign indicator. It assumes signals of roughly
        unit scale (standardised EEG): for raw EEG in volts ``x * x_hat`` is
        ~1e-10 and the sigmoid stays at 0.5, halving the score.
    eps : float
        Guards the division for all-zero samples.

    Returns
    -------
    sdsc : torch.Tensor
        Scalar in [0, 1]; close to 1 for identical signals, 0 for sign-flipped.
    """
    _check_same_shape(x_hat, x, ("x_hat", "x"))
    x_hat, x = x_hat.reshape(len(x_hat), -1), x.reshape(len(x), -1)
    overlap = torch.minimum(x.abs(), x_hat.abs()) * torch.sigmoid(sharpness * x * x_hat)
    total = x.abs().sum(1) + x_hat.abs().sum(1)
    return (2 * overlap.sum(1) / (total + eps)).mean()


def reconstruction_loss(x_hat, x):
    """MSE plus ``1 - SDSC``.

    Parameters
    ----------
    x_hat : torch.Tensor, shape (batch, n_chans, n_times)
        Reconstruction.
    x : torch.Tensor, shape (batch, n_chans, n_times)
        Target EEG.

    Returns
    -------
    loss : torch.Tensor
        Scalar, ~0 for identical inputs.
    """
    _check_same_shape(x_hat, x, ("x_hat", "x"))
    return F.mse_loss(x_hat, x) + (1.0 - soft_signal_dice(x_hat, x))


# The axis of (batch, n_tokens, embed_dim) latents each cosine runs along.
COSINE_AXES = {"features": -1, "tokens": 1}


def token_cosine_distance(z, text_tokens, axis="features"):
    """Mean of ``1 - cosine`` between ``Z_latent`` and the CLIP text tokens.

    Parameters
    ----------
    z : torch.Tensor, shape (batch, n_tokens, embed_dim)
        EEG latent.
    text_tokens : torch.Tensor, shape (batch, n_tokens, embed_dim)
        CLIP text-encoder hidden states of each sample's caption.
    axis : ``'features'`` | ``'tokens'``
        ``'features'``: one cosine per token, between the token's feature
        vectors (what cross-attention compares). ``'tokens'``: one cosine per
        feature, across the tokens (the authors' code: ``CosineSimilarity(dim=1)``).

    Returns
    -------
    distance : torch.Tensor
        Scalar in [0, 2], invariant to positive rescaling of either input
        (per token, or per feature).
    """
    _check_same_shape(z, text_tokens, ("z", "text_tokens"))
    if axis not in COSINE_AXES:
        raise ValueError(f"axis must be one of {sorted(COSINE_AXES)}, got {axis!r}.")
    return (1.0 - F.cosine_similarity(z, text_tokens, dim=COSINE_AXES[axis])).mean()


def alignment_loss(z, text_tokens, cosine_axis="features"):
    """MSE plus cosine distance between ``Z_latent`` and CLIP text tokens.

    Parameters
    ----------
    z : torch.Tensor, shape (batch, n_tokens, embed_dim)
        EEG latent.
    text_tokens : torch.Tensor, shape (batch, n_tokens, embed_dim)
        Hidden states of **each sample's own** caption (the official code used
        one caption for the whole batch).
    cosine_axis : ``'features'`` | ``'tokens'``
        See :func:`token_cosine_distance`.

    Returns
    -------
    loss : torch.Tensor
        Scalar, 0 for identical inputs.
    """
    _check_same_shape(z, text_tokens, ("z", "text_tokens"))
    return F.mse_loss(z, text_tokens) + token_cosine_distance(z, text_tokens, cosine_axis)


def info_nce(z_pooled, image_embeds, logit_scale, same_image=None):
    """Symmetric InfoNCE between EEG latents and CLIP image embeddings.

    Parameters
    ----------
    z_pooled : torch.Tensor, shape (batch, dim) or (batch, n_tokens, dim)
        EEG embeddings; a 3-D latent is averaged over tokens first.
    image_embeds : torch.Tensor, shape (batch, dim)
        CLIP image embeddings of the shown images.
    logit_scale : float | torch.Tensor
        Log of the inverse temperature; ``exp(logit_scale)`` is capped at 100.
    same_image : torch.Tensor, shape (batch,) | None
        Integer image ids. Samples sharing an id are all positives of each
        other (target spread uniformly over them), so repeated trials of one
        image in a batch are not pushed apart. None: only the diagonal.

    Returns
    -------
    loss : torch.Tensor
        Scalar. Computed as the KL divergence from the target distribution,
        i.e. cross-entropy minus the targets' entropy: identical gradients,
        but 0 is reachable also when an image appears several times.

    Notes
    -----
    When the samples of one id also have exactly the same ``image_embeds``
    rows, the ids change the loss value (its floor drops from about
    ``log(n_repeats) / 2`` to 0) but not its gradient: plain InfoNCE already
    treats identical columns alike. They change the gradient when the
    embeddings of one id differ (augmented views, class-level ids).
    """
    if z_pooled.ndim == 3:
        z_pooled = z_pooled.mean(dim=1)
    if z_pooled.ndim != 2 or image_embeds.ndim != 2 or z_pooled.shape != image_embeds.shape:
        raise ValueError("z_pooled (batch, dim) and image_embeds (batch, dim) must "
                         f"match, got {tuple(z_pooled.shape)} and "
                         f"{tuple(image_embeds.shape)}.")
    n = len(z_pooled)
    scale = torch.as_tensor(logit_scale, dtype=z_pooled.dtype,
                            device=z_pooled.device).exp().clamp(max=MAX_LOGIT_SCALE)
    logits = scale * F.normalize(z_pooled, dim=-1) @ F.normalize(image_embeds, dim=-1).T
    if same_image is None:
        positives = torch.eye(n, dtype=logits.dtype, device=logits.device)
    else:
        same_image = torch.as_tensor(same_image, device=logits.device)
        if same_image.shape != (n,):
            raise ValueError(f"same_image must have shape ({n},), got "
                             f"{tuple(same_image.shape)}.")
        positives = (same_image[:, None] == same_image[None, :]).to(logits.dtype)
    # ``positives`` is symmetric, so one row-normalised target serves both directions.
    target = positives / positives.sum(1, keepdim=True)
    log_target = torch.log(target.clamp_min(1e-12))

    def _kl(lg):
        return (target * (log_target - F.log_softmax(lg, dim=1))).sum(1).mean()

    return (_kl(logits) + _kl(logits.T)) / 2


class SynapseLoss(nn.Module):
    """Weighted sum of the Stage-1 losses, usable as a skorch criterion.

    Parameters
    ----------
    recon_weight, align_weight, contrastive_weight : float
        Non-negative weights; 0 disables a term (its targets may then be None).
    uncertainty_weighting : bool
        If True, learn log-variances ``s_i`` (Kendall et al., 2018) and use
        ``sum_i w_i * (exp(-s_i) * L_i + s_i)``. They are ``nn.Parameter`` s,
        so skorch (which optimises criterion parameters) trains them.
    init_temperature : float
        Initial InfoNCE temperature; ``logit_scale = log(1 / temperature)``.
    learn_temperature : bool
        Whether ``logit_scale`` is trained (the authors' stayed fixed).
    cosine_axis : ``'features'`` | ``'tokens'``
        Axis of the alignment's cosine term (see :func:`token_cosine_distance`).

    Attributes
    ----------
    last_terms : dict
        Detached float values of the last call: ``"recon"``, ``"align"``,
        ``"contrastive"`` (NaN when disabled) and ``"total"``.
    """

    terms = ("recon", "align", "contrastive")

    def __init__(self, recon_weight=1.0, align_weight=1.0, contrastive_weight=1.0,
                 uncertainty_weighting=False, init_temperature=0.07,
                 learn_temperature=True, cosine_axis="features"):
        super().__init__()
        weights = (recon_weight, align_weight, contrastive_weight)
        for name, w in zip(self.terms, weights):
            if not float(w) >= 0:
                raise ValueError(f"{name}_weight must be >= 0, got {w}.")
        if not any(float(w) > 0 for w in weights):
            raise ValueError("At least one of recon_weight, align_weight, "
                             "contrastive_weight must be > 0.")
        if not init_temperature > 0:
            raise ValueError(f"init_temperature must be > 0, got {init_temperature}.")
        if cosine_axis not in COSINE_AXES:
            raise ValueError(f"cosine_axis must be one of {sorted(COSINE_AXES)}, got "
                             f"{cosine_axis!r}.")
        self.cosine_axis = cosine_axis
        self.weights = dict(zip(self.terms, map(float, weights)))
        self.uncertainty_weighting = uncertainty_weighting
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / init_temperature)),
                                        requires_grad=learn_temperature)
        if uncertainty_weighting:
            self.log_vars = nn.Parameter(torch.zeros(len(self.terms)))
        else:
            self.register_parameter("log_vars", None)
        self.last_terms = {}

    @property
    def temperature(self):
        """Current InfoNCE temperature (after the cap on the scale)."""
        return 1.0 / min(math.exp(self.logit_scale.item()), MAX_LOGIT_SCALE)

    def forward(self, z, x_hat, x, text_tokens, image_embeds, image_ids=None):
        """Compute the total loss.

        Parameters
        ----------
        z : torch.Tensor, shape (batch, n_tokens, embed_dim)
            ``Z_latent``.
        x_hat, x : torch.Tensor, shape (batch, n_chans, n_times)
            Reconstruction and target EEG.
        text_tokens : torch.Tensor, shape (batch, n_tokens, embed_dim) | None
            CLIP text hidden states of each sample's caption.
        image_embeds : torch.Tensor, shape (batch, embed_dim) | None
            CLIP image embeddings.
        image_ids : torch.Tensor, shape (batch,) | None
            Image ids, so repeated images count as positives in InfoNCE.

        Returns
        -------
        loss : torch.Tensor
            Scalar total loss.
        """
        compute = {
            "recon": lambda: reconstruction_loss(x_hat, x),
            "align": lambda: alignment_loss(z, text_tokens, self.cosine_axis),
            "contrastive": lambda: info_nce(z, image_embeds, self.logit_scale, image_ids),
        }
        needed = {"recon": (x_hat, x), "align": (z, text_tokens),
                  "contrastive": (z, image_embeds)}
        total, values = 0.0, {}
        for i, name in enumerate(self.terms):
            w = self.weights[name]
            if w == 0:
                values[name] = float("nan")
                continue
            if any(t is None for t in needed[name]):
                raise ValueError(f"The {name!r} term has weight {w} but one of its "
                                 "inputs is None; pass it or set the weight to 0.")
            term = compute[name]()
            values[name] = term.item()
            if self.log_vars is not None:
                term = torch.exp(-self.log_vars[i]) * term + self.log_vars[i]
            total = total + w * term
        values["total"] = float(total.item())
        self.last_terms = values
        return total
