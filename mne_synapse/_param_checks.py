"""The parameter checks of both estimators, run at the start of ``fit`` (and by the CLI).

Each check raises a ValueError or TypeError naming the parameter, the value and
what is allowed (the helpers of :mod:`._inputs`), before any data or model is
loaded. The order of the checks is the order of the errors a user meets.
Also :func:`without_options_off`, the parameters that fingerprint a training run.
"""

import numpy as np

from ._inputs import (check_accelerator, check_device, check_int, check_module_kwargs,
                      check_number, check_option)


# Options added after checkpoints and stored fits existed, at the value that
# trains exactly as before them (no callback, no random draw): fingerprints of a
# run leave them out when they have it, so those checkpoints and fits stay valid.
OPTIONS_OFF = {"augment_channel_drop": 0.0, "augment_mix": 0.0, "lr_schedule": None}


def without_options_off(params):
    """``params`` without the :data:`OPTIONS_OFF` options that are off."""
    return {name: value for name, value in params.items()
            if name not in OPTIONS_OFF or OPTIONS_OFF[name] != value}


def check_encoder_params(encoder):
    """Raise a clear error for a bad parameter of a ``SynapseEncoder``."""
    from .models import ARCHITECTURES

    check_option(encoder.preset, "preset", ARCHITECTURES)
    check_option(encoder.output, "output", ("pooled", "tokens"))
    check_option(encoder.alignment, "alignment", ("euclidean", None))
    check_number(encoder.alignment_shrinkage, "alignment_shrinkage", "[0, 1]")
    if not isinstance(encoder.subject_column, str):
        raise TypeError(f"subject_column must be a str, got {encoder.subject_column!r}.")
    # The loss, targets, optimisation and network.
    check_option(encoder.text_layer, "text_layer", ("penultimate", "last"))
    check_option(encoder.cosine_axis, "cosine_axis", ("features", "tokens"))
    check_option(encoder.lr_schedule, "lr_schedule", ("cosine", None))
    for name in ("recon_weight", "align_weight", "contrastive_weight", "lr",
                 "weight_decay", "grad_clip", "augment_noise", "augment_shift"):
        check_number(getattr(encoder, name), name)
    if encoder.recon_weight + encoder.align_weight + encoder.contrastive_weight == 0:
        raise ValueError("At least one of the loss weights must be > 0.")
    check_number(encoder.augment_channel_drop, "augment_channel_drop", "[0, 1)")
    check_number(encoder.augment_mix, "augment_mix", "[0, 1]")
    for name in ("max_epochs", "batch_size"):
        check_int(getattr(encoder, name), name)
    check_number(encoder.validation_fraction, "validation_fraction", "[0, 1)")
    if encoder.early_stopping is not None and encoder.validation_fraction == 0:
        raise ValueError("early_stopping needs validation_fraction > 0.")
    if encoder.checkpoint_dir is not None and not isinstance(encoder.random_state,
                                                             (int, np.integer)):
        raise ValueError(
            "checkpoint_dir needs an integer random_state: a run with a random "
            f"seed cannot be continued identically (got {encoder.random_state!r})."
        )
    for name in ("accelerator", "warm_start"):
        if getattr(encoder, name) and encoder.checkpoint_dir is not None:
            raise ValueError(f"checkpoint_dir cannot be combined with {name} yet; "
                             "pass one of them.")
    if encoder.module_kwargs is not None:  # the authors' sizes are fixed, not from the data
        check_module_kwargs(
            encoder.module_kwargs, ARCHITECTURES[encoder.preset], from_data=() if
            encoder.preset == "paper" else ("n_chans", "n_times", "sfreq", "chs_info"),
            refused=dict(n_outputs="SynapseEncoder trains the autoencoder; for a classifier "
                         "use braindecode.EEGClassifier(build_autoencoder(preset, ..., "
                         "n_outputs=k))", chs_info="the signal comes from the data",
                         input_window_seconds="the signal comes from the data"))
    check_device(encoder.device)
    check_accelerator(encoder.accelerator)


def check_generator_params(generator):
    """Raise a clear error for a bad parameter of an ``EEGImageGenerator``."""
    from ._finetuning import UNCONDITIONAL_CONTEXTS, VAE_SAMPLING
    from .models import RECIPES

    for name, options in (("recipe", RECIPES), ("vae_sampling", VAE_SAMPLING),
                          ("unconditional_context", UNCONDITIONAL_CONTEXTS),
                          ("encoder_dropout", (False, True)),
                          ("mixed_precision", ("no", "fp16", "bf16"))):
        check_option(getattr(generator, name), name, options)
    for name in ("max_steps", "batch_size", "grad_accumulation", "n_adapt_tokens"):
        check_int(getattr(generator, name), name)
    check_number(generator.condition_dropout, "condition_dropout", "[0, 1)")
    if generator.ema_decay is not None:
        check_number(generator.ema_decay, "ema_decay", "(0, 1)")
    if generator.resolution is not None:
        check_int(generator.resolution, "resolution")
    check_device(generator.device)
    check_accelerator(generator.accelerator, generator.grad_accumulation,
                      generator.mixed_precision)
