"""``mne-synapse info`` and ``mne-synapse demo`` (cli/demo.py)."""

import pytest

from _cli import run_cli
from mne_synapse.cli import main


def test_info_lists_versions_device_and_caches(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    for word in ("torch", "device", "cache", "hf cache"):
        assert word in out


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path):
    result = run_cli("demo", "--output", str(tmp_path), "--epochs", "2", "--steps", "5",
                  "--n-images", "2", "--quiet")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "metrics:" in result.stdout
    assert (tmp_path / "generated.png").stat().st_size > 10_000
    assert (tmp_path / "generator" / "generator.safetensors").is_file()
