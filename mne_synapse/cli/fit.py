"""Verbs that fit and save the estimators: ``fit-encoder`` and ``fit-generator``."""

import time

from ._config import data_spec, write_data_record
from ._data import load_data
from ._steps import (
    config_of, decoding_score, describe_data, fit_with_progress, make_encoder, make_generator,
    say, split_rows,
)


def fit_encoder(args):
    config = config_of(args)
    encoder = make_encoder(args, config)
    spec = data_spec(config, args.data)
    epochs = load_data(spec, args.verbose)
    train = split_rows(epochs, "train")
    test = split_rows(epochs, "test") if (epochs.metadata.split == "test").any() else train[:0]
    describe_data(epochs, train, test)
    start = time.perf_counter()
    fit_with_progress(args, encoder, epochs, train)
    out = encoder.save(args.output)
    write_data_record(out, spec)
    say(f"stage 1: fitted on {len(train)} epochs in {time.perf_counter() - start:.0f} s; "
         f"wrote {out}")
    if len(test) and "label" in epochs.metadata:
        score, chance = decoding_score(encoder, epochs, train, test)
        say(f"stage 1: class decoding of held-out images {score:.3f} (chance {chance:.3f})")
    return 0


def fit_generator(args):
    from ..encoder import SynapseEncoder

    config = config_of(args)
    encoder = SynapseEncoder.load(args.encoder, device=args.device or "cpu")
    generator = make_generator(args, config, encoder)
    spec = data_spec(config, args.data, folder=args.encoder)
    epochs = load_data(spec, args.verbose)
    train = split_rows(epochs, "train")
    start = time.perf_counter()
    generator.fit(epochs[train])
    out = generator.save(args.output)
    write_data_record(out, spec)
    say(f"stage 2: finetuned {generator.n_trainable_params_:,} parameters "
         f"({100 * generator.trainable_fraction_:.1f}% of the U-Net) on {len(train)} epochs "
         f"in {time.perf_counter() - start:.0f} s; wrote {out}")
    return 0
