"""Read the authors' Stage-2 checkpoints onto a base Stable Diffusion.

Their trainer (``src/trainer/eeg_ldm2_ddp_trainer.py`` of CVMILab-CUK/synapse)
writes a folder ``checkpoint-N/`` holding:

- ``unet/diffusion_pytorch_model.safetensors`` + ``unet/config.json``: the
  whole U-Net (diffusers ``save_pretrained``) with their IP-Adapter attention
  processors installed, whose new projections are saved as
  ``...attn2.processor.to_k_ip.weight`` / ``...attn2.processor.to_v_ip.weight``;
- ``ema_unet/``: the same layout, the U-Net's EMA weights (with ``use_ema``);
- ``ip_adaption/diffusion_pytorch_model.safetensors``: their adapter, an
  ``nn.Sequential(Linear, Rearrange, LayerNorm)``, keys ``0.weight``,
  ``0.bias``, ``2.weight``, ``2.bias`` (possibly prefixed ``module.``).

Our U-Net with the EEG processors
(:func:`~mne_synapse.models.install_eeg_processors`) has exactly their
parameter names, so every tensor of their U-Net file is loaded under its own
name; the adapter's four keys are renamed by :data:`ADAPTER_KEYS`. Nothing is
dropped: a missing, unexpected or mis-shaped key is an error that names it.
"""

import json
from pathlib import Path

from .official import check_state

WEIGHTS = "diffusion_pytorch_model.safetensors"
# Their adapter's keys -> ours (mne_synapse.models.EEGAdapter): nn.Sequential
# index 0 is the Linear, 1 the Rearrange (no weights), 2 the LayerNorm.
ADAPTER_KEYS = {"0.weight": "proj.weight", "0.bias": "proj.bias",
                "2.weight": "norm.weight", "2.bias": "norm.bias"}
# U-Net configuration entries that change its tensors: they must match the base's.
_ARCHITECTURE = ("in_channels", "out_channels", "block_out_channels", "layers_per_block",
                 "cross_attention_dim", "attention_head_dim", "num_attention_heads",
                 "down_block_types", "mid_block_type", "up_block_types",
                 "transformer_layers_per_block", "use_linear_projection", "norm_num_groups")
# The authors train the names holding these (src/models/eeg_LDM2.py); the rest
# of their U-Net file must be the base model's own weights.
_TRAINED = ("attn2", "time", "norm2")
_DDP = "module."


def _read_weights(folder, what):
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    index = folder / (WEIGHTS + ".index.json")
    files = ([folder / WEIGHTS] if (folder / WEIGHTS).is_file() else
             sorted({folder / f for f in json.loads(index.read_text())["weight_map"].values()})
             if index.is_file() else [])
    if not files:
        held = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
        raise FileNotFoundError(
            f"{folder / WEIGHTS} does not exist (the folder holds {held or 'nothing'}); "
            f"{what} of the authors' trainer is saved there by diffusers' save_pretrained.")
    state = {}
    for file in files:
        try:
            state.update(load_file(file))
        except (SafetensorError, OSError) as err:
            raise ValueError(f"{file} is not a readable safetensors file ({err}); download "
                             "it again.") from err
    if state and all(key.startswith(_DDP) for key in state):
        state = {key[len(_DDP):]: value for key, value in state.items()}
    return state


