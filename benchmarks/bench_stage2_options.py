"""Stage 2 options: today's defaults against the authors' training and sampling, and our levers.

On the simulated ERP world (``make_synthetic(neural_code='erp')``), in the
miniature world (tiny CLIP + tiny SD, their own small size, not 512 px),
three seeds (each a fresh world and fresh model seeds):

- one ``SynapseEncoder`` per seed, fitted on the train/val images and shared
  by every row, so that rows differ only in their Stage-2 options;
- one ``EEGImageGenerator`` per option and seed, finetuned from the same seed
  (same batches, same noise where the option leaves them alone), then one
  image per test epoch, DDIM 20 steps, the same initial noise in every row;
- scored as ``bench_generator`` scores (its judge, n-way top-1, CLIP
  similarity, SSIM, pixel correlation against each epoch's stimulus, FID and
  IS): mean over seeds with a 95% bootstrap interval over test images, and
  each row's paired difference from the defaults over the same test epochs;
  chance (permuted pairing) and a shuffled-EEG control of the default fit.

Options (``mne_synapse.PAPER_STAGE2`` gives the authors' values): their
unconditional context ``[0, f_adapt(0)]``, encoder dropout while finetuning,
posterior sampling of VAE latents, EMA, their schedule (lr, warm-up, batch x
accumulation, min-SNR gamma), all of their training options together, and
their guidance scale (a sampling option: the same fits, sampled again); our
levers (``LEVERS``): the ``lean`` recipe, the adapter's token count and twice the
finetuning steps.

Each row is also read against what its encoder decodes (issue 20): the same
encoder's decoding top-1 on the same test epochs (``LogisticRegression`` on
``transform``), the row's trainable parameters, and the paired interval of
generated top-1 minus 0.9 x decoding.

``--parameters`` prints the table that explains the authors' headline 152.69 M
trainable parameters from their code (SD 2.1's U-Net built from the shipped
configuration, random weights), and nothing else.

Run ``python benchmarks/bench_stage2_options.py --results benchmarks/RESULTS.md``
(section "Stage 2 options"); with ``--options "defaults,recipe='lean',n_adapt_tokens=16"``
(the defaults and our levers only) it writes the section "Stage 2 levers" instead.
"""

import argparse
import platform
import shlex
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: import the package's helpers
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "benchmarks"

from ._protocol import (Store, encoder_defaults, interval, load_world,  # noqa: E402
                        paired_difference)
from ._results import STANDALONE, write_section  # noqa: E402
from .bench_generator import SET_LEVEL, _judge, _paired, _paired_names, _scores  # noqa: E402

HEADING = STANDALONE[1]  # "## Stage 2 options"
LEVERS_HEADING = STANDALONE[3]  # "## Stage 2 levers": a run of the defaults and LEVERS only
REPORTED_TRAINABLE = 152.69  # M, the authors' README
WORLD = "erp"
# The authors' training options, alone and together (values from PAPER_STAGE2).
TRAINING = {
    "unconditional_context": ("unconditional_context",),
    "encoder_dropout": ("encoder_dropout",),
    "vae_sampling": ("vae_sampling",),
    "ema_decay": ("ema_decay",),
    "their schedule": ("lr", "warmup_steps", "batch_size", "grad_accumulation", "snr_gamma"),
}
ALL_TRAINING = "all of their training options"
# Our own levers (issue 20): the lean recipe (about half the trainable weights),
# the adapter's token count, and twice the finetuning steps.
LEVERS = {
    "recipe='lean'": {"recipe": "lean"},
    "n_adapt_tokens=16": {"n_adapt_tokens": 16},
    "max_steps=600": {"max_steps": 600},  # twice the finetuning
}
# Sampling options: the fits of the defaults and of all training options sampled
# again with the authors' value (not the single options': time).
SAMPLING = ("guidance_scale",)
RESAMPLED = ("defaults", ALL_TRAINING)


def option_params(name):
    """The EEGImageGenerator parameters of option ``name`` (``'defaults'``: none)."""
    from mne_synapse._paper import PAPER_STAGE2

    if name == "defaults":
        return {}
    if name in LEVERS:
        return dict(LEVERS[name])
    keys = (sum(TRAINING.values(), ()) if name == ALL_TRAINING else TRAINING[name])
    return {key: PAPER_STAGE2[key] for key in keys}


