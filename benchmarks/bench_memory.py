"""Memory of SynapseEncoder.fit + transform: a memory-mapped file against the same array in memory.

4000 epochs of 128 channels x 64 samples in float32 (131 MB) are written to a
``.npy`` file; ``SynapseEncoder(max_epochs=1)`` is fitted on them and embeds
them, once from ``np.load(fname, mmap_mode='r')`` and once from the array
loaded into memory (loaded before measuring, so the array itself is not
counted). Two measures of the fit + transform, each from its own start:

- peak of the allocations Python and numpy make (``tracemalloc``; torch's
  allocator is not traced);
- growth of the process's peak resident memory (Linux ``VmHWM``, reset before
  each measure through ``/proc/self/clear_refs``), torch included.

The stimuli are 40 distinct drawings (tiny CLIP), each epoch paired with one;
a warm-up fit on one epoch of each stimulus comes first, so that imports, the
CLIP weights and the stimuli's (cached) CLIP embeddings count in neither case.
Run ``python benchmarks/bench_memory.py``.
"""

import argparse
import re
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np


def _resident_mb():
    """(current, peak) resident memory of this process in MB; None off Linux."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    return tuple(int(re.search(rf"{k}:\s+(\d+)", status).group(1)) / 1024
                 for k in ("VmRSS", "VmHWM"))


def _reset_peak():
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _measure(X, images, captions, seed):
    from mne_synapse import SynapseEncoder

    encoder = SynapseEncoder(max_epochs=1, random_state=seed, verbose=False)
    resettable = _reset_peak()
    before = _resident_mb()
    tracemalloc.start()
    start = time.perf_counter()
    encoder.fit(X, images=images, captions=captions)
    Z = encoder.transform(X)
    seconds = time.perf_counter() - start
    traced = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    after = _resident_mb()
    growth = after[1] - before[0] if (resettable and before and after) else float("nan")
    return Z, traced, growth, seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="(same sizes; for python -m benchmarks)")
    parser.add_argument("--n-epochs", type=int, default=4000)
    args = parser.parse_args(argv)

    from mne_synapse.datasets import _drawing

    rng = np.random.default_rng(0)
    labels = rng.integers(10, size=40)
    stimuli = [_drawing.sample_image_params(k, 10, rng) for k in labels]
    pick = rng.integers(len(stimuli), size=args.n_epochs)
    images = [_drawing.draw_image(stimuli[i]) for i in range(len(stimuli))]
    images = [images[i] for i in pick]
    captions = [_drawing.caption(stimuli[i]) for i in pick]
    with tempfile.TemporaryDirectory() as folder:
        fname = Path(folder) / "eeg.npy"
        data = np.lib.format.open_memmap(fname, mode="w+", dtype=np.float32,
                                         shape=(args.n_epochs, 128, 64))
        for start in range(0, args.n_epochs, 500):  # written in chunks: never all in memory
            data[start:start + 500] = rng.standard_normal(data[start:start + 500].shape) * 1e-5
        data.flush()
        del data
        size = fname.stat().st_size / 1e6
        # Warm-up on one epoch of each stimulus: imports, CLIP weights and the
        # stimuli's CLIP embeddings (cached in memory) are then paid for by neither.
        first = np.unique(pick, return_index=True)[1]
        _measure(np.load(fname, mmap_mode="r")[first], [images[i] for i in first],
                 [captions[i] for i in first], 0)
        mapped = np.load(fname, mmap_mode="r")
        z_mapped, traced_mapped, rss_mapped, t_mapped = _measure(mapped, images, captions, 0)
        del mapped
        loaded = np.load(fname)
        z_loaded, traced_loaded, rss_loaded, t_loaded = _measure(loaded, images, captions, 0)
        del loaded
    same = np.array_equal(z_mapped, z_loaded)
    print("# Memory: SynapseEncoder.fit + transform from a memory-mapped file\n")
    print(f"{args.n_epochs} epochs x 128 channels x 64 samples, float32 ({size:.0f} MB on "
          "disk); tiny preset, 1 training epoch; same embeddings from both: "
          f"{'yes' if same else 'NO'}.\n")
    print("| EEG given as | peak Python/numpy allocations (MB, tracemalloc) "
          "| peak resident memory growth (MB) | fit + transform (s) |")
    print("|---|---|---|---|")
    print(f"| `np.load(fname, mmap_mode='r')` | {traced_mapped:.1f} | {rss_mapped:.0f} "
          f"| {t_mapped:.0f} |")
    print(f"| the array in memory | {traced_loaded:.1f} | {rss_loaded:.0f} | {t_loaded:.0f} |")


if __name__ == "__main__":
    main()