def read_official_stage2(checkpoint_dir, use_ema=False):
    """Read and check the files of one ``checkpoint-N/`` folder of the authors' trainer.

    Parameters
    ----------
    checkpoint_dir : path-like
        The folder (with ``unet/``, ``ip_adaption/``, maybe ``ema_unet/``).
    use_ema : bool
        Read ``ema_unet/`` instead of ``unet/``. Their ``gen_images.py``
        with ``Test_LDM.json`` (``use_ema`` 0) samples with ``unet/``.

    Returns
    -------
    unet_config : dict
        Their ``config.json``.
    unet_state : dict of str to torch.Tensor
        Every tensor of their U-Net file, under its own name.
    adapter_state : dict of str to torch.Tensor
        Their adapter, under :class:`~mne_synapse.models.EEGAdapter`'s names.
    n_adapt_tokens : int
        Tokens of ``Z_adapt`` (4 in their configuration), from the adapter's shapes.
    """
    root = Path(checkpoint_dir).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"{str(root)!r} is not a folder; give a checkpoint-N folder "
                                "of the authors' Stage-2 trainer (with unet/ and "
                                "ip_adaption/).")
    sub = "ema_unet" if use_ema else "unet"
    if not (root / sub).is_dir():
        held = sorted(p.name for p in root.iterdir())
        hint = (" Their trainer writes ema_unet/ only when trained with use_ema; load "
                "with use_ema=False." if use_ema else "")
        raise FileNotFoundError(f"{root} has no {sub}/ folder (it holds {held or 'nothing'}); "
                                "a checkpoint-N folder of the authors' Stage-2 trainer has "
                                f"unet/, ip_adaption/ and, with EMA, ema_unet/.{hint}")
    config_file = root / sub / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{config_file} does not exist; their U-Net folders are "
                                "written by save_pretrained, with a config.json.")
    try:
        unet_config = json.loads(config_file.read_text())
    except ValueError as err:
        raise ValueError(f"{config_file} is not valid JSON ({err}).") from err
    unet_state = _read_weights(root / sub, f"the {sub}")
    if not any(".processor.to_k_ip." in key for key in unet_state):
        raise ValueError(f"{root / sub / WEIGHTS} has no IP-Adapter projections (no key like "
                         "'...attn2.processor.to_k_ip.weight'): it is not a U-Net of the "
                         "authors' Stage 2 (trained with ip_adapter_enabled).")
    theirs = _read_weights(root / "ip_adaption", "the adapter (ip_adaption/)")
    if set(theirs) != set(ADAPTER_KEYS):
        raise ValueError(
            f"{root / 'ip_adaption' / WEIGHTS} has keys {sorted(theirs)}; the authors' "
            f"adapter, nn.Sequential(Linear, Rearrange, LayerNorm), has {sorted(ADAPTER_KEYS)}"
            f" (missing {sorted(set(ADAPTER_KEYS) - set(theirs))}, unexpected "
            f"{sorted(set(theirs) - set(ADAPTER_KEYS))}).")
    adapter_state = {ADAPTER_KEYS[key]: value for key, value in theirs.items()}
    shapes = {key: tuple(value.shape) for key, value in adapter_state.items()}
    dim = shapes["norm.weight"][0] if len(shapes["norm.weight"]) == 1 else 0
    rows = shapes["proj.weight"][0] if len(shapes["proj.weight"]) == 2 else 0
    if (not dim or not rows or rows % dim or shapes["norm.bias"] != (dim,)
            or shapes["proj.bias"] != (rows,)):
        found = {key: tuple(value.shape) for key, value in sorted(theirs.items())}
        raise ValueError(f"{root / 'ip_adaption' / WEIGHTS}: shapes {found} are not those "
                         "of Linear(E, n x D) followed by LayerNorm(D), n adapter tokens of "
                         "D features.")
    return unet_config, unet_state, adapter_state, rows // dim


