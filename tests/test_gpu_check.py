"""benchmarks/gpu_check.py: its command line, and its whole flow on a CPU (miniature widths)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import gpu_check

ROOT = Path(__file__).resolve().parents[1]


def test_arguments():
    args = gpu_check.build_parser().parse_args([])
    assert Path(args.out) == ROOT / "benchmarks" / "GPU_RESULTS.md"
    assert not args.quick and args.device == "cuda" and not args.miniature
    args = gpu_check.build_parser().parse_args(["--quick", "--out", "r.md"])
    assert args.quick and args.out == "r.md"
    with pytest.raises(SystemExit) as exc:
        gpu_check.main(["--bogus"])
    assert exc.value.code == 2


def test_without_cuda_it_stops_at_once(monkeypatch, tmp_path, capsys):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main(["--quick", "--out", str(tmp_path / "r.md")]) == 2
    assert "needs a CUDA GPU" in capsys.readouterr().err
    assert not (tmp_path / "r.md").exists()
    # The CPU dry run is for the CPU only.
    assert gpu_check.main(["--miniature"]) == 2


def test_command_line_without_cuda(tmp_path):
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--out",
                             str(tmp_path / "r.md")], cwd=ROOT, env=env,
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert "needs a CUDA GPU; on CPU run benchmarks/bench_full_size.py" in result.stderr
    assert not (tmp_path / "r.md").exists()


@pytest.mark.full_size
def test_dry_run_on_cpu(tmp_path, monkeypatch):
    """Every step of the GPU check runs (the tables fill, no error), at miniature widths."""
    monkeypatch.setenv("OUT", str(tmp_path))
    out = tmp_path / "results" / "GPU_RESULTS.md"
    status = gpu_check.main(["--device", "cpu", "--miniature", "--out", str(out),
                             "--workdir", str(tmp_path)])
    text = out.read_text()
    assert status == 0, text
    assert (tmp_path / "GPU_RESULTS.md").read_text() == text
    assert "## Errors (0)" in text and "FAILED" not in text
    for row in ("| bf16 | on |", "| bf16 | off |", "| no | on |", "| no | off |",
                "| generate() (loaded generator, fp32) | 25 |",
                "| saved and loaded finetuned weights identical |"):
        assert row in text
