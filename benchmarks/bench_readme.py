"""Run the Python code blocks of README.md and time each: the numbers the README quotes.

Each ```python block runs in one namespace, in order (a block may use what an
earlier one defined), in a temporary working folder. Prints one row per block:
its first line, the wall-clock seconds it took and the CPU seconds of this
process (with one torch thread, about what the wall clock shows on an idle
machine; on a shared machine the wall clock grows and the CPU time does not). The slow test
``tests/test_readme.py`` runs the same blocks, so the README's code cannot rot.

Run ``OMP_NUM_THREADS=1 python benchmarks/bench_readme.py``.
"""

import argparse
import os
import re
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks(path=README):
    """The ```python code blocks of ``path``, in order."""
    return re.findall(r"^```python\n(.*?)^```", Path(path).read_text(), flags=re.S | re.M)


@contextmanager
def _inside(folder):
    previous = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


def run_blocks(blocks, log=print):
    """Execute ``blocks`` in one namespace.

    Returns [(first line, wall seconds, CPU seconds)] and the namespace.
    """
    namespace, timings = {"__name__": "__readme__"}, []
    with tempfile.TemporaryDirectory() as folder, _inside(folder):
        for block in blocks:
            start, cpu = time.perf_counter(), time.process_time()
            exec(compile(block, str(README), "exec"), namespace)
            timings.append((block.strip().splitlines()[0], time.perf_counter() - start,
                            time.process_time() - cpu))
            log(f"ran in {timings[-1][1]:.0f} s: {timings[-1][0]}")
    return timings, namespace


def main(argv=None):
    argparse.ArgumentParser(description=__doc__.split("\n")[0]).parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import torch

    timings, _ = run_blocks(python_blocks(), log=lambda line: print(line, file=sys.stderr))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"README.md's Python blocks, {torch.get_num_threads()} torch thread(s), "
          f"load average {load:.1f} on {os.cpu_count()} CPUs\n")
    print("| block (first line) | wall seconds | CPU seconds |\n|---|---|---|")
    for first, wall, cpu in timings:
        print(f"| `{first}` | {wall:.0f} | {cpu:.0f} |")


if __name__ == "__main__":
    main()