def load_official_stage2(checkpoint_dir, base_model, embed_dim, use_ema=False):
    """The authors' finetuned U-Net and adapter, on the parts of a base Stable Diffusion.

    Parameters
    ----------
    checkpoint_dir : path-like
        A ``checkpoint-N/`` folder of their trainer (see :func:`read_official_stage2`).
    base_model : str | path-like | DiffusionPipeline
        The Stable Diffusion they finetuned (their code:
        ``'stabilityai/stable-diffusion-2-1'``), as
        :func:`~mne_synapse.generator.load_base_model` takes it.
    embed_dim : int
        Features per token of the encoder's ``Z_latent`` (what the adapter reads).
    use_ema : bool
        Their EMA U-Net (``ema_unet/``) instead of ``unet/``.

    Returns
    -------
    parts : dict
        ``vae``, ``unet`` (their weights, EEG processors installed, the
        ``'paper'`` recipe marked trainable), ``adapter``, ``scheduler``,
        ``base_id``, ``n_unet_params`` (of the stock U-Net) and ``n_adapt_tokens``.

    Raises
    ------
    ValueError
        If their U-Net is another architecture than the base's, was finetuned
        from other base weights (a tensor they did not train differs), does
        not match it key by key, or their adapter does not fit the encoder
        and U-Net.
    """
    import torch

    from .._finetuning import load_base_model, prepare_unet
    from ..models import EEGAdapter, count_parameters

    unet_config, state, adapter_state, n_tokens = read_official_stage2(checkpoint_dir, use_ema)
    where = Path(checkpoint_dir) / ("ema_unet" if use_ema else "unet")
    vae, unet, scheduler, base_id = load_base_model(base_model)
    differs = [f"{key} (theirs {unet_config.get(key)!r}, base {unet.config.get(key)!r})"
               for key in _ARCHITECTURE if key in unet_config
               and _plain(unet_config[key]) != _plain(unet.config.get(key))]
    if differs:
        raise ValueError(f"The U-Net in {where} is not base model {base_id}'s architecture: "
                         f"{'; '.join(differs)}. Pass the Stable Diffusion they finetuned as "
                         "base_model= (their code: 'stabilityai/stable-diffusion-2-1').")
    dim = unet.config.cross_attention_dim
    in_dim, out_dim = adapter_state["proj.weight"].shape[1], adapter_state["norm.weight"].shape[0]
    if in_dim != embed_dim or out_dim != dim:
        raise ValueError(f"Their adapter maps {in_dim} features to tokens of {out_dim}; the "
                         f"encoder's latent has {embed_dim} features per token and the U-Net's "
                         f"cross-attention reads {dim}. Use the encoder they trained with and "
                         "their base model.")
    n_unet_params = count_parameters(unet, trainable_only=False)
    prepare_unet(unet, n_tokens, 1.0, "paper")
    base = unet.state_dict()
    # Same names and shapes both ways first, so the comparison below sees them all.
    check_state({key: value.shape for key, value in base.items()}, state,
                f"The U-Net in {where} (on base model {base_id})")
    changed = [key for key, value in base.items() if not any(t in key for t in _TRAINED)
               and not torch.allclose(value, state[key].to(value.dtype), rtol=1e-3, atol=1e-6)]
    if changed:
        raise ValueError(
            f"{len(changed)} tensor(s) of the U-Net in {where} that the authors do not "
            f"train differ from base model {base_id}'s, e.g. {changed[:3]}: it was finetuned "
            "from another Stable Diffusion. Pass that one as base_model= (their code: "
            "'stabilityai/stable-diffusion-2-1').")
    unet.load_state_dict({key: value.to(base[key].dtype) for key, value in state.items()},
                         strict=True)
    adapter = EEGAdapter(in_dim, dim, n_tokens)
    adapter.load_state_dict(adapter_state)
    return dict(vae=vae.eval(), unet=unet.eval(), adapter=adapter.eval(), scheduler=scheduler,
                base_id=base_id, n_unet_params=n_unet_params, n_adapt_tokens=n_tokens)


def _plain(value):
    """Config values compare alike whether read from JSON (lists) or built (tuples)."""
    return list(value) if isinstance(value, (list, tuple)) else value


# What the files decide; from_official's **params cannot change them.
FROM_FILES = ("encoder", "base_model", "recipe", "n_adapt_tokens", "device")


def official_generator(cls, checkpoint_dir, encoder, base_model, use_ema, device, params):
    """The work of ``EEGImageGenerator.from_official`` (``cls``: the estimator class).

    The estimator is passed in, so that this module never imports it.
    """
    import torch
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    from .._finetuning import set_fitted

    fixed = sorted(set(params) & set(FROM_FILES))
    if fixed:
        raise ValueError(f"from_official takes {fixed} from its arguments and the files; "
                         "they cannot be given as extra parameters.")
    try:
        check_is_fitted(encoder, "net_")
    except (NotFittedError, TypeError) as err:
        raise ValueError(
            "from_official needs the fitted Stage-1 encoder the checkpoint was trained "
            "with (e.g. SynapseEncoder.from_official(their encoder file)), got "
            f"{type(encoder).__name__}.") from err
    module = encoder.net_.module_
    probe = torch.zeros(1, encoder.n_chans_, encoder.n_times_,
                        device=next(module.parameters()).device)
    with torch.no_grad():
        embed_dim = int(module.eval().encode(probe).shape[-1])
    parts = load_official_stage2(checkpoint_dir, base_model, embed_dim, use_ema)
    generator = cls.paper(encoder=encoder, base_model=parts["base_id"], device=device,
                          n_adapt_tokens=parts["n_adapt_tokens"], **params)
    generator._validate_params()
    generator.loss_curve_ = []
    return set_fitted(generator, parts["unet"].to(device), parts["adapter"].to(device),
                      parts["vae"].to(device), parts["scheduler"], parts["base_id"], encoder,
                      parts["n_unet_params"])
