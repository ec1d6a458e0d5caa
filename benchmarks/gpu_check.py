"""The paper's configuration on one CUDA GPU: speed, memory, mixed precision.

``python -m benchmarks.gpu_check [--out benchmarks/GPU_RESULTS.md] [--quick]``

Random weights, offline (see ``benchmarks/_full_size.py``): the authors'-size
Stage-1 encoder (128 x 440 EEG -> 77 x 1024) with ViT-H-14 CLIP targets read
from a local checkpoint, SD 2.1 read from a local diffusers folder, 512 px,
the ``paper`` recipe. Measured, all through the public estimators:

- Stage 2 (``EEGImageGenerator.fit``) at batch 8, in fp16 and bf16 (and fp32
  unless ``--quick``), gradient checkpointing on and off: seconds per
  optimisation step and the peak GPU memory of training (goal: at most 12 GB
  with checkpointing; the authors used one 24 GB RTX 3090);
- Stage 1 (``SynapseEncoder.fit``) at batch 32, fp32 and with mixed precision
  (an ``accelerate.Accelerator``): seconds per step, peak memory;
- sampling: images per second with DDIM 25 and 250 steps and guidance 7.5
  through ``generate()`` of a saved-and-loaded generator, beside a bare
  diffusers pipeline with the same U-Net and context (and, for reference,
  one with the U-Net and VAE in fp16).

Each configuration runs in its own ``try``: a failure (out of memory, a dtype
error) is printed with its traceback and recorded in the table, and the rest
still runs. The most wanted measurements come first; past ``--time-limit``
the optional ones left are skipped (and listed). Writes ``--out`` and, when
the environment variable ``OUT`` names a folder, ``$OUT/GPU_RESULTS.md`` too,
after every step, so a run stopped from outside keeps what it measured. About
5 minutes on an H100/H200.
Without CUDA it stops at once (exit status 2); on a CPU run
``benchmarks/bench_full_size.py`` instead.
"""

import argparse
import gc
import os
import platform
import sys
import tempfile
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from . import _full_size as fs

NO_CUDA = ("gpu_check needs a CUDA GPU; on CPU run benchmarks/bench_full_size.py "
           "(torch.cuda.is_available() is False here)")
GOAL_GB = 12.0
PAPER_TRAINABLE_M = 108.05


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(Path(__file__).parent / "GPU_RESULTS.md"),
                        help="markdown file to write (default benchmarks/GPU_RESULTS.md)")
    parser.add_argument("--quick", action="store_true",
                        help="fp16/bf16 only, fewer timed steps, no 250-step sampling")
    parser.add_argument("--workdir", help="folder for the model files (default: a temporary one)")
    parser.add_argument("--time-limit", type=float, default=360, metavar="SECONDS",
                        help="past this, skip what is left of the optional steps (Stage 1 "
                             "in mixed precision, Stage 2 without checkpointing or in fp32, "
                             "250-step sampling); default 360")
    # A dry run of every code path on a CPU with miniature widths (used by the tests).
    parser.add_argument("--device", default="cuda", help=argparse.SUPPRESS)
    parser.add_argument("--miniature", action="store_true", help=argparse.SUPPRESS)
    return parser


class Check:
    """The run's results: rows per table, errors with tracebacks."""

    def __init__(self, device, miniature):
        self.device, self.miniature = device, miniature
        self.memory = fs.PeakMemory(device)
        self.rows = {"stage2": [], "stage1": [], "sampling": [], "checks": []}
        self.errors, self.skipped = [], []
        self.trained = None

    def attempt(self, what, func, *args, **kwargs):
        """Run ``func``; on failure print and keep the traceback, return None."""
        import torch

        print(f"--- {what}", flush=True)
        start = time.perf_counter()
        try:
            return func(*args, **kwargs)
        except Exception as err:  # noqa: BLE001 - one failure must not stop the check
            text = traceback.format_exc()
            print(text, file=sys.stderr, flush=True)
            self.errors.append((what, f"{type(err).__name__}: {err}".splitlines()[0][:300], text))
            return None
        finally:
            gc.collect()
            if self.memory.cuda:
                torch.cuda.empty_cache()
            print(f"    ({time.perf_counter() - start:.1f} s)", flush=True)

    def check(self, name, value, ok):
        self.rows["checks"].append((name, value, "ok" if ok else "FAILED"))


def reset_accelerate():
    """Forget accelerate's process-wide state, so that the next ``Accelerator``
    may use another mixed precision (accelerate refuses a change otherwise)."""
    from accelerate.state import AcceleratorState, GradientState, PartialState

    AcceleratorState._reset_state()
    PartialState._reset_state()
    GradientState._reset_state()


