"""Stage 1 architectures: our network against the authors' at a comparable small size.

Four SynapseEncoder networks, everything else alike (the encoder's training,
alignment and augmentation; LogisticRegression on ``transform``), on the
folds, seeds and intervals of ``bench_encoder.py`` (``_protocol.py``): the
multi-subject setting of the simulated worlds, three seeds, the head's C chosen
on the validation images of seed 0's world for each network, 95% bootstrap
intervals over test images, paired differences against the default, chance,
and a shuffled control of the default.

- ``ours (tiny)``: the default, ``SynapseEncoder()`` (2 levels);
- ``ours, 5 levels``: ours at the authors' depth and about their size;
- ``authors' (5 levels)``: ``preset='paper'`` (their network) shrunk to the
  same widths and latent;
- ``authors' + their targets``: that network with their targets and losses
  (``text_layer``, ``learn_temperature``, ``cosine_axis`` and the 0.5 term
  weights of ``PAPER_STAGE1``).

Run ``python benchmarks/bench_architectures.py [--quick] [--results
benchmarks/RESULTS.md] [--cache-dir DIR]``.
"""

import argparse
import datetime
import platform
import sys
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: import the package's helpers
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "benchmarks"

from ._protocol import (Store, encoder_defaults, fit_and_score, folds,  # noqa: E402
                        interval, load_world, paired_difference, select)

HEADING = "## Stage 1 architectures"
ENCODER = "SynapseEncoder"
# The five levels of the authors' network at the miniature world's latent (24 x 64).
FIVE_LEVELS = (32, 32, 64, 64, 64)
THEIR_SMALL = dict(widths=FIVE_LEVELS, n_layer=1, n_head=4, n_tokens=24, embed_dim=64,
                   mlp_width=64)
SAME_SIZE = "ours, 5 levels"  # the authors' rows are also compared with this one
THEIR_TARGETS = ("text_layer", "learn_temperature", "cosine_axis", "recon_weight",
                 "align_weight", "contrastive_weight")


def networks(n_chans, n_times):
    """SynapseEncoder parameters of each compared network, by row name (default first)."""
    from mne_synapse._paper import PAPER_STAGE1

    theirs = dict(preset="paper", module_kwargs=dict(n_chans=n_chans, n_times=n_times,
                                                     **THEIR_SMALL))
    return {
        "ours (tiny, default)": {},
        "ours, 5 levels": dict(module_kwargs=dict(widths=FIVE_LEVELS)),
        "authors' (5 levels)": theirs,
        "authors' + their targets": {**theirs,
                                     **{k: PAPER_STAGE1[k] for k in THEIR_TARGETS}},
    }


def encoder_parameters(module):
    """Parameters of the encoder half of a Stage-1 autoencoder (no decoder)."""
    from mne_synapse.models import count_parameters

    if hasattr(module, "Encoder"):  # the authors' network
        return count_parameters(module.Encoder)
    return sum(count_parameters(child) for name, child in module.named_children()
               if not name.startswith("dec"))


def build(encoder_params, n_chans, n_times, n_tokens=24, embed_dim=64):
    """The untrained network of one row, sized as a fit on this data builds it."""
    from mne_synapse.models import build_autoencoder

    kwargs = dict(encoder_params.get("module_kwargs", {}))
    preset = encoder_params.get("preset", "tiny")
    if preset != "paper":
        kwargs = dict(n_chans=n_chans, n_times=n_times, n_tokens=n_tokens,
                      embed_dim=embed_dim, **kwargs)
    return build_autoencoder(preset, **kwargs)


