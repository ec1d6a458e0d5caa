"""The ``mne-synapse`` command line.

Verbs: ``info``, ``demo``, ``fit-encoder``, ``fit-generator``, ``generate`` and
``evaluate`` (``mne-synapse VERB --help``). Each working verb reads an optional
configuration file (TOML, or YAML with pyyaml) that its flags override; see
:mod:`mne_synapse._cli_config`. Heavy libraries are imported inside the verbs,
so ``--help`` answers at once.

Exit status: 0 done; 1 the work failed (a missing or unreadable file, data that
do not fit); 2 the command line or configuration is wrong; 130 interrupted.
"""

import argparse
import sys
import time
from pathlib import Path

from ._cli_config import (
    SECTIONS, UsageError, apply_overrides, data_spec, estimator_params, load_data, read_config,
    sampling_options, write_data_record,
)

# Stage-2 settings of the demo; also the defaults of fit-generator, so that
# fit-encoder -> fit-generator reproduces the demo's model.
_GENERATOR_DEFAULTS = dict(max_steps=600, batch_size=16)


# -- shared steps -------------------------------------------------------------------
def _say(message):
    print(message, flush=True)


def _bar(args, total, desc, unit):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not _show_progress(args),
                file=sys.stderr)


def _show_progress(args):
    # Bars redrawn in a log file (CI, nohup) would be thousands of lines.
    return not args.quiet and sys.stderr.isatty()


def _config(args):
    return apply_overrides(read_config(args.config), args.set)


def _validated(cls, params):
    """Build an estimator and check its parameters before any data is loaded."""
    try:
        estimator = cls(**params)
        estimator._validate_params()
    except (ValueError, TypeError) as err:
        raise UsageError(str(err)) from None
    return estimator


def _encoder(args, config):
    from .encoder import SynapseEncoder

    params = estimator_params(
        "encoder", config, SynapseEncoder,
        dict(random_state=args.random_state, verbose="warning"),
        dict(max_epochs=args.epochs, device=args.device))
    return _validated(SynapseEncoder, params)


def _generator(args, config, encoder):
    from .generator import EEGImageGenerator

    # The generator's own progress bar (Stage 2 steps) follows its verbosity.
    params = estimator_params(
        "generator", config, EEGImageGenerator,
        dict(_GENERATOR_DEFAULTS, random_state=args.random_state,
             verbose="info" if _show_progress(args) else "warning"),
        dict(max_steps=args.steps, device=args.device,
             base_model=getattr(args, "base_model", None)))
    return _validated(EEGImageGenerator, dict(params, encoder=encoder))


def _rows(epochs, split):
    """Indices of the epochs of a split; ``'train'`` means train + val."""
    import numpy as np

    md = epochs.metadata
    if split == "train" and (md.split == "unassigned").all():
        print("warning: the data have no splits; training on every epoch (give [data] "
              "splits_fname to hold images out)", file=sys.stderr)
        return np.arange(len(md))
    names = ["train", "val"] if split == "train" else [split]
    rows = np.flatnonzero(md.split.isin(names))
    if not len(rows):
        raise ValueError(
            f"no epochs in split {split!r} (the data have {sorted(set(md.split))}); for "
            "CVPR40 give [data] splits_fname = 'block_splits_by_image_all.pth'")
    return rows


def _describe(epochs, train, test):
    md = epochs.metadata
    shared = set(md.image_id.iloc[train]) & set(md.image_id.iloc[test])
    disjoint = "image-disjoint" if not shared else f"{len(shared)} images in both!"
    _say(f"data: {len(md)} epochs, {md.subject.nunique()} subjects, {md.label.nunique()} "
         f"classes, {md.image_id.nunique()} images ({len(train)} train / {len(test)} test "
         f"epochs, {disjoint})")


