import subprocess
import sys

import pytest


def _cli(*args, timeout=900):
    return subprocess.run([sys.executable, "-m", "mne_synapse.cli", *args],
                          capture_output=True, text=True, timeout=timeout)


def test_info_lists_versions_and_cache():
    result = _cli("info")
    assert result.returncode == 0, result.stderr
    assert "torch" in result.stdout and "cache" in result.stdout


def test_bad_arguments_exit_with_a_message():
    result = _cli("demo", "--epochs", "0", "--output", "unused")
    assert result.returncode == 2
    assert "max_epochs must be an integer >= 1" in result.stderr
    result = _cli("demo", "--epochs", "many")
    assert result.returncode == 2 and "invalid int value" in result.stderr


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path):
    result = _cli("demo", "--output", str(tmp_path), "--epochs", "2", "--steps", "5",
                  "--n-images", "2")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "metrics:" in result.stdout
    assert (tmp_path / "generated.png").stat().st_size > 10_000
    assert (tmp_path / "generator" / "generator.safetensors").is_file()