def stage1(check, X, images, captions, clip, precision, n_epochs):
    from mne_synapse import SynapseEncoder

    accelerator = None
    if precision != "no":
        from accelerate import Accelerator

        reset_accelerate()
        accelerator = Accelerator(cpu=check.device == "cpu", mixed_precision=precision)
    clock = fs.stage1_clock(check.memory)
    check.memory.reset()
    encoder = SynapseEncoder(**fs.encoder_params(
        *clip, max_epochs=n_epochs, device=check.device, accelerator=accelerator,
        callbacks=[("clock", clock)]))
    encoder.fit(X, images=images, captions=captions)
    peak, reserved = check.memory.peak()
    loss = float(encoder.history_[-1, "train_loss"])
    n_batches = int(np.ceil(len(X) / 32))
    check.rows["stage1"].append(dict(
        precision=precision, s_per_step=clock.seconds_per_step(n_warmup=n_batches),
        peak=peak, reserved=reserved, setup_peak=clock.setup_peak[0], loss=loss,
        params=sum(p.numel() for p in encoder.net_.module_.parameters())))
    if not np.isfinite(loss):
        raise FloatingPointError(f"Stage-1 loss is {loss}")
    return encoder


def stage2(check, encoder, base, X, images, precision, checkpointing, n_warmup, n_timed,
           save_to=None):
    import torch

    from mne_synapse import EEGImageGenerator

    reset_accelerate()
    check.memory.reset()
    gen = EEGImageGenerator(encoder=encoder, **fs.generator_params(
        base, check.miniature, batch_size=8, max_steps=n_warmup + n_timed + 1,
        mixed_precision=precision, gradient_checkpointing=checkpointing, ema_decay=0.9999,
        device=check.device))
    with fs.UNetStepClock(check.memory) as clock:
        start = time.perf_counter()
        gen.fit(X, images=images)
        wall = time.perf_counter() - start
    peak, reserved = check.memory.peak()
    losses = np.asarray(gen.loss_curve_)
    if save_to is not None and not check.miniature:
        check.check("trainable parameters (recipe paper + adapter, SD 2.1)",
                    f"{gen.n_trainable_params_:,}",
                    round(gen.n_trainable_params_ / 1e6, 2) == PAPER_TRAINABLE_M)
    check.rows["stage2"].append(dict(
        precision=precision, checkpointing=checkpointing,
        s_per_step=clock.seconds_per_step(n_warmup), peak=peak, reserved=reserved,
        setup_peak=clock.setup_peak[0], fit_s=wall, loss=float(losses[-1]),
        finite=bool(np.isfinite(losses).all()), trainable=gen.n_trainable_params_))
    if save_to is not None:
        sample = gen.generate(X[:1], num_inference_steps=2, random_state=0, output_type="np")
        gen.save(save_to)
        check.trained = trained_weights(gen)
        check.check(f"generator device after fit ({precision})",
                    str(next(gen.unet_.parameters()).device),
                    next(gen.unet_.parameters()).device.type == torch.device(check.device).type)
        return sample
    return None


def trained_weights(gen):
    """The finetuned weights (recipe + new k/v + adapter), on the CPU."""
    state = {f"unet.{k}": v for k, v in gen.unet_.named_parameters() if v.requires_grad}
    state.update({f"adapter.{k}": v for k, v in gen.adapter_.state_dict().items()})
    return {k: v.detach().float().cpu().clone() for k, v in state.items()}


def _timed(memory, func):
    memory.sync()
    start = time.perf_counter()
    out = func()
    memory.sync()
    return time.perf_counter() - start, out


