"""Read the authors' Stage-1 files into our reimplementation of their network.

Two layouts exist, both a dict with the weights under ``"net"``:

- the encoder alone, as released (e.g. ``EEGEncoder_BLIP2_69000.pth``), keys
  like ``in_layer.conv.weight``, ``main_flow.0.0.norm1.weight``;
- their Stage-1 trainer's checkpoint: the whole autoencoder, keys prefixed
  ``Encoder.`` / ``Decoder.``, beside the optimiser state (``"optim"``, ignored).

A ``module.`` prefix on every key (left by ``DistributedDataParallel``) is
removed. Nothing else is renamed or dropped: the load is strict.
:func:`official_encoder` makes the fitted ``SynapseEncoder`` of such a file.
"""

import re
from collections.abc import Mapping

import numpy as np
import torch
from mne.utils import logger, verbose

from ..datasets.cvpr40 import _safe_torch_load
from ..models.official_autoencoder import OfficialAutoencoder, OfficialEncoder

_DDP_PREFIX = "module."
_AE_PREFIXES = ("Encoder.", "Decoder.")
# Keys every variant of their encoder has; a file with none is another model.
_ENCODER_MARKERS = ("in_layer.conv.weight", "out_layer.conv.weight",
                    "skips_agg.0.linear.weight", "main_flow.0.0.norm1.weight")
# The transformer closes each level, after the n_layer residual units.
_FIRST_TRANSFORMER = re.compile(r"^main_flow\.0\.(\d+)\.mha\.wq\.conv\.weight$")


@verbose
def load_official_stage1(fname, *, n_head=64, n_layer=None, dropout=0.5, verbose=None):
    """Load the authors' Stage-1 encoder or autoencoder from one of their files.

    Parameters
    ----------
    fname : path-like
        A ``.pth`` file written by the authors' code: ``{"net": encoder
        state}`` (their released encoder) or ``{"net": autoencoder state,
        "optim": ...}`` (their Stage-1 trainer). A bare state dict is also
        accepted.
    n_head : int
        Attention heads. The weights do not reveal it: the released encoder
        and ``Train_LDM.json`` use 64 (the default), ``Train_AE.json`` says 16.
        A wrong value loads without error but computes other outputs.
    n_layer : int | None
        Residual units per level. None reads it from the file's keys.
    dropout : float
        Dropout rate of the rebuilt network (0.5 in their configurations);
        it matters only in training mode.
    verbose : bool | str | int | None
        MNE-style verbosity; at ``'info'`` a line says what was loaded.

    Returns
    -------
    module : OfficialEncoder | OfficialAutoencoder
        The network with the file's weights, on CPU, in float32 and in eval
        mode (their Stage 2 left the encoder in training mode, so that its
        dropout acted as augmentation: call ``module.train()`` to do the same).
        Its encoder takes EEG ``(n_epochs, 128, 440)`` and returns
        ``(n_epochs, 77, 1024)``.

    Raises
    ------
    FileNotFoundError
        If ``fname`` does not exist.
    ValueError
        If the file is not a torch file, holds Python objects beyond tensors
        and containers, is not a dict of tensors, belongs to another model, or
        does not match the network exactly (every missing, unexpected and
        mis-shaped key is named).
    """
    obj = _safe_torch_load(fname, "file of the authors' Stage-1 network")
    state = _weights_of(obj, fname)
    if state and all(key.startswith(_DDP_PREFIX) for key in state):
        state = {key[len(_DDP_PREFIX):]: value for key, value in state.items()}
    is_autoencoder = any(key.startswith(_AE_PREFIXES) for key in state)
    encoder_keys = ([key[len("Encoder."):] for key in state if key.startswith("Encoder.")]
                    if is_autoencoder else list(state))
    if not set(encoder_keys) & set(_ENCODER_MARKERS):
        shown = ", ".join(sorted(state)[:5]) or "no keys at all"
        raise ValueError(
            f"{str(fname)!r} does not hold the authors' Stage-1 EEG encoder or "
            f"autoencoder: none of its keys is one of {list(_ENCODER_MARKERS)} "
            f"(optionally prefixed 'Encoder.'); it has {shown}"
            f"{' ...' if len(state) > 5 else ''}.")
    if n_layer is None:
        n_layer = _infer_n_layer(encoder_keys)
    cls = OfficialAutoencoder if is_autoencoder else OfficialEncoder
    module = cls(n_layer=n_layer, n_head=n_head, dropout=dropout)
    _load_strictly(module, state, f"{str(fname)!r} (read as the authors' "
                   f"{'autoencoder' if is_autoencoder else 'encoder'}, n_layer={n_layer})")
    logger.info(f"Loaded the authors' {'autoencoder' if is_autoencoder else 'encoder'} "
                f"(n_layer={n_layer}, n_head={n_head}) from {fname}.")
    return module.eval()