def run(worlds, seeds, budget, store, log=print):
    """Choices, fits and the shuffled control of every row; returns what the table needs."""
    setting, chosen, results, controls, sizes = "multi", {}, {}, {}, {}
    defaults = encoder_defaults()  # in the keys: new encoder defaults are refitted
    for code in worlds:
        first = load_world(code, seeds[0])
        _, n_chans, n_times = first.epochs.get_data(item=[0]).shape
        rows = networks(n_chans, n_times)
        for row, params in rows.items():
            sizes[row] = encoder_parameters(build(params, n_chans, n_times))
            grid = [dict(augment=True, C=c, encoder=params) for c in (0.1, 1.0, 10.0)]
            key = dict(step="select", bench="architectures", world=code, seed=seeds[0],
                       row=row, grid=grid, budget=budget, defaults=defaults)
            chosen[code, row] = store.get(key, lambda: select(
                first, ENCODER, "euclidean", seeds[0], budget, grid=grid))
            log(f"[{code}] {row}: C={chosen[code, row]['params']['C']} (validation top-1 "
                f"{chosen[code, row]['score']:.3f})")
        for seed in seeds:
            data = first if seed == seeds[0] else load_world(code, seed)
            train, test = folds(data.epochs.metadata, setting, seed)
            for i, row in enumerate(rows):
                for shuffled in (False, True) if i == 0 and seed == seeds[0] else (False,):
                    params = chosen[code, row]["params"]
                    key = dict(step="fit", world=code, seed=seed, setting=setting,
                               model=ENCODER, alignment="EA", params=params, budget=budget,
                               shuffled=shuffled, defaults=defaults)
                    result = store.get(key, lambda: fit_and_score(
                        data, ENCODER, "euclidean", params, train, test, seed, budget,
                        shuffled=shuffled))
                    (controls if shuffled else results).setdefault((code, row), []).append(
                        result)
                    log(f"[{code} seed {seed}] {row}{' shuffled' if shuffled else ''}: "
                        f"top-1 {np.mean(result['top1']):.3f} ({result['fit_time']:.0f} s)")
            del data
    return chosen, results, controls, sizes


def _ci(values, signed=False):
    mean, low, high = values
    f = "{:+.3f}" if signed else "{:.3f}"
    return f"{f.format(mean)} [{f.format(low)}, {f.format(high)}]"


def _verdict(diffs):
    """Against the default: a difference is resolved only where its interval excludes 0."""
    resolved = [f"{row} {'better' if d[1] > 0 else 'worse'} in {what}, {_ci(d, True)}"
                for (row, what), d in diffs.items() if d[1] > 0 or d[2] < 0]
    if not resolved:
        return ("No difference resolved at this size: every paired 95% interval against "
                "the default, decoding and retrieval, includes 0.")
    return "Resolved against the default: " + "; ".join(resolved) + "."


def report(worlds, seeds, budget, chosen, results, controls, sizes, command):
    """The RESULTS.md section (markdown, starting with its heading)."""
    fit_seconds = sum(r["fit_time"] for runs in (*results.values(), *controls.values())
                      for r in runs)
    lines = [HEADING, "", f"`{command}` ({datetime.date.today()}, {platform.machine()} "
             f"{platform.system()}, one CPU thread; sum of the scored fits' times "
             f"{fit_seconds / 60:.0f} min, plus the validation fits).", "",
             "SynapseEncoder with four networks and nothing else changed (the encoder's "
             f"training: {budget} epochs, lr 3e-3, batch 32, noise and shift augmentation, "
             "Euclidean alignment; LogisticRegression on `transform`, its C chosen on the "
             "validation images of seed 0's world for each network). Multi-subject "
             f"setting, seeds {seeds} (each a fresh world and model seed), the folds of "
             "`bench_encoder.py`. Intervals: 95% bootstrap over test images, pooled over "
             "seeds; differences paired on the same test epochs. Parameters: the "
             "encoder only (no decoder). Retrieval: EEG -> image top-1 among the distinct "
             "test images (tiny CLIP). `authors'` is `preset='paper'` with "
             f"`module_kwargs={THEIR_SMALL}` (and the data's n_chans, n_times); `ours, 5 "
             f"levels` is `module_kwargs={{'widths': {FIVE_LEVELS}}}`; `+ their targets` "
             f"sets {', '.join(f'`{k}`' for k in THEIR_TARGETS)} to `PAPER_STAGE1`'s "
             "values.", ""]
    default = next(iter(sizes))
    for code in worlds:
        runs = results[code, default]
        labels = np.concatenate([r["label"] for r in runs])
        chance = np.max(np.unique(labels, return_counts=True)[1]) / len(labels)
        n_images = np.mean([len(set(r["image"])) for r in runs])
        lines += [f"World `{code}`: chance top-1 {chance:.3f} (decoding), "
                  f"{1 / n_images:.3f} (retrieval); shuffled control of the default, "
                  f"seed {seeds[0]}: {_ci(interval(controls[code, default]))}.", "",
                  "| network | encoder parameters | C | decoding top-1 [95% CI] | per seed "
                  "| difference vs default [95% CI] | retrieval top-1 [95% CI] "
                  "| retrieval difference vs default | fit time (s) |",
                  "|---|---|---|---|---|---|---|---|---|"]
        diffs = {}
        for row in sizes:
            runs = results[code, row]
            seeds_text = " / ".join(f"{np.mean(r['top1']):.2f}" for r in runs)
            shown = dict(top1="", retrieval1="")
            for key, what in (("top1", "decoding"), ("retrieval1", "retrieval")):
                if row != default:
                    diffs[row, what] = paired_difference(runs, results[code, default], key)
                    shown[key] = _ci(diffs[row, what], True)
            lines.append(f"| {row} | {sizes[row]:,} | {chosen[code, row]['params']['C']:g} "
                         f"| {_ci(interval(runs))} | {seeds_text} | {shown['top1']} "
                         f"| {_ci(interval(runs, 'retrieval1'))} | {shown['retrieval1']} "
                         f"| {np.mean([r['fit_time'] for r in runs]):.0f} |")
        same = []
        for row in (row for row in sizes if row.startswith("authors'")):
            pair = results[code, row], results[code, SAME_SIZE]
            same.append(f"{row} minus {SAME_SIZE}: decoding "
                        f"{_ci(paired_difference(*pair), True)}, retrieval "
                        f"{_ci(paired_difference(*pair, 'retrieval1'), True)}")
        lines += ["", f"At the same depth and size: {'; '.join(same)}.", "",
                  f"Verdict ({code}): {_verdict(diffs)} {len(diffs)} paired comparisons "
                  "with the default (networks x scores), not corrected for multiplicity.", ""]
    lines += [_default_rule(results, worlds, sizes, default), ""]
    return "\n".join(lines)


