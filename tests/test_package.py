import subprocess
import sys


def _run(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.split()


def test_import_is_light():
    """`import mne_synapse` (and its datasets) must not pull in torch & co."""
    heavy = ["torch", "diffusers", "open_clip", "braindecode", "skorch", "transformers"]
    loaded = _run(
        "import sys, mne_synapse, mne_synapse.datasets; "
        f"print(*[m for m in {heavy!r} if m in sys.modules])"
    )
    assert loaded == []


def test_lazy_public_names():
    out = _run("import mne_synapse as m; print(m.SynapseEncoder.__name__, "
               "m.CLIPEmbedder.__name__, m.__version__)")
    assert out[:2] == ["SynapseEncoder", "CLIPEmbedder"]


def test_cli_help_and_bad_verb():
    help_out = subprocess.run([sys.executable, "-m", "mne_synapse.cli", "--help"],
                              capture_output=True, text=True)
    assert help_out.returncode == 0 and "demo" in help_out.stdout
    bad = subprocess.run([sys.executable, "-m", "mne_synapse.cli", "nope"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


def test_cache_dir_follows_environment(tmp_path, monkeypatch):
    from mne_synapse.utils import get_cache_dir

    monkeypatch.setenv("MNE_SYNAPSE_CACHE", str(tmp_path / "c"))
    assert get_cache_dir("x") == tmp_path / "c" / "x"
    assert (tmp_path / "c" / "x").is_dir()