def _stimuli(epochs, rows, read=False):
    """Stimulus paths (or images) of some epochs, from ``metadata.image_path``."""
    from .clip import read_image

    paths = epochs.metadata.image_path.iloc[rows]
    if paths.isna().any():
        raise FileNotFoundError("some epochs have no stimulus image; set [data] image_root "
                                "to the folder of the stimuli")
    return [read_image(p) for p in paths] if read else list(paths)


def _fit_encoder(args, encoder, epochs, train):
    from skorch.callbacks import Callback

    class EpochBar(Callback):
        def on_train_begin(self, net, **kwargs):
            self.bar_ = _bar(args, net.max_epochs, "stage 1 (encoder)", "epoch")

        def on_epoch_end(self, net, **kwargs):
            self.bar_.set_postfix(loss=f"{net.history[-1, 'train_loss']:.3f}", refresh=False)
            self.bar_.update()

        def on_train_end(self, net, **kwargs):
            self.bar_.close()

    extra = list(encoder.callbacks or [])
    encoder.set_params(callbacks=extra + [("progress", EpochBar())]).fit(epochs[train])
    # The bar is display, not model: the saved config holds only JSON values.
    return encoder.set_params(callbacks=extra or None)


def _decoding(encoder, epochs, train, test):
    """Accuracy of a logistic regression on the encoder's embeddings, with chance."""
    from sklearn.linear_model import LogisticRegression

    from .metrics import decoding_accuracy

    labels = epochs.metadata.label.to_numpy()
    clf = LogisticRegression(max_iter=2000).fit(encoder.transform(epochs[train]), labels[train])
    score = decoding_accuracy(labels[test], clf.predict_proba(encoder.transform(epochs[test])),
                              classes=clf.classes_)
    return score.value, score.chance


def _generate(generator, epochs, bar, random_state, n_images=1, batch_size=16, **kwargs):
    """Images (n_epochs, n_images, H, W, 3) generated batch by batch, updating ``bar``."""
    import numpy as np

    generator.set_params(verbose="warning")  # the CLI's bar replaces the per-batch ones
    out = []
    for start in range(0, len(epochs), batch_size):
        out.append(generator.generate(epochs[start:start + batch_size], n_images=n_images,
                                      random_state=random_state + start, output_type="np",
                                      batch_size=batch_size, **kwargs))
        bar.update(len(out[-1]))
    return np.concatenate(out)


def _evaluate(args, generator, epochs, train, test, n_way=None, **sampling):
    """n-way top-1 of images generated from held-out EEG, shuffled-EEG control, chance.

    The judge is a logistic regression on CLIP embeddings (the encoder's CLIP
    model) of the *training* stimuli; it labels each held-out stimulus (the
    reference) and each generated image. The control pairs generated images
    with the references of other epochs, as if generated from shuffled EEG.
    """
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from .metrics import n_way_top_k, shuffled_control

    md = epochs.metadata
    clip = generator.encoder_._clip()
    first = train[np.unique(md.image_id.iloc[train].to_numpy(), return_index=True)[1]]
    judge = LogisticRegression(max_iter=2000).fit(
        clip.embed_images(_stimuli(epochs, first)), md.label.iloc[first])
    reference = np.searchsorted(judge.classes_,
                                judge.predict(clip.embed_images(_stimuli(epochs, test))))
    with _bar(args, len(test), "generating", "epoch") as bar:
        generated = _generate(generator, epochs[test], bar, args.random_state, **sampling)
    proba = judge.predict_proba(clip.embed_images(generated[:, 0]))
    n_way = n_way or min(len(judge.classes_), 50)

    def score(p, ref):
        return n_way_top_k(p, ref, n_way, random_state=0)

    return dict(n_way=n_way, top1=score(proba, reference),
                shuffled_control=shuffled_control(score, proba, reference,
                                                  random_state=args.random_state),
                chance=1 / n_way, n_test_epochs=len(test))


def _metrics_line(m):
    return (f"metrics: {m['n_way']}-way top-1 of images generated from held-out EEG "
            f"{m['top1']:.3f} (shuffled-EEG control {m['shuffled_control']:.3f}, chance "
            f"{m['chance']:.3f})")