def _weights_of(obj, fname):
    """The state dict inside a loaded file: ``obj["net"]``, or ``obj`` itself."""
    if not isinstance(obj, Mapping):
        raise ValueError(f"{str(fname)!r} holds a {type(obj).__name__}, not the dict "
                         "{'net': state_dict} the authors' code writes.")
    state = obj["net"] if "net" in obj else obj
    if not isinstance(state, Mapping):
        raise ValueError(f"{str(fname)!r}: its 'net' entry is a {type(state).__name__}, "
                         "not a state dict.")
    bad = [str(key) for key, value in state.items()
           if not (isinstance(key, str) and isinstance(value, torch.Tensor))]
    if bad:
        where = "its 'net' entry" if "net" in obj else "it (no 'net' entry)"
        raise ValueError(
            f"{str(fname)!r} is not a state dict: {where} maps {len(bad)} key(s) to "
            f"something other than a tensor, e.g. {bad[:5]}. The authors' files hold "
            "{'net': {parameter name: tensor}}.")
    return dict(state)


def _infer_n_layer(encoder_keys):
    found = [int(m[1]) for m in map(_FIRST_TRANSFORMER.match, encoder_keys) if m]
    # Without the key the strict load below names what is missing; 2 is theirs.
    return found[0] if len(found) == 1 and found[0] >= 1 else 2


def _load_strictly(module, state, what):
    """``load_state_dict(strict=True)`` with an error that names every mismatch."""
    check_state({key: tuple(value.shape) for key, value in module.state_dict().items()},
                state, what)
    module.load_state_dict(state, strict=True)


def check_state(expected, state, what):
    """Raise a ValueError naming every missing, unexpected and mis-shaped key of ``state``.

    ``expected`` maps each key to its shape.
    """
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshaped = sorted(key for key in set(expected) & set(state)
                       if tuple(state[key].shape) != tuple(expected[key]))
    if missing or unexpected or misshaped:
        lines = [f"{what} does not match the network:"]
        if missing:
            lines.append(f"missing keys ({len(missing)}): {', '.join(missing)}")
        if unexpected:
            lines.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected)}")
        for key in misshaped:
            lines.append(f"mis-shaped key {key}: expected {tuple(expected[key])}, "
                         f"found {tuple(state[key].shape)}")
        raise ValueError("\n  ".join(lines))


def official_encoder(cls, fname, n_head, device, verbose, params):
    """The work of ``SynapseEncoder.from_official`` (``cls``: the estimator class).

    The estimator is passed in, so that this module never imports it.
    """
    from .._inputs import check_device
    from .._training import module_kwargs_for, set_fitted

    if params.get("alignment") is not None:
        raise ValueError("from_official: their network saw the stored values, unaligned; "
                         f"alignment must be None, got {params['alignment']!r}.")
    check_device(device)
    module = load_official_stage1(fname, n_head=n_head, verbose=verbose)
    if isinstance(module, OfficialEncoder):  # their released file: the encoder alone
        encoder, module = module, OfficialAutoencoder(n_layer=module.n_layer, n_head=n_head,
                                                      decoder=False)
        module.Encoder = encoder
    has_decoder = module.Decoder is not None
    no_reconstruction = {} if has_decoder else {"recon_weight": 0.0}
    self = cls.paper(**{
        "module_kwargs": dict(n_layer=module.Encoder.n_layer, n_head=n_head,
                              decoder=has_decoder),
        **no_reconstruction, "device": device, "verbose": verbose, **params})
    self._validate_params()
    n_chans, n_times = module.Encoder.n_chans, module.Encoder.n_times
    return set_fitted(
        self, module.eval(), device, n_chans=n_chans, n_times=n_times, sfreq=None,
        ch_names=None, module_kwargs=module_kwargs_for(self, n_chans, n_times, None),
        scale_mean=np.zeros((n_chans, 1), np.float32),
        scale_std=np.ones((n_chans, 1), np.float32), subject_aware=False, whiteners=None,
        signal_rms=None)
