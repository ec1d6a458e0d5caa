"""Zero-shot EEG -> image retrieval and classification over unseen classes (NICE / ATM protocol).

On the synthetic data set, in one run: ``SynapseEncoder`` is fitted on the
epochs of all classes but ``--n-unseen`` (none of the held-out classes'
images, captions or EEG are seen in training), then each epoch of the unseen
classes is embedded with ``transform`` and compared by cosine with the tiny
CLIP image embeddings of

- every distinct image of the unseen classes (retrieval, n-way = number of
  those images, top-1 / top-5);
- one prototype per unseen class, the mean embedding of its images
  (zero-shot classification, n-way = ``--n-unseen``).

Next to each score: chance and the shuffled-EEG control (queries paired with
other epochs' images). With and without the per-subject alignment layer.

Run ``python benchmarks/bench_zero_shot.py`` (``--quick`` for fewer epochs).
"""

import argparse
import time

import numpy as np


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer encoder epochs")
    parser.add_argument("--n-unseen", type=int, default=4, help="classes held out")
    args = parser.parse_args(argv)

    import mne

    from mne_synapse import SynapseEncoder
    from mne_synapse.clip import CLIPEmbedder
    from mne_synapse.datasets import make_synthetic
    from mne_synapse.evaluation import zero_shot

    mne.set_log_level("WARNING")
    epochs = make_synthetic().epochs
    md = epochs.metadata.reset_index(drop=True)
    classes = np.unique(md.label)
    unseen = np.random.default_rng(0).choice(classes, args.n_unseen, replace=False)
    is_unseen = md.label.isin(unseen).to_numpy()
    n_epochs = 15 if args.quick else 40
    clip = CLIPEmbedder("tiny", "synthetic")

    print("# Zero-shot EEG -> image on unseen classes (synthetic)")
    print(f"encoder trained on {len(classes) - len(unseen)} classes "
          f"({(~is_unseen).sum()} epochs), tested on {len(unseen)} unseen classes "
          f"({is_unseen.sum()} epochs, {md.image_id[is_unseen].nunique()} images); encoder "
          f"{n_epochs} epochs; embeddings: tiny CLIP image tower\n")
    print("| encoder | task | n-way | top-1 | top-5 | chance top-1 | shuffled-EEG top-1 "
          "| fit time (s) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, alignment in (("SynapseEncoder", "euclidean"),
                            ("SynapseEncoder, no alignment", None)):
        start = time.perf_counter()
        encoder = SynapseEncoder(max_epochs=n_epochs, alignment=alignment, random_state=0,
                                 verbose=False).fit(epochs[np.flatnonzero(~is_unseen)])
        fit_time = time.perf_counter() - start
        scores = zero_shot(encoder, epochs[np.flatnonzero(is_unseen)], clip.embed_images)
        for task, row in scores.iterrows():
            top5 = "-" if np.isnan(row.top5) else f"{row.top5:.3f}"
            print(f"| {name} | {task} | {row.n_way} | {row.top1:.3f} | {top5} | "
                  f"{row.chance:.3f} | {row.shuffled:.3f} | {fit_time:.0f} |", flush=True)


if __name__ == "__main__":
    main()