def _save_grid(epochs, rows, images, fname):
    """Stimulus vs generated figure, one row per class (first epoch of each)."""
    import numpy as np

    from .viz import plot_generated_grid

    labels = epochs.metadata.label.to_numpy()[rows]
    pick = np.unique(labels, return_index=True)[1][:10]
    fig = plot_generated_grid(_stimuli(epochs, rows[pick], read=True), images[pick],
                              titles=list(epochs.metadata.class_name.iloc[rows[pick]]),
                              show=False)
    fig.savefig(fname, dpi=150)
    return fname


# -- verbs ----------------------------------------------------------------------------
def _info(args):
    import platform

    import mne_synapse
    from mne_synapse.utils import get_cache_dir

    print(f"mne-synapse {mne_synapse.__version__}")
    print(f"python      {platform.python_version()} ({platform.machine()})")
    for name in ("numpy", "torch", "mne", "braindecode", "skorch", "diffusers",
                 "open_clip", "accelerate", "sklearn", "yaml"):
        try:
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


def _fit_encoder_verb(args):
    config = _config(args)
    encoder = _encoder(args, config)
    spec = data_spec(config, args.data)
    epochs = load_data(spec, args.verbose)
    train = _rows(epochs, "train")
    test = _rows(epochs, "test") if (epochs.metadata.split == "test").any() else train[:0]
    _describe(epochs, train, test)
    start = time.perf_counter()
    _fit_encoder(args, encoder, epochs, train)
    out = encoder.save(args.output)
    write_data_record(out, spec)
    _say(f"stage 1: fitted on {len(train)} epochs in {time.perf_counter() - start:.0f} s; "
         f"wrote {out}")
    if len(test):
        score, chance = _decoding(encoder, epochs, train, test)
        _say(f"stage 1: class decoding of held-out images {score:.3f} (chance {chance:.3f})")
    return 0


def _fit_generator_verb(args):
    from .encoder import SynapseEncoder

    config = _config(args)
    encoder = SynapseEncoder.load(args.encoder, device=args.device or "cpu")
    generator = _generator(args, config, encoder)
    spec = data_spec(config, args.data, folder=args.encoder)
    epochs = load_data(spec, args.verbose)
    train = _rows(epochs, "train")
    start = time.perf_counter()
    generator.fit(epochs[train])
    out = generator.save(args.output)
    write_data_record(out, spec)
    _say(f"stage 2: finetuned {generator.n_trainable_params_:,} parameters "
         f"({100 * generator.trainable_fraction_:.1f}% of the U-Net) on {len(train)} epochs "
         f"in {time.perf_counter() - start:.0f} s; wrote {out}")
    return 0


def _load_generator(args):
    from .generator import EEGImageGenerator

    return EEGImageGenerator.load(args.generator, base_model=args.base_model,
                                  device=args.device or "cpu")


def _generate_verb(args):
    import pandas as pd
    from PIL import Image

    config = _config(args)
    options = sampling_options("generate", config, n_images=args.n_images, split=args.split,
                               limit=args.limit, num_inference_steps=args.inference_steps)
    split, limit = options.pop("split", "test"), options.pop("limit", None)
    generator = _load_generator(args)
    epochs = load_data(data_spec(config, args.data, folder=args.generator), args.verbose)
    rows = _rows(epochs, split)[:limit]
    with _bar(args, len(rows), "generating", "epoch") as bar:
        images = _generate(generator, epochs[rows], bar, args.random_state, **options)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    md = epochs.metadata.iloc[rows]
    table = []
    for i, (row, generated) in enumerate(zip(md.itertuples(), images)):
        for k, image in enumerate(generated):
            fname = f"{i:05d}_{row.image_id}_{k}.png"
            Image.fromarray(image).save(out / fname)
            table.append(dict(file=fname, epoch=rows[i], subject=row.subject, label=row.label,
                              class_name=row.class_name, image_id=row.image_id,
                              stimulus=row.image_path))
    pd.DataFrame(table).to_csv(out / "generated.csv", index=False)
    grid = _save_grid(epochs, rows, images, out / "grid.png")
    _say(f"wrote {len(table)} images for {len(rows)} epochs of split {split!r} to {out} "
         f"(index generated.csv, figure {grid.name})")
    return 0


