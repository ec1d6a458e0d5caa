"""Decoupled cross-attention of SYNAPSE Stage 2, as a diffusers attention processor.

The U-Net context is ``[Z_latent, Z_adapt]``. As in IP-Adapter, the latent
tokens go through each cross-attention's own ``to_k`` / ``to_v`` and the
adapter tokens through new ``to_k_ip`` / ``to_v_ip``; the two attention
outputs are added before ``to_out``. The U-Net itself is not forked: the
processors are installed with ``unet.set_attn_processor``.
"""

from diffusers.models.attention_processor import AttnProcessor2_0
from torch import nn
from torch.nn import functional as F

from ._checks import check_int


def _copy_linear(linear):
    copy = nn.Linear(linear.in_features, linear.out_features, bias=linear.bias is not None,
                     device=linear.weight.device, dtype=linear.weight.dtype)
    copy.load_state_dict(linear.state_dict())
    return copy


def _attend(attn, query, context, to_k, to_v, mask):
    """Multi-head scaled dot-product attention of ``query`` over ``context``.

    ``query`` is already split into heads, ``(batch, heads, n_queries, head_dim)``;
    the result is merged back to ``(batch, n_queries, heads * head_dim)``.
    """
    batch_size, n_keys = context.shape[:2]
    if attn.norm_cross:
        context = attn.norm_encoder_hidden_states(context)
    key, value = to_k(context), to_v(context)
    head_dim = key.shape[-1] // attn.heads
    key = key.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
    value = value.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
    if attn.norm_k is not None:
        key = attn.norm_k(key)
    if mask is not None:
        mask = attn.prepare_attention_mask(mask, n_keys, batch_size)
        # scaled_dot_product_attention wants (batch, heads, n_queries, n_keys).
        mask = mask.view(batch_size, attn.heads, -1, mask.shape[-1])
    out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask,
                                         dropout_p=0.0, is_causal=False)
    out = out.transpose(1, 2).reshape(batch_size, -1, attn.heads * head_dim)
    return out.to(query.dtype)


