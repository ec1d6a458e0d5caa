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
    """Synthetic data -> Stage 1 encoder -> decoding score and a figure."""
    from pathlib import Path

    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from mne_synapse import SynapseEncoder
    from mne_synapse.datasets import make_synthetic

    start = time.perf_counter()
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    data = make_synthetic(random_state=args.random_state, verbose=args.verbose)
    md = data.epochs.metadata
    train = np.flatnonzero(md.split.isin(["train", "val"]))
    test = np.flatnonzero(md.split == "test")
    print(f"data: {len(md)} epochs, {md.subject.nunique()} subjects, "
          f"{md.label.nunique()} classes, {md.image_id.nunique()} images "
          f"({len(train)} train / {len(test)} test epochs, image-disjoint)")

    encoder = SynapseEncoder(max_epochs=args.epochs, random_state=args.random_state,
                             verbose=args.verbose)
    encoder.fit(data.epochs[train])
    z_train, z_test = encoder.transform(data.epochs[train]), encoder.transform(data.epochs[test])
    clf = LogisticRegression(max_iter=1000).fit(z_train, md.label.iloc[train])
    accuracy = clf.score(z_test, md.label.iloc[test])
    rng = np.random.default_rng(args.random_state)
    shuffled = LogisticRegression(max_iter=1000).fit(
        z_train, rng.permutation(md.label.iloc[train].to_numpy())
    ).score(z_test, md.label.iloc[test])
    chance = 1.0 / md.label.nunique()
    print(f"stage 1: class decoding on held-out images {accuracy:.3f} "
          f"(shuffled-label control {shuffled:.3f}, chance {chance:.3f})")
    encoder.save(out / "encoder")
    print(f"saved encoder to {out / 'encoder'}; total {time.perf_counter() - start:.0f} s")
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
    demo.add_argument("--random-state", type=int, default=0)
    demo.add_argument("--verbose", default="info", help="MNE log level")
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
