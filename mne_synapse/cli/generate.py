"""Verbs that use a saved generator: ``generate`` (PNG files) and ``evaluate`` (scores)."""

import re
from pathlib import Path

from ._config import data_spec, sampling_options
from ._data import load_data
from ._steps import (
    config_of, decoding_score, describe_data, generate_batches, metrics_line, progress_bar,
    save_grid, say, score_generation, split_rows,
)


def load_generator(args):
    from ..generator import EEGImageGenerator

    return EEGImageGenerator.load(args.generator, base_model=args.base_model,
                                  device=args.device or "cpu")


def generate(args):
    import pandas as pd
    from PIL import Image

    config = config_of(args)
    options = sampling_options("generate", config, n_images=args.n_images, split=args.split,
                               limit=args.limit, num_inference_steps=args.inference_steps)
    split, limit = options.pop("split", "test"), options.pop("limit", None)
    generator = load_generator(args)
    epochs = load_data(data_spec(config, args.data, folder=args.generator), args.verbose)
    rows = split_rows(epochs, split)[:limit]
    with progress_bar(args, len(rows), "generating", "epoch") as bar:
        images = generate_batches(generator, epochs[rows], bar, args.random_state, **options)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    md = epochs.metadata.iloc[rows]
    table = []
    for i, (row, generated) in enumerate(zip(md.itertuples(), images)):
        # An image id may be a path (own data): keep a safe tail of it in the name.
        name = re.sub(r"[^\w.-]+", "_", str(row.image_id))[-60:]
        for k, image in enumerate(generated):
            fname = f"{i:05d}_{name}_{k}.png"
            Image.fromarray(image).save(out / fname)
            table.append(dict(file=fname, epoch=rows[i], **{
                key: getattr(row, key, None) for key in ("subject", "label", "class_name",
                                                         "image_id")},
                stimulus=row.image_path))
    pd.DataFrame(table).to_csv(out / "generated.csv", index=False)
    grid = save_grid(epochs, rows, images, out / "grid.png")
    say(f"wrote {len(table)} images for {len(rows)} epochs of split {split!r} to {out} "
         f"(index generated.csv, figure {grid.name})")
    return 0


def evaluate(args):
    import json

    config = config_of(args)
    options = sampling_options("evaluate", config, n_way=args.n_way, split=args.split,
                               num_inference_steps=args.inference_steps)
    split = options.pop("split", "test")
    generator = load_generator(args)
    epochs = load_data(data_spec(config, args.data, folder=args.generator), args.verbose)
    if "label" not in epochs.metadata:
        raise ValueError("evaluate scores the generated images by class: the data need a "
                         "'label' or 'class_name' metadata column")
    train, test = split_rows(epochs, "train"), split_rows(epochs, split)
    describe_data(epochs, train, test)
    score, chance = decoding_score(generator.encoder_, epochs, train, test)
    say(f"stage 1: class decoding of held-out images {score:.3f} (chance {chance:.3f})")
    metrics = score_generation(args, generator, epochs, train, test, **options)
    say(metrics_line(metrics))
    if args.output:
        metrics.update(decoding=score, decoding_chance=chance, split=split)
        Path(args.output).write_text(json.dumps(metrics, indent=1))
        say(f"wrote {args.output}")
    return 0