def _default_rule(results, worlds, sizes, default):
    """The default serves every world: decide on the difference pooled over worlds."""
    pooled = {}
    for row in (row for row in sizes if row != default):
        ours = [r for code in worlds for r in results[code, row]]
        base = [r for code in worlds for r in results[code, default]]
        pooled[row] = {what: paired_difference(ours, base, key)
                       for key, what in (("top1", "decoding"), ("retrieval1", "retrieval"))}
    text = "; ".join(f"{row}: decoding {_ci(d['decoding'], True)}, retrieval "
                     f"{_ci(d['retrieval'], True)}" for row, d in pooled.items())
    ahead = [row for row, d in pooled.items()
             if d["decoding"][1] > 0 and d["retrieval"][2] >= 0]
    verdict = (f"{', '.join(ahead)} is resolved better: the default should change."
               if ahead else f"none is resolved better, so the default stays {default} "
               "(`preset='tiny'`); `preset='paper'` is always the authors' network.")
    return (f"Defaults: the default must serve every world, so the choice rests on the paired "
            f"difference pooled over the worlds ({', '.join(worlds)}; same seeds and test "
            f"epochs): {text}. A network replaces the default only if its pooled decoding "
            f"difference is resolved above 0 without a resolved loss in retrieval: {verdict}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="15 encoder epochs (else 40)")
    parser.add_argument("--worlds", default="erp", help="comma-separated: erp, induced")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--encoder-epochs", type=int, default=None)
    parser.add_argument("--cache-dir", default=None, help="keep each result here (resume)")
    parser.add_argument("--results", default=None,
                        help=f"write the section {HEADING!r} into this RESULTS.md")
    args = parser.parse_args(argv)

    import mne

    from ._results import write_section

    mne.set_log_level("WARNING")
    budget = args.encoder_epochs or (15 if args.quick else 40)
    seeds, worlds = list(range(args.seeds)), args.worlds.split(",")
    chosen, results, controls, sizes = run(
        worlds, seeds, budget, Store(args.cache_dir),
        log=lambda text: print(text, file=sys.stderr, flush=True))
    # The command that reproduces the section (--cache-dir changes no number).
    flags = [("--quick", args.quick), (f"--worlds {args.worlds}", args.worlds != "erp"),
             (f"--seeds {args.seeds}", args.seeds != 3),
             (f"--encoder-epochs {args.encoder_epochs}", args.encoder_epochs),
             (f"--results {args.results}", args.results)]
    command = " ".join(["python benchmarks/bench_architectures.py"]
                       + [flag for flag, given in flags if given])
    section = report(worlds, seeds, budget, chosen, results, controls, sizes, command)
    print(section)
    if args.results:
        write_section(args.results, HEADING, section)


if __name__ == "__main__":
    main()