def sampling(check, base, saved, X, fitted_sample, quick):
    import torch

    from mne_synapse import EEGImageGenerator

    gen = EEGImageGenerator.load(saved, base_model=base, device=check.device)
    device = next(gen.unet_.parameters()).device
    check.check("loaded generator's U-Net device", str(device),
                device.type == torch.device(check.device).type)
    loaded = trained_weights(gen)
    same = sorted(loaded) == sorted(check.trained) and all(
        torch.equal(loaded[k], v) for k, v in check.trained.items())
    check.check("saved and loaded finetuned weights identical", f"{len(loaded)} tensors", same)
    again = gen.generate(X[:1], num_inference_steps=2, random_state=0, output_type="np")
    diff = int(np.abs(again.astype(int) - fitted_sample.astype(int)).max())
    # The fitted U-Net keeps accelerate's autocast wrapper (its forward runs in
    # the fit's mixed precision), the loaded one runs in float32.
    check.rows["checks"].append(("image of the loaded vs the fitted generator (mixed-precision "
                                 "fit), largest pixel difference (0-255)", diff, "info"))
    n = 2 if check.miniature else 4
    batch = X[:n]

    def record(path, steps, n_images, seconds, images):
        finite = bool(np.isfinite(np.asarray(images, dtype=float)).all())
        check.rows["sampling"].append(dict(path=path, steps=steps, n=n_images, s=seconds,
                                           per_s=n_images / seconds, finite=finite))
        return seconds

    gen.generate(batch[:1], num_inference_steps=2, random_state=0)  # warm-up
    gen_s = record("generate() (loaded generator, fp32)", 25, n, *_timed(
        check.memory, lambda: gen.generate(batch, num_inference_steps=25, guidance_scale=7.5,
                                           random_state=0, output_type="np")))
    bare = fs.bare_sampler(gen, batch)
    bare(2)
    bare_s = record("bare diffusers pipeline, same U-Net (fp32)", 25, n,
                    *_timed(check.memory, lambda: bare(25)))
    check.rows["sampling"][-2]["overhead"] = 100 * (gen_s / bare_s - 1)
    if check.memory.cuda:
        half = fs.bare_sampler(gen, batch, torch.float16)
        half(2)
        record("bare diffusers pipeline, U-Net + VAE in fp16 (reference)", 25, n,
               *_timed(check.memory, lambda: half(25)))
        if not quick:
            record("bare diffusers pipeline, U-Net + VAE in fp16 (reference)", 250, n,
                   *_timed(check.memory, lambda: half(250)))
        del half
    if not quick:
        record("generate() (loaded generator, fp32)", 250, 1, *_timed(
            check.memory, lambda: gen.generate(batch[:1], num_inference_steps=250,
                                               guidance_scale=7.5, random_state=0,
                                               output_type="np")))


def _gb(value):
    return f"{value:.2f}" if value is not None and np.isfinite(value) else "-"


