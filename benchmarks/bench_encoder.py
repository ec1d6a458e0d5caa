"""Stage 1 benchmark: SynapseEncoder + LogisticRegression next to fairly trained peers.

Two simulated worlds whose neural codes favour different model families
(``make_synthetic(neural_code='erp' | 'induced')``), three seeds each (a
fresh world and fresh model seeds), two settings (multi-subject and
leave-one-subject-out), five models each with and without the same
per-subject Euclidean alignment. Every hyper-parameter is chosen on
validation images, never on test; every row has a 95% interval (bootstrap
over test images), chance, and a shuffled control that refits the whole
pipeline on permuted stimuli. See ``_protocol.py`` (folds, choices,
intervals) and ``_peers.py`` (how each model is trained, with sources).

Run ``python benchmarks/bench_encoder.py`` (``--quick`` for shorter training;
``--cache-dir DIR`` keeps each fit's result there so that an interrupted run
resumes).
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: import the package's helpers
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "benchmarks"

from ._peers import ALIGNMENTS, AUTHOR_LR, MODELS  # noqa: E402
from ._protocol import (WORLDS, Store, encoder_defaults, fit_and_score, folds,  # noqa: E402
                        interval, load_world, paired_difference, select)

OURS = ("SynapseEncoder", "EA")


def _ci(values):
    mean, low, high = values
    return f"{mean:.3f} [{low:.3f}, {high:.3f}]"


def _describe(params):
    return ", ".join(f"{k}={v}" for k, v in params.items())


def run(worlds, seeds, settings, budgets, store, log=print):
    """Every choice and fit of the benchmark; returns what the tables need."""
    chosen, results, controls, references = {}, {}, {}, {}
    variants = [(name, label) for name in MODELS for label in ALIGNMENTS]
    # SynapseEncoder's fits are stored under its defaults (new defaults are refitted);
    # the peers' keys stay as they were.
    our_key = dict(defaults=encoder_defaults())
    for code in worlds:
        first = load_world(code, seeds[0])
        for name, label in variants:
            key = dict(step="select", world=code, seed=seeds[0], model=name, alignment=label,
                       budget=budgets[name], **(our_key if name == OURS[0] else {}))
            chosen[code, name, label] = store.get(key, lambda: select(
                first, name, ALIGNMENTS[label], seeds[0], budgets[name]))
            log(f"[{code}] {name} ({label}) chosen: {chosen[code, name, label]['params']} "
                f"(validation top-1 {chosen[code, name, label]['score']:.3f})")
        for seed in seeds:
            data = first if seed == seeds[0] else load_world(code, seed)
            md = data.epochs.metadata
            for setting in settings:
                train, test = folds(md, setting, seed)
                references[code, setting, seed] = data.source_lr_reference(train, test)
                runs = [(False, seed)] + ([(True, seed)] if seed == seeds[0] else [])
                for (name, label), (shuffled, _) in ((v, r) for v in variants for r in runs):
                    params = chosen[code, name, label]["params"]
                    key = dict(step="fit", world=code, seed=seed, setting=setting, model=name,
                               alignment=label, params=params, budget=budgets[name],
                               shuffled=shuffled, **(our_key if name == OURS[0] else {}))
                    result = store.get(key, lambda: fit_and_score(
                        data, name, ALIGNMENTS[label], params, train, test, seed,
                        budgets[name], shuffled=shuffled))
                    target = controls if shuffled else results
                    target.setdefault((code, setting, name, label), []).append(result)
                    log(f"[{code} seed {seed} {setting}] {name} ({label})"
                        f"{' shuffled' if shuffled else ''}: top-1 {np.mean(result['top1']):.3f}"
                        f" ({result['fit_time']:.0f} s)")
            del data
    return chosen, results, controls, references


def _chance(runs):
    """Share of the test epochs in their most frequent class."""
    labels = np.concatenate([r["label"] for r in runs])
    return np.max(np.unique(labels, return_counts=True)[1]) / len(labels)


def report(worlds, settings, chosen, results, controls, references):
    """Print the tables (markdown)."""
    print("Hyper-parameters chosen on the validation images of seed 0's world (fitted on "
          "its `train` images, all subjects), used for every seed and setting:\n")
    print("| world | model | alignment | chosen | validation top-1 | validation curve "
          "(top-1 every 5 epochs) |")
    print("|---|---|---|---|---|---|")
    for (code, name, label), choice in chosen.items():
        curve = choice["curve"]
        shown = "" if curve is None else " ".join(f"{v:.2f}" for v in curve[4::5])
        if curve is not None and np.argmax(curve) >= len(curve) - 3:
            shown += " (best in the last 3 epochs: may not have converged)"
        print(f"| {code} | {name} | {label} | {_describe(choice['params'])} "
              f"| {choice['score']:.3f} | {shown} |")
    peers = [m for m in MODELS if m != OURS[0]]
    for code in worlds:
        print(f"\n### {WORLDS[code]}\n")
        print("| setting | model | alignment | top-1 [95% CI] | top-1 per seed | top-5 [95% CI] "
              "| chance | shuffled control, seed 0 [95% CI] | fit time (s) |")
        print("|---|---|---|---|---|---|---|---|---|")
        for setting in settings:
            for name in MODELS:
                for label in ALIGNMENTS:
                    runs = results[code, setting, name, label]
                    seeds = " / ".join(f"{np.mean(r['top1']):.2f}" for r in runs)
                    print(f"| {setting} | {name} | {label} | {_ci(interval(runs))} | {seeds} "
                          f"| {_ci(interval(runs, 'top5'))} | {_chance(runs):.3f} "
                          f"| {_ci(interval(controls[code, setting, name, label]))} "
                          f"| {np.mean([r['fit_time'] for r in runs]):.0f} |")

    print("\n### Verdict: SynapseEncoder (EA) against the best fair peer\n")
    print("The best peer is the model and alignment with the highest mean test top-1 in "
          "that world and setting (picked on test, which can only favour the peers). "
          "Difference: SynapseEncoder minus the peer on the same test epochs, mean over "
          "seeds, 95% paired bootstrap interval over test images.\n")
    print("| world | setting | SynapseEncoder (EA) | best fair peer | difference [95% CI] "
          "| verdict |")
    print("|---|---|---|---|---|---|")
    for code in worlds:
        for setting in settings:
            ours = results[(code, setting) + OURS]
            best = max(((n, a) for n in peers for a in ALIGNMENTS),
                       key=lambda v: np.mean([np.mean(r["top1"])
                                              for r in results[(code, setting) + v]]))
            theirs = results[(code, setting) + best]
            diff = paired_difference(ours, theirs)
            verdict = ("SynapseEncoder better" if diff[1] > 0 else
                       f"{best[0]} better" if diff[2] < 0 else "no clear difference")
            print(f"| {code} | {setting} | {_ci(interval(ours))} | {best[0]} ({best[1]}) "
                  f"{_ci(interval(theirs))} | {_ci(diff)} | {verdict} |")

    print("\nLR reference at this training size: a logistic regression on the "
          "simulation's true source amplitudes, fitted on the same training epochs, mean "
          "over seeds. A reference point, not a bound: other models, or more training "
          "data, can read the class from the EEG better than this one model reads it from "
          "the sources.\n")
    print("| world | setting | LR reference | SynapseEncoder (EA) | best peer |")
    print("|---|---|---|---|---|")
    for code in worlds:
        for setting in settings:
            reference = np.mean([v for (c, s, _), v in references.items()
                                 if (c, s) == (code, setting)])
            best = max(np.mean([np.mean(r["top1"]) for r in results[code, setting, n, a]])
                       for n in peers for a in ALIGNMENTS)
            ours = np.mean([np.mean(r["top1"]) for r in results[(code, setting) + OURS]])
            print(f"| {code} | {setting} | {reference:.3f} | {ours:.3f} | {best:.3f} |")

    print("\nEEG -> image retrieval by SynapseEncoder (EA): cosine between the EEG "
          "embedding and the tiny-CLIP embeddings of the distinct test images.\n")
    print("| world | setting | top-1 [95% CI] | top-5 [95% CI] | chance top-1 |")
    print("|---|---|---|---|---|")
    for code in worlds:
        for setting in settings:
            runs = results[(code, setting) + OURS]
            n_images = np.mean([len(set(r["image"])) for r in runs])
            print(f"| {code} | {setting} | {_ci(interval(runs, 'retrieval1'))} "
                  f"| {_ci(interval(runs, 'retrieval5'))} | {1 / n_images:.3f} |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter training")
    parser.add_argument("--worlds", default="erp,induced",
                        help=f"comma-separated, of {', '.join(WORLDS)}")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--settings", default="multi,loso")
    parser.add_argument("--encoder-epochs", type=int, default=None)
    parser.add_argument("--net-epochs", type=int, default=None,
                        help="braindecode nets: schedule length (the run stops at the epoch "
                             "chosen on validation)")
    parser.add_argument("--cache-dir", default=None,
                        help="keep each result here and reuse it (resume a run)")
    args = parser.parse_args(argv)

    import mne

    from mne_synapse.models import build_autoencoder, count_parameters

    mne.set_log_level("WARNING")
    worlds, settings = args.worlds.split(","), args.settings.split(",")
    seeds = list(range(args.seeds))
    encoder_epochs = args.encoder_epochs or (15 if args.quick else 40)
    net_epochs = args.net_epochs or (40 if args.quick else 60)
    budgets = dict.fromkeys(MODELS, encoder_epochs)
    budgets.update(EEGNet=net_epochs, ShallowFBCSPNet=net_epochs)
    start = time.perf_counter()
    chosen, results, controls, references = run(
        worlds, seeds, settings, budgets, Store(args.cache_dir),
        log=lambda text: print(text, file=sys.stderr, flush=True))

    first = load_world(worlds[0], seeds[0]).epochs.metadata
    fit_seconds = sum(r["fit_time"] for runs in (*results.values(), *controls.values())
                      for r in runs)
    print("# Stage 1 benchmark on simulated worlds\n")
    print(f"Worlds: {', '.join(worlds)} (`make_synthetic` defaults: {len(first)} epochs, "
          f"{first.subject.nunique()} subjects, {first.label.nunique()} classes, "
          f"{first.image_id.nunique()} images), data and model seeds {seeds}; settings: "
          f"{', '.join(settings)} (loso: subject `seed % n_subjects` left out). SynapseEncoder "
          f"{encoder_epochs} epochs; braindecode nets: AdamW, batch 64, cosine schedule over "
          f"{net_epochs} epochs stopped at the epoch chosen on validation, lr "
          f"{AUTHOR_LR['EEGNet']:g} (EEGNet, at 128 Hz) and {AUTHOR_LR['ShallowFBCSPNet']:g} "
          "(ShallowFBCSPNet, at 250 Hz). Alignment `EA`: the encoder's per-subject Euclidean "
          "alignment, given to every model; `none`: per-channel standardisation only. "
          f"Sum of the fit times: {fit_seconds:.0f} s (this invocation: "
          f"{time.perf_counter() - start:.0f} s).\n")
    report(worlds, settings, chosen, results, controls, references)
    for preset, what in (("hybrid", "ours at full size"), ("paper", "the authors' network")):
        full = build_autoencoder(preset, n_chans=128, n_times=440)
        print(f"\npreset {preset!r} ({what}, 128 x 440 -> 77 x 1024): "
              f"{count_parameters(full) / 1e6:.2f} M parameters")


if __name__ == "__main__":
    main()
