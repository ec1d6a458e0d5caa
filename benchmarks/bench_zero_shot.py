"""Zero-shot EEG -> image retrieval and classification over unseen classes (NICE / ATM protocol).

On two simulated worlds (``make_synthetic(neural_code='erp' | 'induced')``),
three seeds each (a fresh world, fresh unseen classes and fresh model seeds):
``SynapseEncoder`` is fitted on the epochs of all classes but ``--n-unseen``
(none of the held-out classes' images, captions or EEG are seen in training),
then each epoch of the unseen classes is embedded with ``transform`` and
compared by cosine with the tiny CLIP image embeddings of

- every distinct image of the unseen classes (retrieval, n-way = number of
  those images, top-1 / top-5);
- one prototype per unseen class, the mean embedding of its images
  (zero-shot classification, n-way = ``--n-unseen``).

The encoder's augmentation is chosen on validation images of the seen
classes (retrieval top-1 among them; world seed 0), never on the unseen
classes. Each score: mean over seeds with a 95% bootstrap interval over the
unseen images, chance, and a shuffled control that refits the encoder on
permuted stimuli (seed 0).

Run ``python benchmarks/bench_zero_shot.py`` (``--quick`` for fewer epochs).
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: import the package's helpers
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "benchmarks"

from ._protocol import (WORLDS, Store, cosine, encoder_defaults, interval,  # noqa: E402
                        load_world, top_k_hits)


def _encoder(augment, epochs, seed):
    from mne_synapse import SynapseEncoder

    noise, shift = (0.5, 4) if augment else (0.0, 0)
    return SynapseEncoder(max_epochs=epochs, augment_noise=noise, augment_shift=shift,
                          random_state=seed, verbose=False)


def _hits(encoder, epochs, clip):
    """Per-epoch retrieval and classification hits among the images / classes of ``epochs``."""
    md = epochs.metadata
    paths, labels = md.image_path.to_numpy(), md.label.to_numpy()
    images, truth = np.unique(paths, return_inverse=True)
    embedded = clip.embed_images(list(images))
    classes, class_truth = np.unique(labels, return_inverse=True)
    image_class = np.searchsorted(classes, [labels[np.flatnonzero(paths == p)[0]]
                                            for p in images])
    prototypes = np.stack([embedded[image_class == c].mean(0) for c in range(len(classes))])
    z = encoder.transform(epochs)
    retrieval = top_k_hits(cosine(z, embedded), truth)
    classification = top_k_hits(cosine(z, prototypes), class_truth)
    image = md.image_id.tolist()
    return {"retrieval": dict(retrieval, image=image, n_way=len(images)),
            "classification": dict(classification, image=image, n_way=len(classes))}


def _split(data, n_unseen, seed):
    md = data.epochs.metadata
    classes = np.unique(md.label)
    unseen = np.random.default_rng(seed).choice(classes, n_unseen, replace=False)
    return md.label.isin(unseen).to_numpy()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer encoder epochs")
    parser.add_argument("--worlds", default="erp,induced")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--n-unseen", type=int, default=4, help="classes held out")
    parser.add_argument("--cache-dir", default=None,
                        help="keep each world and seed's scores here (resume a run)")
    args = parser.parse_args(argv)

    import mne

    from mne_synapse.clip import CLIPEmbedder
    from mne_synapse.evaluation import permute_stimuli

    mne.set_log_level("WARNING")
    n_epochs = 15 if args.quick else 40
    worlds, seeds = args.worlds.split(","), list(range(args.seeds))
    clip = CLIPEmbedder("tiny", "synthetic")
    store = Store(args.cache_dir)
    setup = dict(epochs=n_epochs, n_unseen=args.n_unseen, encoder=encoder_defaults())

    def choose(code):
        """Augmentation on or off: fitted on the seen classes' train images, scored on
        their val images (retrieval top-1 among them)."""
        data = load_world(code, seeds[0])
        md = data.epochs.metadata
        seen = ~_split(data, args.n_unseen, seeds[0])
        fit = data.epochs[np.flatnonzero(seen & (md.split == "train").to_numpy())]
        val = data.epochs[np.flatnonzero(seen & (md.split == "val").to_numpy())]
        scores = {label: float(np.mean(_hits(_encoder(augment, n_epochs, seeds[0]).fit(fit),
                                                val, clip)["retrieval"]["top1"]))
                  for label, augment in (("on", True), ("off", False))}
        return dict(augment=scores["on"] >= scores["off"], scores=scores)

    def one_seed(code, seed, augment):
        data = load_world(code, seed)
        unseen = _split(data, args.n_unseen, seed)
        train = data.epochs[np.flatnonzero(~unseen)]
        runs = [("SynapseEncoder", train)]
        if seed == seeds[0]:
            runs.append(("shuffled control", permute_stimuli(train, random_state=seed)))
        result = {}
        for name, epochs in runs:
            start = time.perf_counter()
            encoder = _encoder(augment, n_epochs, seed).fit(epochs)
            result[name] = dict(fit_time=time.perf_counter() - start,
                                hits=_hits(encoder, data.epochs[np.flatnonzero(unseen)], clip))
        return result

    rows, chosen, fit_times = {}, {}, []
    for code in worlds:
        chosen[code] = store.get(dict(step="zero-shot choice", world=code, seed=seeds[0],
                                      **setup), lambda: choose(code))
        for seed in seeds:
            augment = chosen[code]["augment"]
            result = store.get(dict(step="zero-shot", world=code, seed=seed, augment=augment,
                                    **setup), lambda: one_seed(code, seed, augment))
            for name, run in result.items():
                fit_times.append(run["fit_time"])
                for task, hits in run["hits"].items():
                    rows.setdefault((code, task, name), []).append(hits)
            print(f"[{code} seed {seed}] done", file=sys.stderr, flush=True)
    md = load_world(worlds[0], seeds[0]).epochs.metadata
    n_seen = len(np.unique(md.label)) - args.n_unseen
    print("# Zero-shot EEG -> image on unseen classes\n")
    print(f"Encoder trained on {n_seen} classes, tested on the {args.n_unseen} others (drawn "
          f"per seed); {n_epochs} epochs, per-subject alignment (default); seeds {seeds} "
          f"(data, unseen classes and model); fit time {np.mean(fit_times):.0f} s on average. "
          "Augmentation chosen on validation images of the seen classes (retrieval top-1): "
          + "; ".join(f"{code}: {'on' if c['augment'] else 'off'} (on {c['scores']['on']:.3f}, "
                      f"off {c['scores']['off']:.3f})" for code, c in chosen.items())
          + ". Mean over seeds [95% bootstrap interval over the unseen images]; the shuffled "
          "control refits the encoder on permuted stimuli (seed 0).\n")
    for code in worlds:
        print(f"### {WORLDS[code]}\n")
        print("| task | n-way | top-1 [95% CI] | top-5 [95% CI] | chance top-1 "
              "| shuffled control top-1 [95% CI] |")
        print("|---|---|---|---|---|---|")
        for task in ("retrieval", "classification"):
            ours = rows[code, task, "SynapseEncoder"]
            n_way = np.mean([r["n_way"] for r in ours])
            top5 = ("-" if n_way <= 5 else "{:.3f} [{:.3f}, {:.3f}]".format(
                *interval(ours, "top5")))
            print(f"| {task} | {n_way:.0f} | {'{:.3f} [{:.3f}, {:.3f}]'.format(*interval(ours))} "
                  f"| {top5} | {1 / n_way:.3f} | "
                  + "{:.3f} [{:.3f}, {:.3f}]".format(
                      *interval(rows[code, task, "shuffled control"])) + " |")
        print()


if __name__ == "__main__":
    main()
