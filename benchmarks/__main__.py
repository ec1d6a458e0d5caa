"""Run every benchmark and write benchmarks/RESULTS.md.

``python -m benchmarks`` (quick sizes) or ``python -m benchmarks --full``;
``--cache-dir DIR`` keeps each finished benchmark's section and each fit (Stage 1:
each model, world, seed and setting; zero-shot and Stage 2: each world and seed)
there, so that an interrupted run resumes where it stopped (delete the folder to
start over).
"""

import argparse
import contextlib
import io
import platform
import sys
import time
from datetime import date
from pathlib import Path

from . import bench_encoder, bench_generator, bench_memory, bench_zero_shot
from ._results import read_standalone, write_section


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true", help="full sizes (slow)")
    parser.add_argument("--output", default=str(Path(__file__).parent / "RESULTS.md"))
    parser.add_argument("--cache-dir", default=None,
                        help="keep finished sections and fits here (resume a run)")
    parser.add_argument("--finished-only", action="store_true",
                        help="run nothing: write the sections --cache-dir has finished and "
                             "say which are still to run")
    args = parser.parse_args()
    if args.finished_only and not args.cache_dir:
        parser.error("--finished-only needs --cache-dir (where a run keeps its sections)")

    import torch

    size = [] if args.full else ["--quick"]
    device = ("CUDA " + torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU")
    machine = (f"{platform.machine()}, {torch.get_num_threads()} torch threads, {device}, "
               f"torch {torch.__version__}, Python {platform.python_version()}")
    benches = {"bench_encoder": bench_encoder, "bench_zero_shot": bench_zero_shot,
               "bench_generator": bench_generator, "bench_memory": bench_memory}
    sections = {}
    # The longest last, so that an interrupted run has finished the others.
    for name in ("bench_memory", "bench_zero_shot", "bench_generator", "bench_encoder"):
        bench = benches[name]
        done = Path(args.cache_dir or ".", f"section-{name}-{'full' if args.full else 'quick'}.md")
        if args.cache_dir and done.exists():
            sections[name] = done.read_text()
            continue
        if args.finished_only:
            sections[name] = (f"## {name}\n\nNot run yet: `python -m benchmarks` has not "
                              "finished this section; run it to fill it in.\n")
            continue
        start = time.perf_counter()
        out = io.StringIO()
        extra = (["--cache-dir", str(Path(args.cache_dir, "fits"))]
                 if args.cache_dir and bench is not bench_memory else [])
        with contextlib.redirect_stdout(out):
            bench.main(size + extra)
        text = out.getvalue()
        sys.stdout.write(text)
        sections[name] = (f"## {name} ({time.perf_counter() - start:.0f} s)\n\n"
                          f"Command: `python benchmarks/{name}.py {' '.join(size)}`\n\n{text}")
        if args.cache_dir:
            done.parent.mkdir(parents=True, exist_ok=True)
            done.write_text(sections[name])
    command = "python -m benchmarks" + (" --full" if args.full else "")
    header = (f"# Benchmark results\n\nMade by `{command}` on {date.today()}; machine: "
              f"{machine}. Each section's heading gives the seconds it took (the run that "
              "finished it, when resumed from --cache-dir).\n\n")
    missing = [name for name in benches if sections[name].startswith(f"## {name}\n\nNot run")]
    if missing:
        header += (f"**Unfinished:** {', '.join(missing)} still to run (`{command} --cache-dir "
                   "DIR` resumes an interrupted run).\n\n")
    # Sections from standalone (longer) commands are kept as they are.
    standalone = read_standalone(args.output)
    Path(args.output).write_text(header + "\n".join(sections[name] for name in benches))
    for heading, section in standalone.items():
        write_section(args.output, heading, section)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