def _evaluate_verb(args):
    import json

    config = _config(args)
    options = sampling_options("evaluate", config, n_way=args.n_way, split=args.split,
                               num_inference_steps=args.inference_steps)
    split = options.pop("split", "test")
    generator = _load_generator(args)
    epochs = load_data(data_spec(config, args.data, folder=args.generator), args.verbose)
    train, test = _rows(epochs, "train"), _rows(epochs, split)
    _describe(epochs, train, test)
    score, chance = _decoding(generator.encoder_, epochs, train, test)
    _say(f"stage 1: class decoding of held-out images {score:.3f} (chance {chance:.3f})")
    metrics = _evaluate(args, generator, epochs, train, test, **options)
    _say(_metrics_line(metrics))
    if args.output:
        metrics.update(decoding=score, decoding_chance=chance, split=split)
        Path(args.output).write_text(json.dumps(metrics, indent=1))
        _say(f"wrote {args.output}")
    return 0


def _demo(args):
    """Synthetic data -> Stage 1 encoder -> Stage 2 generator -> images, figure, metrics."""
    start = time.perf_counter()
    config = _config(args)
    encoder = _encoder(args, config)
    generator = _generator(args, config, encoder)
    sampling = sampling_options("generate", config, n_images=args.n_images)
    for key in ("split", "limit"):  # the demo works on the test split, whole
        sampling.pop(key, None)
    spec = data_spec(config, None)
    epochs = load_data(spec, args.verbose)
    train, test = _rows(epochs, "train"), _rows(epochs, "test")
    _describe(epochs, train, test)

    _fit_encoder(args, encoder, epochs, train)
    score, chance = _decoding(encoder, epochs, train, test)
    _say(f"stage 1 ({time.perf_counter() - start:.0f} s): class decoding of held-out "
         f"images {score:.3f} (chance {chance:.3f})")
    generator.fit(epochs[train])
    _say(f"stage 2 ({time.perf_counter() - start:.0f} s): finetuned "
         f"{generator.n_trainable_params_:,} parameters "
         f"({100 * generator.trainable_fraction_:.1f}% of the U-Net)")
    metrics = _evaluate(args, generator, epochs, train, test,
                        **{k: v for k, v in sampling.items() if k != "n_images"})

    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    labels = epochs.metadata.label.to_numpy()
    rows = test[[list(labels[test]).index(k) for k in sorted(set(labels[test]))]]
    with _bar(args, len(rows), "generating the figure", "epoch") as bar:
        images = _generate(generator, epochs[rows], bar, args.random_state, **sampling)
    _save_grid(epochs, rows, images, out / "generated.png")
    write_data_record(generator.save(out / "generator"), spec)
    _say(_metrics_line(metrics))
    _say(f"wrote {out / 'generated.png'} and {out / 'generator'}; "
         f"total {time.perf_counter() - start:.0f} s")
    return 0


# -- parser ---------------------------------------------------------------------------
def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {value}")
    return value


