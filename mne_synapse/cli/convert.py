"""``convert-official``: the authors' files -> our saved folders.

Their Stage-1 file (``.pth``: the released encoder or their trainer's
checkpoint) becomes a saved encoder; a ``checkpoint-N/`` folder of their
Stage-2 trainer, read onto its base model with the encoder it was trained
with, a saved generator.
"""

from pathlib import Path

from ._config import UsageError
from ._steps import config_of, say


def convert_official(args):
    if Path(args.checkpoint).is_dir():
        return _stage2(args)
    if args.encoder is not None:
        raise UsageError("--encoder goes with a Stage-2 checkpoint-N folder; "
                         f"{args.checkpoint!r} is not a folder (a Stage-1 file is "
                         "converted alone)")
    encoder = _official_encoder(args.checkpoint, args)
    module = encoder.net_.module_
    what = "autoencoder" if module.Decoder is not None else "encoder (no decoder)"
    out = encoder.save(args.output)
    say(f"read the authors' {what} from {args.checkpoint}: "
        f"n_layer={module.Encoder.n_layer}, n_head={args.n_head}, "
        f"{sum(p.numel() for p in module.parameters()):,} parameters, "
        f"{encoder.n_chans_} x {encoder.n_times_} EEG -> {module.Encoder.n_tokens} x "
        f"{module.Encoder.embed_dim}; wrote {out} (SynapseEncoder.load reads it)")
    return 0


def _official_encoder(fname, args):
    from ..encoder import SynapseEncoder

    return SynapseEncoder.from_official(fname, n_head=args.n_head, device=args.device or "cpu")


def _stage2(args):
    from ..encoder import SynapseEncoder
    from ..generator import EEGImageGenerator
    from ..interop.official_stage2 import FROM_FILES

    config = config_of(args)  # only its [generator] section matters here
    if args.encoder is None:
        raise UsageError("a Stage-2 checkpoint-N folder needs --encoder: the Stage-1 "
                         "encoder it was trained with (a saved encoder folder, or their "
                         ".pth file)")
    device = args.device or "cpu"
    if Path(args.encoder).is_file() and Path(args.encoder).suffix == ".pth":
        encoder = _official_encoder(args.encoder, args)
    elif Path(args.encoder).is_dir():
        encoder = SynapseEncoder.load(args.encoder, device=device)
    else:
        raise FileNotFoundError(f"--encoder {args.encoder!r} is not a folder; give the "
                                "folder of a saved encoder (written by fit-encoder or "
                                "SynapseEncoder.save) or the authors' Stage-1 .pth file")
    # The checkpoint decides these; the other [generator] values (sampling) apply.
    params = {k: v for k, v in config.get("generator", {}).items() if k not in FROM_FILES}
    try:
        generator = EEGImageGenerator.from_official(
            args.checkpoint, encoder, base_model=args.base_model, use_ema=args.ema,
            device=device, **params)
    except TypeError as err:  # an unknown [generator] key
        raise UsageError(str(err)) from None
    out = generator.save(args.output)
    say(f"read {args.checkpoint} ({'ema_unet' if args.ema else 'unet'}/ + ip_adaption/) onto "
        f"{generator.base_id_}: {generator.n_trainable_params_:,} finetuned parameters; "
        f"wrote {out}")
    return 0
