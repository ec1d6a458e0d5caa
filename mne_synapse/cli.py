"""The ``mne-synapse`` command line.

Heavy libraries are imported inside the verbs, so ``--help`` answers at once.
"""

import argparse
import sys
import time


def _info(args):
    import platform

    import mne_synapse
    from mne_synapse.utils import get_cache_dir

    print(f"mne-synapse {mne_synapse.__version__}")
    print(f"python      {platform.python_version()} ({platform.machine()})")
    for name in ("numpy", "torch", "mne", "braindecode", "skorch", "diffusers",
                 "open_clip", "sklearn"):
        try:
            module = __import__(name)
            print(f"{name:<11} {getattr(module, '__version__', '?')}")
        except ImportError as err:
            print(f"{name:<11} not importable ({err})")
    import torch

    device = "cuda: " + torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    print(f"device      {device} ({torch.get_num_threads()} threads)")
    print(f"cache       {get_cache_dir()}")
    return 0


def _demo(args):
    """Synthetic data -> Stage 1 encoder -> Stage 2 generator -> images, figure, metrics."""
    from pathlib import Path

    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from mne_synapse import SynapseEncoder
    from mne_synapse.clip import CLIPEmbedder
    from mne_synapse.datasets import make_synthetic
    from mne_synapse.generator import EEGImageGenerator
    from mne_synapse.metrics import n_way_top_k
    from mne_synapse.viz import plot_generated_grid

    start = time.perf_counter()
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    data = make_synthetic(random_state=args.random_state, verbose=args.verbose)
    md = data.epochs.metadata
    train = np.flatnonzero(md.split.isin(["train", "val"]))
    test = np.flatnonzero(md.split == "test")
    labels = md.label.to_numpy()
    print(f"data: {len(md)} epochs, {md.subject.nunique()} subjects, "
          f"{md.label.nunique()} classes, {md.image_id.nunique()} images "
          f"({len(train)} train / {len(test)} test epochs, image-disjoint)", flush=True)

    encoder = SynapseEncoder(max_epochs=args.epochs, random_state=args.random_state,
                             verbose=args.verbose).fit(data.epochs[train])
    clf = LogisticRegression(max_iter=2000).fit(encoder.transform(data.epochs[train]),
                                                labels[train])
    decoding = clf.score(encoder.transform(data.epochs[test]), labels[test])
    print(f"stage 1 ({time.perf_counter() - start:.0f} s): class decoding of held-out "
          f"images {decoding:.3f} (chance {1 / md.label.nunique():.3f})", flush=True)

    generator = EEGImageGenerator(encoder=encoder, max_steps=args.steps,
                                  batch_size=16, random_state=args.random_state,
                                  verbose=args.verbose).fit(data.epochs[train])
    print(f"stage 2 ({time.perf_counter() - start:.0f} s): finetuned "
          f"{generator.n_trainable_params_:,} parameters "
          f"({100 * generator.trainable_fraction_:.1f}% of the U-Net)", flush=True)

    # Judge generated images with a classifier trained on real stimuli only.
    clip = CLIPEmbedder("tiny", "synthetic")
    train_images = data.images[np.unique(md.image_index.to_numpy()[train])]
    judge = LogisticRegression(max_iter=2000).fit(
        clip.embed_images(train_images), data.labels[np.unique(md.image_index.to_numpy()[train])])
    stimuli = data.images[md.image_index.to_numpy()[test]]
    reference = judge.predict(clip.embed_images(stimuli))
    generated = generator.generate(data.epochs[test], random_state=args.random_state,
                                   output_type="np")[:, 0]
    rng = np.random.default_rng(args.random_state)
    shuffled = generator.generate(data.epochs[test[rng.permutation(len(test))]],
                                  random_state=args.random_state, output_type="np")[:, 0]
    n_way = md.label.nunique()
    score = n_way_top_k(judge.predict_proba(clip.embed_images(generated)), reference, n_way,
                        random_state=0)
    control = n_way_top_k(judge.predict_proba(clip.embed_images(shuffled)), reference, n_way,
                          random_state=0)

    rows = [test[np.flatnonzero(labels[test] == k)[0]] for k in np.unique(labels[test])]
    grid = generator.generate(data.epochs[rows], n_images=args.n_images,
                              random_state=args.random_state, output_type="np")
    fig = plot_generated_grid(data.images[md.image_index.to_numpy()[rows]], grid,
                              titles=list(md.class_name.to_numpy()[rows]), show=False)
    fig.savefig(out / "generated.png", dpi=150)
    generator.save(out / "generator")
    print(f"metrics: {n_way}-way top-1 of images generated from held-out EEG {score:.3f} "
          f"(shuffled-EEG control {control:.3f}, chance {1 / n_way:.3f})")
    print(f"wrote {out / 'generated.png'} and {out / 'generator'}; "
          f"total {time.perf_counter() - start:.0f} s")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(
        prog="mne-synapse", description="EEG-to-image synthesis (SYNAPSE) for MNE."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    info = sub.add_parser("info", help="versions, device and cache folder")
    info.set_defaults(func=_info)

    demo = sub.add_parser("demo", help="run the synthetic end-to-end demo")
    demo.add_argument("--output", default="synapse-demo", help="output folder")
    demo.add_argument("--epochs", type=int, default=40, help="Stage-1 training epochs")
    demo.add_argument("--steps", type=int, default=600, help="Stage-2 finetuning steps")
    demo.add_argument("--n-images", type=int, default=4, help="images per row of the figure")
    demo.add_argument("--random-state", type=int, default=0)
    demo.add_argument("--verbose", default="warning", help="MNE log level")
    demo.set_defaults(func=_demo)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, TypeError) as err:
        print(f"mne-synapse {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