def _label(name):
    """A single option by its value; a group of options by its name."""
    params = option_params(name)
    if name == "defaults" or name in LEVERS or len(params) > 1:
        return name
    return ", ".join(f"{k}={v!r}" for k, v in params.items())


def _fit_and_score(name, seed, args, encoders):
    """One option and seed: finetune, generate the test epochs, score (JSON)."""
    from mne_synapse import SynapseEncoder
    from mne_synapse.clip import CLIPEmbedder
    from mne_synapse.generator import EEGImageGenerator
    from mne_synapse._paper import PAPER_STAGE2

    data = load_world(WORLD, seed)
    epochs, md = data.epochs, data.epochs.metadata
    train = np.flatnonzero(md.split != "test")
    test = np.flatnonzero((md.split == "test") & ((md.repetition == 0) | args.all_repetitions))
    if seed not in encoders:  # shared by every option of this seed
        start = time.perf_counter()
        encoders[seed] = SynapseEncoder(max_epochs=args.encoder_epochs, random_state=seed,
                                        verbose=False).fit(epochs[train])
        print(f"[seed {seed}] encoder {time.perf_counter() - start:.0f} s", file=sys.stderr,
              flush=True)
    params = dict(dict(max_steps=args.steps, batch_size=args.batch_size), **option_params(name))
    start = time.perf_counter()
    gen = EEGImageGenerator(encoder=encoders[seed], random_state=seed, verbose=False,
                            **params).fit(epochs[train])
    fit_seconds = time.perf_counter() - start
    n_classes = md.label.nunique()
    judge, clip = _judge(n_classes, seed), CLIPEmbedder("tiny", "synthetic")
    stimuli = data.images[md.image_index.to_numpy()[test]]
    reference = judge(stimuli).argmax(1)
    kw = dict(num_inference_steps=args.inference_steps, random_state=seed, output_type="np")
    start = time.perf_counter()
    sets = {"": gen.generate(epochs[test], **kw)[:, 0]}
    generate_seconds = time.perf_counter() - start
    for key in SAMPLING * (name in RESAMPLED):
        sets[key] = gen.generate(epochs[test], **kw, **{key: PAPER_STAGE2[key]})[:, 0]
    order = np.random.default_rng(seed).permutation(len(test))
    out = dict(image=md.image_id.to_numpy()[test].tolist(), n_classes=n_classes,
               n=(len(train), len(test), len(np.unique(md.image_id.to_numpy()[test]))),
               fit_seconds=fit_seconds, generate_seconds=generate_seconds,
               trainable=gen.n_trainable_params_,
               final_loss=float(np.mean(gen.loss_curve_[-20:])))
    out["sets"] = {key: _scores(images, stimuli, judge, reference, clip, n_classes)
                   for key, images in sets.items()}
    if name == "defaults":  # decoding, chance and the shuffled-EEG control, once per seed
        out["decoding"] = _decoding(encoders[seed], epochs, train, test)
        out["chance"] = _paired(sets[""], stimuli[order], judge, reference[order], clip,
                                n_classes)
        shuffled = gen.generate(epochs[test[order]], **kw)[:, 0]
        out["shuffled"] = _paired(shuffled, stimuli, judge, reference, clip, n_classes)
    print(f"[seed {seed}] {name}: fit {fit_seconds:.0f} s, generate {generate_seconds:.0f} s",
          file=sys.stderr, flush=True)
    return out


def _decoding(encoder, epochs, train, test):
    """Stage-1 decoding of the same encoder on the same test epochs: per-epoch hits.

    The head is the demo's (``LogisticRegression`` on ``transform``, fitted on
    the training epochs), so that the generated images' top-1 can be read
    against what their encoder decodes.
    """
    from sklearn.linear_model import LogisticRegression

    labels = epochs.metadata.label.to_numpy()
    clf = LogisticRegression(max_iter=2000).fit(encoder.transform(epochs[train]), labels[train])
    predicted = clf.predict(encoder.transform(epochs[test]))
    return {"top1": (predicted == labels[test]).astype(float).tolist()}


