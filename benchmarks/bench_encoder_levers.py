"""Stage 1 levers: SynapseEncoder's options side by side, chosen on validation images.

Each lever is SynapseEncoder (EA, 15 epochs unless the lever says otherwise)
with one or two changes from the defaults, in both simulated worlds and three seeds (a fresh world and model
seed each). Two numbers per lever and seed:

- validation top-1: fitted on the ``train`` images, LogisticRegression
  (C=1) on ``transform``, scored on the ``val`` images (all subjects). The
  default is chosen on this number only: the lever with the highest mean over
  both worlds and all seeds, kept only if its paired interval against the
  defaults (over validation images) lies above zero;
- test top-1: fitted on ``train`` + ``val``, scored on ``test`` (multi-subject),
  with the paired difference against the defaults on the same test epochs.

Run ``python benchmarks/bench_encoder_levers.py --cache-dir DIR --results
benchmarks/RESULTS.md`` (each fit is kept in DIR, so an interrupted run resumes;
``--worlds erp`` and ``--worlds induced`` in two processes share it).
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: import the package's helpers
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "benchmarks"

from ._peers import make_model  # noqa: E402
from ._protocol import (Store, encoder_defaults, fit_and_score, folds,  # noqa: E402
                        interval, load_world, paired_difference)
from ._results import STANDALONE, write_section  # noqa: E402

HEADING = STANDALONE[4]  # "## Stage 1 levers"

BASELINE = "defaults"
_NO_POWER = dict(module_kwargs=dict(power_filters=0))
# name -> (augmentation on, other SynapseEncoder parameters)
LEVERS = {
    BASELINE: (True, {}),
    "no augmentation": (False, {}),
    "no band-power tokens (the default before this run)": (True, _NO_POWER),
    "no band-power tokens, no augmentation": (False, _NO_POWER),
    # Second round (after the choice): the band-power tokens keep each filter's level.
    "band-power norm over all filters": (True, dict(module_kwargs=dict(power_norm="all"))),
    # Third round: more augmentation, and the learning-rate schedule.
    "channel dropout 0.1": (True, dict(augment_channel_drop=0.1)),
    "same-image mixing 0.5": (True, dict(augment_mix=0.5)),
    "cosine learning-rate schedule": (True, dict(lr_schedule="cosine")),
    # Fourth round: the estimator's own max_epochs (40, not the benchmarks' 15),
    # stopped on images held out of the training images.
    "40 epochs with early stopping on 20% held-out images (patience 5)": (
        True, dict(max_epochs=40, validation_fraction=0.2, early_stopping=5)),
    "40 epochs": (True, dict(max_epochs=40)),
}


def _params(lever, levers):
    augment, encoder = levers[lever]
    return dict(augment=augment, C=1.0, encoder=encoder)


def validation_score(data, params, seed, budget):
    """Per-epoch hits on the ``val`` images of a fit on the ``train`` images."""
    epochs = data.epochs
    md = epochs.metadata
    train, val = epochs[(md.split == "train").to_numpy()], epochs[(md.split == "val").to_numpy()]
    start = time.perf_counter()
    model = make_model("SynapseEncoder", "euclidean", params, seed, budget)
    model.fit(train, train.metadata.label.to_numpy())
    hits = model.predict(val) == val.metadata.label.to_numpy()
    return dict(top1=hits.astype(float).tolist(), image=val.metadata.image_id.tolist(),
                fit_time=time.perf_counter() - start)


def run(worlds, seeds, levers, budget, store, log=print):
    """``{(kind, world, lever): [result per seed]}``, kind ``'val'`` or ``'test'``."""
    results, defaults = {}, encoder_defaults()  # in the keys: new defaults are refitted
    for code in worlds:
        for seed in seeds:
            data = load_world(code, seed)
            train, test = folds(data.epochs.metadata, "multi", seed)
            for lever in levers:
                params = _params(lever, levers)
                key = dict(step="lever-val", world=code, seed=seed, params=params, budget=budget,
                           defaults=defaults)
                val = store.get(key, lambda: validation_score(data, params, seed, budget))
                key = dict(step="fit", world=code, seed=seed, setting="multi",
                           model="SynapseEncoder", alignment="EA", params=params,
                           budget=budget, shuffled=False, defaults=defaults)
                test_result = store.get(key, lambda: fit_and_score(
                    data, "SynapseEncoder", "euclidean", params, train, test, seed, budget))
                results.setdefault(("val", code, lever), []).append(val)
                results.setdefault(("test", code, lever), []).append(test_result)
                log(f"[{code} seed {seed}] {lever}: validation {np.mean(val['top1']):.3f}, "
                    f"test {np.mean(test_result['top1']):.3f}")
    return results


def _ci(values):
    mean, low, high = values
    return f"{mean:+.3f} [{low:+.3f}, {high:+.3f}]"


def choose(worlds, levers, results):
    """The default by the rule of the module docstring.

    Returns the chosen lever, each lever's mean validation top-1, and the paired
    validation difference (mean, 95% interval) of the best lever against the
    defaults (None when the defaults are best).
    """
    means = {lever: np.mean([np.mean(r["top1"]) for code in worlds
                             for r in results["val", code, lever]]) for lever in levers}
    best = max(levers, key=means.get)
    if best == BASELINE:
        return best, means, None
    ours = [r for code in worlds for r in results["val", code, best]]
    base = [r for code in worlds for r in results["val", code, BASELINE]]
    margin = paired_difference(ours, base)
    return (best if margin[1] > 0 else BASELINE), means, margin


def report(worlds, seeds, levers, results, budget):
    """The section's tables (markdown, printed)."""
    chosen, means, margin = choose(worlds, levers, results)
    print(f"SynapseEncoder (EA, {budget} epochs, LogisticRegression C=1 on `transform`), each "
          f"lever one or two changes from the defaults; worlds {', '.join(worlds)}, seeds {seeds} "
          "(fresh world and model seed each), multi-subject. Validation: fitted on the "
          "`train` images, scored on the `val` images; test: fitted on `train` + `val`, "
          "scored on `test`. Differences are paired (same epochs), 95% bootstrap over "
          "images, mean over seeds.\n")
    print("| world | lever | validation top-1 (per seed) | validation minus defaults [95% CI] "
          "| test top-1 [95% CI] (per seed) | test minus defaults [95% CI] |")
    print("|---|---|---|---|---|---|")
    for code in worlds:
        for lever in levers:
            val, test = results["val", code, lever], results["test", code, lever]
            per_val = " / ".join(f"{np.mean(r['top1']):.2f}" for r in val)
            per_test = " / ".join(f"{np.mean(r['top1']):.2f}" for r in test)
            mean, low, high = interval(test)
            val_diff, diff = ("", "") if lever == BASELINE else (
                _ci(paired_difference(val, results["val", code, BASELINE])),
                _ci(paired_difference(test, results["test", code, BASELINE])))
            print(f"| {code} | {lever} | {np.mean([np.mean(r['top1']) for r in val]):.3f} "
                  f"({per_val}) | {val_diff} | {mean:.3f} [{low:.3f}, {high:.3f}] ({per_test}) "
                  f"| {diff} |")
    print("\nMean validation top-1 over both worlds and all seeds (the choice): "
          + "; ".join(f"{lever} {v:.3f}" for lever, v in means.items())
          + ("" if margin is None else
             f"; the best against the defaults, paired over validation images: {_ci(margin)}")
          + f". Chosen: **{chosen}**.")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worlds", default="erp,induced")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--levers", default=None,
                        help=f"comma-separated subset of: {', '.join(LEVERS)}")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--results", default=None, help="write the section into this file")
    args = parser.parse_args(argv)

    import contextlib
    import io
    import platform
    import shlex
    from datetime import date

    import torch

    import mne

    mne.set_log_level("WARNING")
    worlds, seeds = args.worlds.split(","), list(range(args.seeds))
    names = list(LEVERS) if args.levers is None else [BASELINE, *args.levers.split(",")]
    levers = {name: LEVERS[name] for name in dict.fromkeys(names)}
    start = time.perf_counter()
    results = run(worlds, seeds, levers, args.epochs, Store(args.cache_dir),
                  log=lambda text: print(text, file=sys.stderr, flush=True))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        report(worlds, seeds, levers, results, args.epochs)
    spent = sum(r["fit_time"] for runs in results.values() for r in runs)
    command = "python benchmarks/bench_encoder_levers.py " + shlex.join(argv or sys.argv[1:])
    text = (f"{HEADING}\n\nCommand: `{command.strip()}` ({date.today()}, {platform.machine()} "
            f"CPU, {torch.get_num_threads()} torch thread(s), torch {torch.__version__}; this "
            f"command {(time.perf_counter() - start) / 60:.0f} min, the fits "
            f"{spent / 60:.0f} min when they were computed)\n\n{out.getvalue()}")
    print(text)
    if args.results:
        write_section(args.results, HEADING, text)


if __name__ == "__main__":
    main()