def build_parser():
    """The argument parser of ``mne-synapse`` (one sub-parser per verb)."""
    parser = argparse.ArgumentParser(
        prog="mne-synapse", description="EEG-to-image synthesis (SYNAPSE) for MNE.",
        epilog="Exit status: 0 done, 1 failed (missing or unreadable file), 2 bad "
               "arguments or configuration, 130 interrupted.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="VERB")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="FILE",
                        help="TOML (or YAML, with pyyaml) file with sections "
                             + ", ".join(f"[{s}]" for s in SECTIONS) + "; flags override it")
    common.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                        help="override one config value, e.g. --set encoder.lr=1e-3 "
                             "(repeatable; VALUE is read as TOML, else as a string)")
    common.add_argument("--random-state", type=int, default=0, help="seed (default 0)")
    common.add_argument("--device", help="torch device, e.g. cuda (default: config or cpu)")
    common.add_argument("--verbose", default="warning", metavar="LEVEL",
                        help="MNE log level of the data readers (default warning)")
    common.add_argument("--quiet", action="store_true",
                        help="no progress bars (shown only on a terminal anyway)")
    data = argparse.ArgumentParser(add_help=False)
    data.add_argument("--data", metavar="SOURCE",
                      help="'synthetic' or a CVPR40 .pth file (default: [data] source, else "
                           "the data the input model was fitted on, else synthetic)")

    def verb(name, func, help_, parents=(common,)):
        p = sub.add_parser(name, help=help_, description=help_, parents=list(parents))
        p.set_defaults(func=func)
        return p

    verb("info", _info, "versions, device and cache folders", parents=())

    demo = verb("demo", _demo, "run the synthetic end-to-end demo: fit both stages, "
                "generate images for held-out EEG, print metrics, save the figure")
    demo.add_argument("--output", default="synapse-demo", help="output folder")
    demo.add_argument("--epochs", type=_positive_int, help="Stage-1 training epochs (40)")
    demo.add_argument("--steps", type=_positive_int, help="Stage-2 finetuning steps (600)")
    demo.add_argument("--n-images", type=_positive_int, default=4,
                      help="images per row of the figure (4)")

    fit_enc = verb("fit-encoder", _fit_encoder_verb, "fit the Stage-1 encoder and save it",
                   parents=(common, data))
    fit_enc.add_argument("--output", required=True, help="folder to save the encoder in")
    fit_enc.add_argument("--epochs", type=_positive_int, help="training epochs (default 40)")

    fit_gen = verb("fit-generator", _fit_generator_verb,
                   "finetune the Stage-2 generator on a saved encoder and save it",
                   parents=(common, data))
    fit_gen.add_argument("--encoder", required=True, help="folder written by fit-encoder")
    fit_gen.add_argument("--output", required=True, help="folder to save the generator in")
    fit_gen.add_argument("--steps", type=_positive_int, help="finetuning steps (default 600)")
    fit_gen.add_argument("--base-model", help="'tiny' or a Stable Diffusion hub name or folder")

    for name, func, help_ in (
            ("generate", _generate_verb, "generate images from EEG and write PNG files"),
            ("evaluate", _evaluate_verb, "score images generated from held-out EEG (n-way "
                                         "top-1, shuffled-EEG control, chance)")):
        p = verb(name, func, help_, parents=(common, data))
        p.add_argument("--generator", required=True, help="folder written by fit-generator")
        p.add_argument("--split", help="which epochs: test (default), val, train, unassigned")
        p.add_argument("--inference-steps", type=_positive_int, help="denoising steps")
        p.add_argument("--base-model", help="where the base Stable Diffusion is now")
    generate = sub.choices["generate"]
    generate.add_argument("--output", required=True, help="folder for the PNG files")
    generate.add_argument("--n-images", type=_positive_int, help="images per epoch (1)")
    generate.add_argument("--limit", type=_positive_int, help="only the first N epochs")
    evaluate = sub.choices["evaluate"]
    evaluate.add_argument("--n-way", type=_positive_int,
                          help="candidates per trial (default: classes, at most 50)")
    evaluate.add_argument("--output", help="also write the metrics to this JSON file")
    return parser


def main(argv=None):
    """Run ``mne-synapse``; return the exit status."""
    args = build_parser().parse_args(argv)
    prefix = f"mne-synapse {args.command}: error:"
    try:
        return args.func(args)
    except UsageError as err:
        print(prefix, str(err).replace("\n", " "), file=sys.stderr)
        return 2
    except (OSError, ValueError, TypeError) as err:
        print(prefix, str(err).replace("\n", " "), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"mne-synapse {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