def _rows(runs, names):
    """Each reported row: (option, label, per-seed paired scores, per-seed set-level scores)."""
    rows = []
    for name in names:
        for key in ("",) + SAMPLING * (name in RESAMPLED):
            label = _label(name) + ("" if not key else f" + sampled with their {key}="
                                    f"{_paper_value(key)!r}")
            rows.append((name, label,
                         [dict(r["sets"][key][0], image=r["image"]) for r in runs[name]],
                         [r["sets"][key][1] for r in runs[name]]))
    return rows


def _against_decoding(runs, rows, headline, share=0.9):
    """Each row's generated top-1 against the same encoders' decoding (issue 20's goal)."""
    decoding = [dict(r["decoding"], image=r["image"]) for r in runs["defaults"]]
    mean = interval(decoding)[0]
    lines = ["", f"Stage-1 decoding of the same encoders on the same test epochs "
             f"(LogisticRegression on `transform`, fitted on the training epochs): "
             f"{_cell(*interval(decoding))}. Goal: generated {headline} >= {share} x decoding; "
             f"the interval is the paired bootstrap of generated minus {share} x decoding over "
             "the same test epochs (above 0: goal met).", "",
             f"| Stage-2 options | trainable parameters | {headline} / decoding "
             f"| generated - {share} x decoding [95% CI] | goal |", "|---|---|---|---|---|"]
    for name, label, paired, _ in rows:
        gap = [dict(image=p["image"], gap=np.subtract(p[headline], np.multiply(share, d["top1"])))
               for p, d in zip(paired, decoding)]
        m, lo, hi = interval(gap, key="gap")
        lines.append(f"| {label} | {runs[name][0]['trainable']:,} "
                     f"| {interval(paired, key=headline)[0] / mean:.2f} "
                     f"| {m:+.3f} [{lo:+.3f}, {hi:+.3f}] "
                     f"| {'met' if lo > 0 else 'not met' if hi < 0 else 'not resolved'} |")
    return lines


def _paper_value(key):
    from mne_synapse._paper import PAPER_STAGE2

    return PAPER_STAGE2[key]


def _cell(mean, low, high):
    return f"{mean:.3f} [{low:.3f}, {high:.3f}]"


