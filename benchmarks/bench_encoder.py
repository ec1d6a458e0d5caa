"""Stage 1 benchmark: SynapseEncoder + LogisticRegression next to its peers.

Same image-disjoint folds for every model, in the same run:

- ``multi``: all subjects, train on the ``train``/``val`` images, test on the
  ``test`` images;
- ``within``: the same, one subject at a time (mean over subjects; not in
  ``--quick``);
- ``loso``: leave one subject out, and its ``test`` images only (subject- and
  image-disjoint); SynapseEncoder's alignment of the new subject is calibrated
  on those test epochs, without their labels (``SynapseEncoder.calibrate``).

SynapseEncoder runs with its per-subject alignment input layer (default)
and without it (``alignment=None``), to show what the layer adds.

Peers: braindecode ``EEGNet`` and ``ShallowFBCSPNet`` (``EEGClassifier``),
pyriemann ``XdawnCovariances + TangentSpace + LR``, and a linear model. Every
row shows chance and a shuffled-label control (the classifier of the last
fold refitted on permuted labels; end-to-end networks refitted entirely).

Run ``python benchmarks/bench_encoder.py`` (``--quick`` for a smaller run,
``--cvpr40 FILE --image-root DIR --splits FILE`` for CVPR40-format data).
"""

import argparse
import time

import numpy as np

from mne_synapse import SynapseEncoder


def _peers(n_classes, epochs_budget, seed):
    from braindecode import EEGClassifier
    from mne.decoding import Vectorizer
    from pyriemann.estimation import XdawnCovariances
    from pyriemann.tangentspace import TangentSpace
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    def to_float32(X):
        # braindecode trains on microvolts-scale float32 input.
        return (np.asarray(X) * 1e6).astype(np.float32)

    def braindecode(name):
        return make_pipeline(FunctionTransformer(to_float32), EEGClassifier(
            name, max_epochs=epochs_budget, batch_size=32, lr=1e-3, train_split=None,
            verbose=0, device="cpu", iterator_train__shuffle=True,
        ))

    return {
        "EEGNet": lambda: braindecode("EEGNet"),
        "ShallowFBCSPNet": lambda: braindecode("ShallowFBCSPNet"),
        "Xdawn+TS+LR": lambda: make_pipeline(
            XdawnCovariances(nfilter=4, estimator="oas"), TangentSpace(),
            LogisticRegression(max_iter=1000)),
        "linear": lambda: make_pipeline(
            FunctionTransformer(lambda X: np.asarray(X)[:, :, ::4]), Vectorizer(),
            StandardScaler(), LogisticRegression(C=0.01, max_iter=1000)),
    }


def _scores(proba, y_true, classes):
    ranks = np.argsort(-proba, axis=1)
    top1 = np.mean(classes[ranks[:, 0]] == y_true)
    top5 = np.mean([t in classes[r[:5]] for t, r in zip(y_true, ranks)])
    return top1, top5


def _fit_score(make_model, epochs, train, test, labels, calibrate=False):
    import torch

    torch.manual_seed(0)
    start = time.perf_counter()
    model = make_model()
    X_train, X_test = epochs[train], epochs[test]
    if not isinstance(model[0], SynapseEncoder):  # peers take arrays
        X_train, X_test = X_train.get_data(), X_test.get_data()
    model.fit(X_train, labels[train])
    if calibrate and isinstance(model[0], SynapseEncoder):  # the new subject's alignment
        model[0].calibrate(X_test)
    fit_time = time.perf_counter() - start
    proba = model.predict_proba(X_test)
    classes = model.classes_ if hasattr(model, "classes_") else model[-1].classes_
    return (*_scores(proba, labels[test], np.asarray(classes)), fit_time, model)