class EEGAttnProcessor(nn.Module):
    """Decoupled cross-attention over ``[Z_latent, Z_adapt]`` (IP-Adapter style).

    The output of a cross-attention layer becomes
    ``Attn(Q, K, V) + scale * Attn(Q, K_ip, V_ip)``, where ``K, V`` come from
    the first ``n_latent_tokens`` context tokens through the layer's own
    ``to_k`` / ``to_v`` and ``K_ip, V_ip`` from the last ``n_adapt_tokens``
    through ``to_k_ip`` / ``to_v_ip``. Everything else follows
    :class:`diffusers.models.attention_processor.AttnProcessor2_0`.

    Parameters
    ----------
    attn : diffusers.models.attention_processor.Attention
        The cross-attention layer this processor will serve. Its ``to_k`` /
        ``to_v`` are copied into ``to_k_ip`` / ``to_v_ip``, so at
        initialisation the adapter tokens are read exactly like context
        tokens. It is not stored (the layer holds the processor, not the
        other way round).
    n_adapt_tokens : int
        Number of adapter tokens at the end of the context.
    scale : float
        Weight of the adapter branch. A plain attribute: change it on the
        processor at any time; 0 skips the branch (the layer then equals the
        stock one on the latent tokens).

    Notes
    -----
    An attention mask, if given (``encoder_attention_mask`` of the U-Net),
    must cover the whole context; its two parts mask the two branches.
    """

    def __init__(self, attn, n_adapt_tokens=4, scale=1.0):
        super().__init__()
        if not getattr(attn, "is_cross_attention", False):
            raise ValueError("EEGAttnProcessor serves cross-attention layers (attn2); got a "
                             f"{type(attn).__name__} without cross_attention_dim.")
        check_int(n_adapt_tokens, "n_adapt_tokens")
        self.n_adapt_tokens = int(n_adapt_tokens)
        self.scale = float(scale)
        self.to_k_ip = _copy_linear(attn.to_k)
        self.to_v_ip = _copy_linear(attn.to_v)

    def __call__(self, attn, hidden_states, encoder_hidden_states=None,
                 attention_mask=None, temb=None):
        """Run the attention layer ``attn`` (diffusers' processor protocol).

        Parameters
        ----------
        attn : diffusers.models.attention_processor.Attention
            The layer (its ``to_q``, ``to_k``, ``to_v``, ``to_out``, norms).
        hidden_states : torch.Tensor, shape (batch, n_queries, dim) or (batch, C, H, W)
            The queries' source.
        encoder_hidden_states : torch.Tensor, shape (batch, n_latent_tokens + n_adapt_tokens, cross_attention_dim)
            The context ``[Z_latent, Z_adapt]``.
        attention_mask : torch.Tensor | None
            Additive mask over the whole context, as diffusers builds it from
            ``encoder_attention_mask``.
        temb : torch.Tensor | None
            Time embedding, used only by a spatial norm.

        Returns
        -------
        hidden_states : torch.Tensor
            The layer output, shaped like the input ``hidden_states``.
        """
        if encoder_hidden_states is None:
            raise ValueError("EEGAttnProcessor needs encoder_hidden_states (the context "
                             "[Z_latent, Z_adapt]); self-attention layers keep "
                             "AttnProcessor2_0.")
        n_context = encoder_hidden_states.shape[1]
        n_latent = n_context - self.n_adapt_tokens
        if n_latent < 1:
            raise ValueError(f"The context has {n_context} tokens; expected the latent tokens "
                             f"followed by n_adapt_tokens={self.n_adapt_tokens} adapter tokens.")
        latent_mask = adapt_mask = None
        if attention_mask is not None:
            if attention_mask.shape[-1] != n_context:
                raise ValueError(f"attention_mask covers {attention_mask.shape[-1]} tokens; it "
                                 f"must cover the whole context ({n_context} tokens).")
            latent_mask = attention_mask[..., :n_latent]
            adapt_mask = attention_mask[..., n_latent:]

        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch_size, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch_size, channel, height * width).transpose(1, 2)
        batch_size = hidden_states.shape[0]
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)

        query = attn.to_q(hidden_states)
        head_dim = query.shape[-1] // attn.heads
        query = query.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        if attn.norm_q is not None:
            query = attn.norm_q(query)

        hidden_states = _attend(attn, query, encoder_hidden_states[:, :n_latent],
                                attn.to_k, attn.to_v, latent_mask)
        if self.scale != 0:
            hidden_states = hidden_states + self.scale * _attend(
                attn, query, encoder_hidden_states[:, n_latent:],
                self.to_k_ip, self.to_v_ip, adapt_mask)

        hidden_states = attn.to_out[0](hidden_states)
        hidden_states = attn.to_out[1](hidden_states)  # dropout
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch_size, channel,
                                                                    height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor


def install_eeg_processors(unet, n_adapt_tokens=4, scale=1.0):
    """Give every cross-attention of a U-Net an :class:`EEGAttnProcessor`.

    Self-attention layers (``attn1``) get the stock ``AttnProcessor2_0``.
    Calling it again replaces the EEG processors by fresh copies of
    ``to_k`` / ``to_v``.

    Parameters
    ----------
    unet : diffusers.UNet2DConditionModel
        The U-Net, modified in place.
    n_adapt_tokens : int
        Number of adapter tokens at the end of the context.
    scale : float
        Initial weight of the adapter branch of every processor.

    Returns
    -------
    processors : torch.nn.ModuleDict
        The new processors, keyed by their layer's name with ``.`` replaced
        by ``_`` (``ModuleDict`` keys cannot hold dots). They are also
        submodules of their layers, so their ``to_k_ip`` / ``to_v_ip`` appear
        in ``unet.named_parameters()`` as ``...attn2.processor.to_k_ip.weight``;
        this container is for saving them or setting their ``scale``.
    """
    procs, eeg_procs = {}, {}
    for name in unet.attn_processors:
        layer_name = name.rsplit(".", 1)[0]
        if layer_name.endswith("attn2"):
            proc = EEGAttnProcessor(unet.get_submodule(layer_name), n_adapt_tokens, scale)
            eeg_procs[layer_name.replace(".", "_")] = proc
        else:
            proc = AttnProcessor2_0()
        procs[name] = proc
    if not eeg_procs:
        raise ValueError("The U-Net has no cross-attention layer (no 'attn2'); nothing to "
                         "condition on the EEG.")
    unet.set_attn_processor(procs)
    return nn.ModuleDict(eeg_procs)