def report(runs, names, args):
    """The section's text: tables, control, chance, verdict."""
    one = runs["defaults"][0]
    n_train, n_test, n_images = one["n"]
    n_classes = one["n_classes"]
    scores = _paired_names(n_classes)
    headline, similarity = scores[0], "CLIP similarity"
    lines = [
        f"Simulated ERP world, miniature world (tiny CLIP + tiny SD at its own size). Per "
        f"seed: {n_train} training epochs, {n_test} test epochs on {n_images} held-out images"
        f"{'' if args.all_repetitions else ' (first repetition)'}; one encoder per seed "
        f"({args.encoder_epochs} epochs) shared by every row; finetuning {args.steps} "
        f"optimiser steps, batch {args.batch_size} unless the row says otherwise; DDIM "
        f"{args.inference_steps} steps, one image per test epoch, the same initial noise in "
        f"every row. Seeds {list(range(args.seeds))}. Scores as in bench_generator (its "
        "judge, against each epoch's stimulus): mean over seeds [95% bootstrap interval over "
        "test images]; FID and IS set-level, mean over seeds.", "",
        "| Stage-2 options | " + " | ".join(scores + SET_LEVEL[::2]) + " |",
        "|---" * (1 + len(scores) + 2) + "|"]
    rows = _rows(runs, names)
    for _, label, paired, set_level in rows:
        cells = [_cell(*interval(paired, key=s)) for s in scores]
        cells += [f"{np.mean([v[s] for v in set_level]):.3f}" for s in SET_LEVEL[::2]]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    defaults = rows[0][2]
    for label, key in (("shuffled-EEG control (default fit)", "shuffled"),
                       ("chance (permuted pairing)", "chance")):
        paired = [dict(r[key], image=r["image"]) for r in runs["defaults"]]
        lines.append(f"| {label} | " + " | ".join(
            [_cell(*interval(paired, key=s)) for s in scores] + ["", ""]) + " |")
    lines += ["", f"Paired differences from the defaults (same seeds, same test epochs; 95% "
              "bootstrap interval over test images):", "",
              f"| Stage-2 options | {headline} | {similarity} | verdict |", "|---|---|---|---|"]
    better, worse = [], []
    for _, label, paired, _ in rows[1:]:
        diffs = [paired_difference(paired, defaults, key=s) for s in (headline, similarity)]
        above, below = any(d[1] > 0 for d in diffs), any(d[2] < 0 for d in diffs)
        verdict = ("mixed" if above and below else "better" if above else "worse" if below
                   else "not resolved")
        {"better": better, "worse": worse}.get(verdict, []).append(label)
        lines.append(f"| {label} | " + " | ".join(f"{m:+.3f} [{lo:+.3f}, {hi:+.3f}]"
                                                  for m, lo, hi in diffs) + f" | {verdict} |")
    lines += _against_decoding(runs, rows, headline)
    groups = [name for name in names if len(option_params(name)) > 1]
    lines += [""] + [f"'{name}': " + ", ".join(f"{k}={v!r}" for k, v in
                                               option_params(name).items()) + "."
                     for name in groups]
    if "ema_decay" in sum((tuple(option_params(name)) for name in names), ()):
        lines.append(f"EMA over {args.steps} steps: diffusers' warm-up (1 + step) / (10 + "
                     f"step) holds the decay at {(1 + args.steps) / (10 + args.steps):.3f} by "
                     "the last step (theirs: 0.9993 at step 13,000).")
    fits = {name: np.mean([r["fit_seconds"] for r in runs[name]]) for name in names}
    lines += ["", "Finetuning time per fit (s, mean over seeds, one thread): " + ", ".join(
        f"{name} {seconds:.0f}" for name, seconds in fits.items()) + ".", ""]
    if better:
        lines.append("Verdict: resolved better than the defaults (interval of the paired "
                     f"difference above 0): {'; '.join(better)}. The defaults are not changed "
                     "here; the change is for the maintainers to decide.")
    else:
        lines.append("Verdict: defaults kept: no option resolved better (no paired-difference "
                     "interval above 0 without the other score's below 0).")
    if worse:
        lines.append(f"Resolved worse than the defaults: {'; '.join(worse)}.")
    if all(name in LEVERS for name in names[1:]):  # the levers' section: no authors' rows
        return "\n".join(lines)
    left_out = [name for name in TRAINING if name not in names]
    if left_out:
        lines.append(f"Not measured alone (time): {', '.join(left_out)}; they are in '"
                     f"{ALL_TRAINING}'.")
    lines.append(f"At this size the authors' schedule (lr 2e-5 for 13,000 steps of batch 32 on "
                 f"SD 2.1) runs for {args.steps} steps only: a row with it measures their "
                 "learning rate and batch at a small budget, not their whole training.")
    return "\n".join(lines)


def authors_parameter_table(unet_config=None, encoder_sizes=None):
    """The trainable parameters behind the authors' headline count, from their code.

    Parameters
    ----------
    unet_config : dict | None
        ``UNet2DConditionModel`` configuration (None: SD 2.1's, shipped).
    encoder_sizes : dict | None
        Sizes of :class:`~mne_synapse.models.OfficialAutoencoder` (None: theirs).

    Returns
    -------
    rows : list of (str, int)
        Each part and each running total, in parameters.
    """
    from diffusers import UNet2DConditionModel

    from mne_synapse.models import (EEGAdapter, OfficialDecoder, OfficialEncoder,
                                    count_parameters, count_recipe, install_eeg_processors,
                                    load_unet_config)

    unet = UNet2DConditionModel.from_config(unet_config or load_unet_config("sd21"))
    n_unet = count_parameters(unet, trainable_only=False)
    install_eeg_processors(unet)
    dim = unet.config.cross_attention_dim
    n_new_kv = count_parameters(unet, trainable_only=False) - n_unet
    recipe = count_recipe(unet, "paper")
    adapter = count_parameters(EEGAdapter(dim, dim))
    sizes = encoder_sizes or {}
    encoder = count_parameters(OfficialEncoder(**sizes))
    decoder = count_parameters(OfficialDecoder(**sizes))
    return [
        ("U-Net (stock, for reference)", n_unet),
        ("recipe 'paper': U-Net names with attn2 / time / norm2 (incl. the new to_k_ip / "
         f"to_v_ip, {n_new_kv:,})", recipe),
        ("f_adapt (Linear + LayerNorm, 4 tokens)", adapter),
        ("= trainable in their Stage 2", recipe + adapter),
        ("their Stage-1 encoder (eeg_AE.py, frozen in Stage 2)", encoder),
        ("= Stage 2 + encoder", recipe + adapter + encoder),
        ("their Stage-1 decoder (eeg_AE.py, not used in Stage 2)", decoder),
        ("= Stage 2 + encoder + decoder", recipe + adapter + encoder + decoder),
    ]


