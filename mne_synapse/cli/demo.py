"""Verbs that need no saved model: ``demo`` (the synthetic end-to-end run) and ``info``."""

import time
from pathlib import Path

from ._config import data_spec, sampling_options, write_data_record
from ._data import load_data
from ._steps import (
    config_of, decoding_score, describe_data, fit_with_progress, generate_batches, make_encoder,
    make_generator, metrics_line, progress_bar, save_grid, say, score_generation, split_rows,
)


def info(args):
    import platform

    import mne_synapse
    from ..utils import get_cache_dir, quiet_libraries

    print(f"mne-synapse {mne_synapse.__version__}")
    print(f"python      {platform.python_version()} ({platform.machine()})")
    for name in ("numpy", "torch", "mne", "braindecode", "skorch", "diffusers",
                 "open_clip", "accelerate", "sklearn", "yaml"):
        try:
            with quiet_libraries():  # e.g. braindecode's FutureWarnings about MNE montages
                module = __import__(name)
            print(f"{name:<11} {getattr(module, '__version__', '?')}")
        except ImportError as err:
            print(f"{name:<11} not importable ({err})")
    import torch
    from huggingface_hub import constants

    device = "cuda: " + torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    print(f"device      {device} ({torch.get_num_threads()} threads)")
    print(f"cache       {get_cache_dir()} (data sets, CLIP embeddings; MNE_SYNAPSE_CACHE)")
    print(f"hf cache    {constants.HF_HUB_CACHE} (CLIP, Stable Diffusion weights; "
          f"offline={constants.HF_HUB_OFFLINE})")
    return 0


def demo(args):
    """Synthetic data -> Stage 1 encoder -> Stage 2 generator -> images, figure, metrics."""
    start = time.perf_counter()
    config = config_of(args)
    encoder = make_encoder(args, config)
    generator = make_generator(args, config, encoder)
    sampling = sampling_options("generate", config, n_images=args.n_images)
    for key in ("split", "limit"):  # the demo works on the test split, whole
        sampling.pop(key, None)
    spec = data_spec(config, None)
    epochs = load_data(spec, args.verbose)
    train, test = split_rows(epochs, "train"), split_rows(epochs, "test")
    describe_data(epochs, train, test)

    fit_with_progress(args, encoder, epochs, train)
    score, chance = decoding_score(encoder, epochs, train, test)
    say(f"stage 1 ({time.perf_counter() - start:.0f} s): class decoding of held-out "
         f"images {score:.3f} (chance {chance:.3f})")
    generator.fit(epochs[train])
    say(f"stage 2 ({time.perf_counter() - start:.0f} s): finetuned "
         f"{generator.n_trainable_params_:,} parameters "
         f"({100 * generator.trainable_fraction_:.1f}% of the U-Net)")
    metrics = score_generation(args, generator, epochs, train, test,
                        **{k: v for k, v in sampling.items() if k != "n_images"})

    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    labels = epochs.metadata.label.to_numpy()
    rows = test[[list(labels[test]).index(k) for k in sorted(set(labels[test]))]]
    with progress_bar(args, len(rows), "generating the figure", "epoch") as bar:
        images = generate_batches(generator, epochs[rows], bar, args.random_state, **sampling)
    save_grid(epochs, rows, images, out / "generated.png")
    write_data_record(generator.save(out / "generator"), spec)
    say(metrics_line(metrics))
    say(f"wrote {out / 'generated.png'} and {out / 'generator'}; "
         f"total {time.perf_counter() - start:.0f} s")
    return 0