def _retrieval(encoder, epochs, test, md, clip):
    """EEG -> image retrieval among the distinct test images (top-1, top-5, chance)."""
    from mne_synapse.metrics import retrieval_top_k

    z = encoder.transform(epochs[test])
    paths = md.image_path.to_numpy()[test]
    candidates = np.unique(paths)
    emb = clip.embed_images(candidates)
    truth = np.searchsorted(candidates, paths)
    top1, top5 = (retrieval_top_k(z, emb, truth, k=k) for k in (1, 5))
    return top1.value, top5.value, top1.chance


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer epochs and settings")
    parser.add_argument("--settings", default=None,
                        help="comma-separated: multi, loso, within (default: all; "
                             "multi,loso with --quick)")
    parser.add_argument("--encoder-epochs", type=int, default=None)
    parser.add_argument("--cvpr40", default=None, help="CVPR40-format .pth file")
    parser.add_argument("--image-root", default=None)
    parser.add_argument("--splits", default=None)
    args = parser.parse_args(argv)

    import mne
    from sklearn.base import clone
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from mne_synapse.clip import CLIPEmbedder
    from mne_synapse.datasets import load_cvpr40, make_synthetic
    from mne_synapse.models import build_autoencoder, count_parameters

    mne.set_log_level("WARNING")
    synthetic = None  # the simulation's ground truth gives the LR reference
    if args.cvpr40:
        epochs = load_cvpr40(args.cvpr40, image_root=args.image_root, splits_fname=args.splits)
        source = f"CVPR40 file {args.cvpr40}"
    else:
        synthetic = make_synthetic()
        epochs = synthetic.epochs
        source = "synthetic (make_synthetic defaults)"
    md = epochs.metadata.reset_index(drop=True)
    labels = md.label.to_numpy()
    n_classes = len(np.unique(labels))
    enc_epochs = args.encoder_epochs or (15 if args.quick else 40)
    peer_epochs = 15 if args.quick else 40
    settings = (args.settings or ("multi,loso" if args.quick else "multi,loso,within")).split(",")

    def encoder(alignment="euclidean"):
        return lambda: make_pipeline(
            SynapseEncoder(max_epochs=enc_epochs, alignment=alignment, random_state=0,
                           verbose=False),
            LogisticRegression(max_iter=2000),
        )

    # The alignment layer's contribution: the same encoder without it.
    models = {"SynapseEncoder+LR": encoder(), "SynapseEncoder (no alignment)+LR": encoder(None),
              **_peers(n_classes, peer_epochs, 0)}
    is_train = md.split.isin(["train", "val"]).to_numpy()
    is_test = (md.split == "test").to_numpy()
    folds = {}
    if "multi" in settings:
        folds["multi"] = [(np.flatnonzero(is_train), np.flatnonzero(is_test))]
    subjects = np.unique(md.subject)
    if "within" in settings:
        folds["within"] = [(np.flatnonzero(is_train & (md.subject == s)),
                            np.flatnonzero(is_test & (md.subject == s))) for s in subjects]
    if "loso" in settings and len(subjects) > 1:
        folds["loso"] = [(np.flatnonzero(is_train & (md.subject != s)),
                          np.flatnonzero(is_test & (md.subject == s))) for s in subjects]

    print(f"# Stage 1 benchmark on {source}")
    print(f"{len(md)} epochs, {len(subjects)} subjects, {n_classes} classes, "
          f"{md.image_id.nunique()} images; image-disjoint test split; "
          f"encoder {enc_epochs} epochs, braindecode peers {peer_epochs} epochs"
          f"{' (multi setting only: --quick)' if args.quick else ''}\n")
    print("| setting | model | top-1 | top-5 | chance | shuffled-label control | fit time (s) |")
    print("|---|---|---|---|---|---|---|")
    clip = CLIPEmbedder("tiny", "synthetic")
    retrieval, top1_by = {}, {}
    # --quick: the braindecode peers (far behind on this data) in the multi-subject
    # setting only, to keep `python -m benchmarks` under 15 minutes.
    braindecode_settings = {"multi"} if args.quick else set(folds)
    for setting, split_list in folds.items():
        for name, make_model in models.items():
            if name in ("EEGNet", "ShallowFBCSPNet") and setting not in braindecode_settings:
                continue
            results = []
            for train, test in split_list:
                top1, top5, fit_time, model = _fit_score(make_model, epochs, train, test,
                                                         labels, calibrate=setting == "loso")
                results.append((top1, top5, fit_time))
                if name == "SynapseEncoder+LR":
                    retrieval.setdefault(setting, []).append(
                        _retrieval(model[0], epochs, test, md, clip))
            top1, top5, fit_time = np.mean(results, axis=0)
            top1_by[setting, name] = top1
            # Shuffled-label control: the classifier (last step) refitted on permuted
            # labels over the features of the last fold's fitted model.
            train, test = split_list[-1]
            X_train, X_test = epochs[train], epochs[test]
            if not isinstance(model[0], SynapseEncoder):
                X_train, X_test = X_train.get_data(), X_test.get_data()
            shuffled = np.random.default_rng(0).permutation(labels[train])
            if name in ("EEGNet", "ShallowFBCSPNet"):  # end to end: refit it all
                control_model = clone(model).fit(X_train, shuffled)
                control = control_model.score(X_test, labels[test])
            else:
                head = clone(model[-1]).fit(model[:-1].transform(X_train), shuffled)
                control = head.score(model[:-1].transform(X_test), labels[test])
            print(f"| {setting} | {name} | {top1:.3f} | {top5:.3f} | {1 / n_classes:.3f} "
                  f"| {control:.3f} | {fit_time:.1f} |", flush=True)

    print("\n| setting | SynapseEncoder error | best peer (error) | ratio | target |")
    print("|---|---|---|---|---|")
    for setting in folds:
        ours = 1 - top1_by[setting, "SynapseEncoder+LR"]
        peers = {n: 1 - a for (s, n), a in top1_by.items()
                 if s == setting and not n.startswith("SynapseEncoder")}
        best = min(peers, key=peers.get)
        target = ("error <= 0.75 x best peer's" if setting != "loso" else "beats every peer")
        met = ours <= 0.75 * peers[best] if setting != "loso" else ours < peers[best]
        print(f"| {setting} | {ours:.3f} | {best} ({peers[best]:.3f}) | "
              f"{ours / peers[best]:.2f} | {target}: {'met' if met else 'NOT met'} |")

    if synthetic is not None:
        print("\nLR reference at this training size: the same folds decoded by a logistic "
              "regression from the simulation's source amplitudes (not a bound).\n")
        print("| setting | LR reference top-1 | SynapseEncoder+LR | best peer | the target needs |")
        print("|---|---|---|---|---|")
        for setting, split_list in folds.items():
            ceiling = np.mean([synthetic.source_lr_reference(train, test)
                               for train, test in split_list])
            peers = {n: a for (s, n), a in top1_by.items()
                     if s == setting and not n.startswith("SynapseEncoder")}
            best = max(peers.values())
            needs = f"> {best:.3f}" if setting == "loso" else f">= {1 - 0.75 * (1 - best):.3f}"
            print(f"| {setting} | {ceiling:.3f} | {top1_by[setting, 'SynapseEncoder+LR']:.3f} "
                  f"| {best:.3f} | {needs} |")

    print("\n| setting | EEG -> image retrieval top-1 | top-5 | chance top-1 |")
    print("|---|---|---|---|")
    for setting, values in retrieval.items():
        top1, top5, chance = np.mean(values, axis=0)
        print(f"| {setting} | {top1:.3f} | {top5:.3f} | {chance:.3f} |")

    for preset, what in (("hybrid", "ours at full size"), ("paper", "the authors' network")):
        full = build_autoencoder(preset, n_chans=128, n_times=440)
        print(f"\npreset {preset!r} ({what}, 128 x 440 -> 77 x 1024): "
              f"{count_parameters(full) / 1e6:.2f} M parameters")


if __name__ == "__main__":
    main()
