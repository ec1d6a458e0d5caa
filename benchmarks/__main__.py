"""Run every benchmark and write benchmarks/RESULTS.md.

``python -m benchmarks`` (quick sizes) or ``python -m benchmarks --full``.
"""

import argparse
import contextlib
import io
import platform
import sys
import time
from datetime import date
from pathlib import Path

from . import bench_encoder, bench_full_size, bench_generator, bench_zero_shot


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true", help="full sizes (slow)")
    parser.add_argument("--output", default=str(Path(__file__).parent / "RESULTS.md"))
    args = parser.parse_args()

    import torch

    size = [] if args.full else ["--quick"]
    machine = (f"{platform.machine()}, {torch.get_num_threads()} torch threads, "
               f"{'CUDA ' + torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'CPU'}, "
               f"torch {torch.__version__}, Python {platform.python_version()}")
    sections, total = [], time.perf_counter()
    for name, bench in [("bench_encoder", bench_encoder), ("bench_zero_shot", bench_zero_shot),
                        ("bench_generator", bench_generator)]:
        start = time.perf_counter()
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            bench.main(size)
        text = out.getvalue()
        sys.stdout.write(text)
        sections.append(f"## {name} ({time.perf_counter() - start:.0f} s)\n\n"
                        f"Command: `python benchmarks/{name}.py {' '.join(size)}`\n\n{text}")
    header = (f"# Benchmark results\n\nMade by `python -m benchmarks{' --full' if args.full else ''}` "
              f"on {date.today()} in {time.perf_counter() - total:.0f} s; machine: {machine}.\n\n")
    # The full-size section comes from its own (25-minute) benchmark: kept as it is.
    full_size = bench_full_size.read_section(args.output)
    Path(args.output).write_text(header + "\n".join(sections))
    if full_size is not None:
        bench_full_size.write_section(args.output, full_size)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