def report(check, header, seconds, size):
    lines = [header, f"Total time of the check: {seconds:.0f} s.", ""]
    lines += [f"## Stage 2: finetuning at batch 8, {size} px, recipe `paper` (+ EMA)", "",
              "| mixed precision | gradient checkpointing | s / step | peak allocated, "
              "training (GB) | peak reserved (GB) | peak before training: loading + VAE "
              f"(GB) | <= {GOAL_GB:.0f} GB | last loss | finite | trainable (M) |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in check.rows["stage2"]:
        lines.append(
            f"| {r['precision']} | {'on' if r['checkpointing'] else 'off'} | "
            f"{r['s_per_step']:.3f} | {_gb(r['peak'])} | {_gb(r['reserved'])} | "
            f"{_gb(r['setup_peak'])} | {'yes' if r['peak'] <= GOAL_GB else 'no'} | "
            f"{r['loss']:.4f} | {r['finite']} | {r['trainable'] / 1e6:.2f} |")
    lines += ["", "## Stage 1: encoder training at batch 32 (128 x 440 -> 77 x 1024)", "",
              "| precision | s / step | peak allocated, training (GB) | peak reserved (GB) | "
              "peak before training: CLIP targets (GB) | last loss | encoder + decoder "
              "params (M) |", "|---|---|---|---|---|---|---|"]
    for r in check.rows["stage1"]:
        lines.append(f"| {r['precision']} | {r['s_per_step']:.4f} | {_gb(r['peak'])} | "
                     f"{_gb(r['reserved'])} | {_gb(r['setup_peak'])} | {r['loss']:.4f} | "
                     f"{r['params'] / 1e6:.2f} |")
    lines += ["", f"## Sampling: DDIM, guidance 7.5, {size} px", "",
              "| path | steps | images | s | images / s | overhead vs bare | finite |",
              "|---|---|---|---|---|---|---|"]
    for r in check.rows["sampling"]:
        overhead = f"{r['overhead']:+.1f} %" if "overhead" in r else ""
        lines.append(f"| {r['path']} | {r['steps']} | {r['n']} | {r['s']:.2f} | "
                     f"{r['per_s']:.3f} | {overhead} | {r['finite']} |")
    lines += ["", "## Checks", "", "| check | value | result |", "|---|---|---|"]
    lines += [f"| {name} | {value} | {ok} |" for name, value, ok in check.rows["checks"]]
    if check.skipped:
        lines += ["", "Skipped past the time limit: " + "; ".join(check.skipped) + "."]
    lines += ["", f"## Errors ({len(check.errors)})", ""]
    for what, message, text in check.errors:
        lines += [f"### {what}", "", f"`{message}`", "", "```", text.strip()[-3000:], "```", ""]
    return "\n".join(lines) + "\n"


def _header(args, check):
    import torch

    versions = {name: __import__(name).__version__
                for name in ("torch", "diffusers", "accelerate", "open_clip", "skorch")}
    gpu = (torch.cuda.get_device_name(0) + f", CUDA {torch.version.cuda}"
           if check.memory.cuda else "CPU (dry run, miniature widths)")
    return (f"# GPU check: the paper's configuration at full size\n\n"
            f"Made by `python -m benchmarks.gpu_check{' --quick' if args.quick else ''}` on "
            f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; {gpu}; Python "
            f"{platform.python_version()}; "
            + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".\n\n"
            "Random weights, offline: SD 2.1 from a local folder, ViT-H-14 from a local "
            "checkpoint, EEG 128 x 440. Peak memory is `torch.cuda.max_memory_allocated`, "
            "reset before each measurement; seconds per step are medians after warm-up "
            "(`torch.cuda.synchronize` around each).")


def run(args, write):
    """Run the check; ``write(text)`` gets the report so far after every step."""
    from mne_synapse import SynapseEncoder

    check = Check(args.device, args.miniature)
    quick = args.quick or args.miniature
    n_warmup, n_timed = (1, 2) if quick else (2, 3)
    mixed = ["bf16"] if args.device == "cpu" else ["fp16", "bf16"]
    size = fs.MINIATURE_RESOLUTION if args.miniature else fs.RESOLUTION
    header, start = _header(args, check), time.perf_counter()

    def attempt(what, func, *a, optional=False):
        """One step; an optional one is skipped past the time limit. Report after each."""
        if optional and time.perf_counter() - start > args.time_limit:
            check.skipped.append(what)
            return None
        result = check.attempt(what, func, *a)
        write(report(check, header, time.perf_counter() - start, size))
        return result

    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        tmp = Path(tmp)
        base = attempt("SD 2.1 folder", fs.write_sd21, tmp / "sd21", args.miniature)
        clip = attempt("CLIP checkpoint, built on the device", fs.write_clip_checkpoint,
                       tmp / "clip", args.miniature, args.device)
        if clip is None:  # building on the GPU is only faster; the CPU always works
            clip = fs.write_clip_checkpoint(tmp / "clip", miniature=args.miniature)
        X, images, captions = fs.eeg_data(64 if args.miniature else 256, 16)
        n_stage2 = 16 if args.miniature else 64
        encoder = attempt("Stage 1, fp32", stage1, check, X, images, captions, clip, "no",
                          2 if quick else 3)
        if encoder is None:  # Stage 2 still needs an encoder: a one-step one, on the CPU
            encoder = SynapseEncoder(**fs.encoder_params(*clip, max_epochs=1)).fit(
                X[:32], images=images[:32], captions=captions[:32])
        shape = encoder.latent(X[:2]).shape
        check.check("Z_latent shape", shape, shape == (2, 77, 1024))
        saved, sample = tmp / "generator", None

        def finetune(precision, checkpointing, optional=False):
            nonlocal sample
            out = attempt(f"Stage 2, {precision}, gradient checkpointing {checkpointing}",
                          stage2, check, encoder, base, X[:n_stage2], images[:n_stage2],
                          precision, checkpointing, n_warmup, n_timed,
                          saved if sample is None else None, optional=optional)
            sample = out if sample is None else sample

        # Most wanted first: mixed precision, then sampling, then float32.
        for precision in mixed:
            attempt(f"Stage 1, {precision}", stage1, check, X, images, captions, clip,
                    precision, 2, optional=True)
            for checkpointing in (True, False):
                finetune(precision, checkpointing, optional=not checkpointing)
        if sample is not None:
            attempt("Sampling", sampling, check, base, saved, X, sample,
                    quick or time.perf_counter() - start > 0.75 * args.time_limit)
        if not args.quick:
            for checkpointing in (True, False):
                finetune("no", checkpointing, optional=True)
    return check, report(check, header, time.perf_counter() - start, size)


def main(argv=None):
    args = build_parser().parse_args(argv)
    import torch

    if args.device != "cpu" and not torch.cuda.is_available():
        print(NO_CUDA, file=sys.stderr)
        return 2
    if args.miniature and args.device != "cpu":
        print("--miniature is a CPU dry run; pass --device cpu", file=sys.stderr)
        return 2
    outputs = [Path(args.out)]
    if os.environ.get("OUT") and Path(os.environ["OUT"]).is_dir():
        outputs.append(Path(os.environ["OUT"]) / "GPU_RESULTS.md")
    outputs = list(dict.fromkeys(p.resolve() for p in outputs))

    def write(text):  # after every step: a run stopped from outside keeps what it measured
        for path in outputs:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)

    check, text = run(args, write)
    write(text)
    print(text, flush=True)
    print("wrote " + ", ".join(map(str, outputs)), flush=True)
    return 1 if check.errors else 0


if __name__ == "__main__":
    sys.exit(main())