def parameter_text(rows):
    """The table of :func:`authors_parameter_table` and what it leaves unexplained."""
    counts = dict(rows)
    lines = ["| part (their code, SD 2.1 U-Net from its shipped config) | parameters | M |",
             "|---|---|---|"]
    lines += [f"| {name} | {n:,} | {n / 1e6:.2f} |" for name, n in rows]
    lines.append(f"| reported by the authors (README) | | {REPORTED_TRAINABLE:.2f} |")
    totals = {name: n / 1e6 for name, n in rows if name.startswith("= ")}
    nearest = min(totals, key=lambda name: abs(totals[name] - REPORTED_TRAINABLE))
    gap = REPORTED_TRAINABLE - totals[nearest]
    stage2, with_encoder = (totals[name] for name in ("= trainable in their Stage 2",
                                                       "= Stage 2 + encoder"))
    lines += ["", f"Reproduced from their code: src/models/eeg_LDM2.py prints 'Number of "
              "Trainable Params' over the set of U-Net parameters named attn2 / time / norm2, "
              f"the IP processors' and the adapter's: {stage2:.2f} M by our count of the same "
              "names; a commented-out line there adds the frozen encoder's parameters "
              f"({with_encoder:.2f} M). Not reproduced: {REPORTED_TRAINABLE} M. No sum of "
              f"these parts gives it; the nearest, '{nearest[2:]}', is {totals[nearest]:.2f} M "
              f"({gap:+.2f} M); we found no code of theirs that counts it."]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--options",
                        default=",".join(["defaults", *LEVERS, *TRAINING, ALL_TRAINING]),
                        help="comma-separated rows (defaults first)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=300, help="finetuning optimiser steps")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--encoder-epochs", type=int, default=15)
    parser.add_argument("--inference-steps", type=int, default=20)
    parser.add_argument("--all-repetitions", action="store_true",
                        help="every test epoch (default: the first repetition of each)")
    parser.add_argument("--cache-dir", default=None, help="keep each fit's scores (resume)")
    parser.add_argument("--results", default=None, help="write the section into this file")
    parser.add_argument("--parameters", action="store_true",
                        help="print the parameter table only")
    args = parser.parse_args(argv)
    import torch

    table = parameter_text(authors_parameter_table())
    if args.parameters:
        print(table)
        return
    import mne

    mne.set_log_level("WARNING")
    names = args.options.split(",")
    if names[0] != "defaults":
        raise ValueError("--options must start with 'defaults' (the paired reference).")
    start, store, encoders = time.perf_counter(), Store(args.cache_dir), {}
    runs = {name: [] for name in names}
    for name in names:  # option by option: an interrupted run has finished the first rows
        for seed in range(args.seeds):
            key = dict(step="stage2-options", option=name, seed=seed, steps=args.steps,
                       batch_size=args.batch_size, encoder_epochs=args.encoder_epochs,
                       inference_steps=args.inference_steps, all=args.all_repetitions,
                       encoder=encoder_defaults())
            runs[name].append(store.get(key, lambda: _fit_and_score(name, seed, args,
                                                                    encoders)))
    command = "python benchmarks/bench_stage2_options.py " + shlex.join(argv or sys.argv[1:])
    machine = (f"{platform.machine()} CPU, {torch.get_num_threads()} torch thread(s), torch "
               f"{torch.__version__}")
    spent = sum(r["fit_seconds"] + r["generate_seconds"] for rs in runs.values() for r in rs)
    levers_only = all(name in LEVERS for name in names[1:])
    heading = LEVERS_HEADING if levers_only else HEADING
    text = (f"{heading}\n\nCommand: `{command.strip()}` ({date.today()}, {machine}; this "
            f"command {(time.perf_counter() - start) / 60:.0f} min, finetuning and sampling "
            f"of the rows {spent / 60:.0f} min when they were computed)\n\n" + report(runs, names, args)
            + ("\n" if levers_only else "\n\nTrainable parameters of the authors' Stage 2 "
               "(issue 15):\n\n" + table + "\n"))
    print(text)
    if args.results:

        write_section(args.results, heading, text)


if __name__ == "__main__":
    main()
