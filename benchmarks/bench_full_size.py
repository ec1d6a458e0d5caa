"""The paper's configuration at full size on this machine (CPU): time and memory per stage.

Random weights, offline (see ``benchmarks/_full_size.py``): the paper's Stage-1
encoder (128 x 440 EEG -> 77 x 1024) with ViT-H-14 targets from a local
checkpoint, SD 2.1 from a local diffusers folder at 512 px, recipe ``paper``.
Each stage runs in its own process, so that its peak resident memory is its
own (``VmHWM``); it passes what it fitted to the next stage through the disk,
as a user's scripts would:

1. Stage 1: ``SynapseEncoder.fit`` at batch 32 (seconds per step after the
   first epoch);
2. Stage 2: ``EEGImageGenerator.fit`` at batch 1 (seconds per step after a
   warm-up step), then ``save``;
3. sampling: ``EEGImageGenerator.load`` and ``generate()``, one image, DDIM 25
   steps, guidance 7.5, beside a bare diffusers pipeline with the same U-Net,
   VAE and context.

``python -m benchmarks.bench_full_size [--quick] [--results benchmarks/RESULTS.md]``
(``--quick``: DDIM 5 steps instead of 25). About 25 minutes on 2 cores and
9 GB at most. ``--results`` replaces the "Full size" section of that file. On
a GPU, ``benchmarks/gpu_check.py`` measures the same and more.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

if __package__ in (None, ""):  # run as a script: python benchmarks/bench_full_size.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from benchmarks import _full_size as fs  # noqa: E402
from benchmarks._results import write_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Full size"
N_STAGE1, N_STAGE2, N_IMAGES = 96, 8, 4


def _clip(workdir):
    return json.loads((Path(workdir) / "clip.json").read_text())


def stage_setup(workdir, args):
    start = time.perf_counter()
    fs.write_sd21(workdir / "sd21")
    sd_s = time.perf_counter() - start
    start = time.perf_counter()
    clip = fs.write_clip_checkpoint(workdir / "clip")
    (workdir / "clip.json").write_text(json.dumps(clip))
    return dict(sd_folder_s=sd_s, clip_checkpoint_s=time.perf_counter() - start)


def stage_stage1(workdir, args):
    from mne_synapse import SynapseEncoder

    X, images, captions = fs.eeg_data(N_STAGE1, N_IMAGES)
    clock = fs.stage1_clock(fs.PeakMemory("cpu"))
    start = time.perf_counter()
    encoder = SynapseEncoder(**fs.encoder_params(*_clip(workdir), max_epochs=2,
                                                 callbacks=[("clock", clock)]))
    encoder.fit(X, images=images, captions=captions)
    fit_s = time.perf_counter() - start
    encoder.save(workdir / "encoder")
    n_batches = -(-N_STAGE1 // 32)
    return dict(s_per_step=clock.seconds_per_step(n_warmup=n_batches), fit_s=fit_s,
                targets_s=clock.times[0] - start, setup_peak_gb=clock.setup_peak[0],
                loss=float(encoder.history_[-1, "train_loss"]),
                params=sum(p.numel() for p in encoder.net_.module_.parameters()))


def stage_stage2(workdir, args):
    from mne_synapse import EEGImageGenerator, SynapseEncoder

    X, images, _ = fs.eeg_data(N_STAGE2, N_IMAGES)
    memory = fs.PeakMemory("cpu")
    gen = EEGImageGenerator(encoder=SynapseEncoder.load(workdir / "encoder"),
                            **fs.generator_params(workdir / "sd21", batch_size=1, max_steps=4))
    with fs.UNetStepClock(memory) as clock:
        start = time.perf_counter()
        gen.fit(X, images=images)
    gen.save(workdir / "generator")
    return dict(s_per_step=clock.seconds_per_step(n_warmup=1),
                setup_s=clock.times[0] - start, setup_peak_gb=clock.setup_peak[0],
                loss=float(gen.loss_curve_[-1]),
                trainable=gen.n_trainable_params_)


def stage_sampling(workdir, args):
    from mne_synapse import EEGImageGenerator

    X, _, _ = fs.eeg_data(1, 1)
    start = time.perf_counter()
    gen = EEGImageGenerator.load(workdir / "generator")
    load_s = time.perf_counter() - start
    steps = 5 if args.quick else 25
    start = time.perf_counter()
    image = gen.generate(X, num_inference_steps=steps, guidance_scale=7.5, random_state=0,
                         output_type="np")
    gen_s = time.perf_counter() - start
    bare = fs.bare_sampler(gen, X)
    start = time.perf_counter()
    bare_image = bare(steps)
    bare_s = time.perf_counter() - start
    return dict(load_s=load_s, steps=steps, generate_s=gen_s, bare_s=bare_s,
                shape=list(image.shape), bare_finite=bool(np.isfinite(bare_image).all()))


STAGES = {"setup": stage_setup, "stage1": stage_stage1, "stage2": stage_stage2,
          "sampling": stage_sampling}


def run_stage(name, workdir, args):
    """Run a stage in a fresh process; its results and peak resident memory (GB)."""
    command = [sys.executable, "-m", "benchmarks.bench_full_size", "--stage", name,
               "--workdir", str(workdir)] + (["--quick"] if args.quick else [])
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        sys.stderr.write(done.stdout + done.stderr)
        raise RuntimeError(f"stage {name} failed (exit status {done.returncode})")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall_s"] = time.perf_counter() - start
    print(f"{name}: {result}", file=sys.stderr, flush=True)
    return result


def table(results):
    s1, s2, sm = results["stage1"], results["stage2"], results["sampling"]
    steps = sm["steps"]
    rows = [
        ("Write SD 2.1 (random weights) with `save_pretrained`", "s", results["setup"]["sd_folder_s"],
         results["setup"]["peak_gb"]),
        ("Write the ViT-H-14 checkpoint (random weights)", "s",
         results["setup"]["clip_checkpoint_s"], None),
        (f"Stage 1: load ViT-H-14, CLIP targets of {N_IMAGES} images + captions", "s",
         s1["targets_s"], s1["peak_gb"]),
        ("Stage 1: training step, batch 32 (paper encoder, "
         f"{s1['params'] / 1e6:.2f} M params)", "s / step", s1["s_per_step"], None),
        (f"Stage 2: load SD 2.1 folder, VAE-encode {N_STAGE2} stimuli at 512 px", "s",
         s2["setup_s"], s2["peak_gb"]),
        (f"Stage 2: finetuning step, batch 1, 512 px, recipe paper "
         f"({s2['trainable'] / 1e6:.2f} M trained)", "s / step", s2["s_per_step"], None),
        ("Sampling: `EEGImageGenerator.load`", "s", sm["load_s"], sm["peak_gb"]),
        (f"Sampling: `generate()`, DDIM {steps} + guidance 7.5, 512 px", "s / image",
         sm["generate_s"], None),
        (f"Sampling: bare diffusers pipeline, same U-Net and context, DDIM {steps}",
         "s / image", sm["bare_s"], None),
    ]
    lines = ["| step | unit | value | peak resident memory of the stage (GB) |",
             "|---|---|---|---|"]
    lines += [f"| {what} | {unit} | {value:.2f} | {'' if peak is None else f'{peak:.1f}'} |"
              for what, unit, value, peak in rows]
    overhead = 100 * (sm["generate_s"] / sm["bare_s"] - 1)
    lines += ["", f"`generate()` against the bare pipeline: {overhead:+.1f} %. Last losses: "
              f"Stage 1 {s1['loss']:.3f}, Stage 2 {s2['loss']:.4f} (random weights)."]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="DDIM 5 steps instead of 25")
    parser.add_argument("--results", help="replace the 'Full size' section of this file "
                                          "(e.g. benchmarks/RESULTS.md)")
    parser.add_argument("--workdir", help="folder for the model files (default: temporary)")
    parser.add_argument("--stage", choices=sorted(STAGES), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.stage:  # a child process: run one stage, print its results as JSON
        memory = fs.PeakMemory("cpu")
        result = STAGES[args.stage](Path(args.workdir), args)
        # The stage clocks reset the high-water mark when training starts.
        result["peak_gb"] = max(memory.peak()[0], result.pop("setup_peak_gb", 0))
        print(json.dumps(result))
        return 0
    import torch

    start, load = time.perf_counter(), os.getloadavg()[0]
    if args.workdir:  # a folder of the user's choice, made if missing
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.workdir) as workdir:
        results = {name: run_stage(name, workdir, args) for name in STAGES}
    text = table(results)
    # Other work on a shared machine slows every stage: say how busy it was.
    machine = (f"{platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} "
               f"torch threads, torch {torch.__version__}, Python "
               f"{platform.python_version()}, load average {load:.1f} at the start and "
               f"{os.getloadavg()[0]:.1f} at the end")
    section = (f"{SECTION}\n\nMade by `python -m benchmarks.bench_full_size"
               f"{' --quick' if args.quick else ''}` on {date.today()} in "
               f"{time.perf_counter() - start:.0f} s; machine: {machine}. Random weights, "
               "offline, every stage in its own process (peak resident memory: `VmHWM`). "
               "On a GPU see `benchmarks/gpu_check.py`.\n\n" + text + "\n")
    print(section)
    if args.results:
        write_section(args.results, SECTION, section)
        print(f"wrote the '{SECTION[3:]}' section of {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
