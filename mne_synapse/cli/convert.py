"""``convert-official``: the authors' Stage-2 checkpoint -> a saved generator."""

from pathlib import Path

from ._config import UsageError
from ._steps import config_of, say


def convert_official(args):
    from ..encoder import SynapseEncoder
    from ..generator import EEGImageGenerator

    from ..interop.official_stage2 import FROM_FILES

    config = config_of(args)  # only its [generator] section matters here
    if not Path(args.encoder).is_dir():
        raise FileNotFoundError(f"--encoder {args.encoder!r} is not a folder; give the "
                                "folder of a saved encoder (written by fit-encoder or "
                                "SynapseEncoder.save)")
    device = args.device or "cpu"
    encoder = SynapseEncoder.load(args.encoder, device=device)
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
