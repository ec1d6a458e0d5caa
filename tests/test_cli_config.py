"""Configuration files, ``--set`` and ``--data`` of the command line (cli/_config.py, cli/_data.py)."""

import json

import pytest

from _cli import run_cli
from mne_synapse.cli import main
from mne_synapse.cli._config import data_spec, read_config


@pytest.mark.parametrize("config, extra, message", [
    ("[encoder]\nwidth = 3\n", [], "unknown key(s) ['width'] in [encoder]; valid keys:"),
    ("[training]\nlr = 1\n", [], "unknown section(s) ['training']"),
    ("[encoder\nlr = 1\n", [], "is not valid TOML"),
    ("", ["--set", "encoder.lr=-1"], "lr must be a number >= 0"),
    ("", ["--set", "encoder.preset=huge"], "preset must be one of ['hybrid', 'paper', 'tiny']"),
    ("", ["--set", "lr=1"], "--set expects SECTION.KEY=VALUE"),
    ("[data]\nn_clases = 3\n", [], "unknown key(s) ['n_clases'] in [data]"),
])
def test_bad_configuration_exits_2_before_any_work(config, extra, message, tmp_path, capsys):
    fname = tmp_path / "config.toml"
    fname.write_text(config)
    code = main(["fit-encoder", "--config", str(fname), "--output", str(tmp_path / "enc"),
                 *extra])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("mne-synapse fit-encoder: error:") and message in err
    assert not (tmp_path / "enc").exists()


def test_missing_files_exit_1_with_one_line_and_no_traceback(tmp_path, capsys):
    # Through the installed entry point's module, as a shell user runs it.
    result = run_cli("fit-encoder", "--config", str(tmp_path / "absent.toml"),
                  "--output", str(tmp_path / "enc"))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"mne-synapse fit-encoder: error: config file '{tmp_path / 'absent.toml'}' does not exist"]
    assert main(["fit-encoder", "--data", str(tmp_path / "eeg_5_95_std.pth"),
                 "--output", str(tmp_path / "enc")]) == 1
    assert "eeg_5_95_std.pth' does not exist; give --data 'synthetic', an MNE epochs file" \
        in capsys.readouterr().err


def test_yaml_and_toml_configs_read_alike(tmp_path):
    (tmp_path / "c.toml").write_text('[encoder]\nlr = 0.001\nmodule_kwargs = {widths = [8, 16]}\n')
    (tmp_path / "c.yaml").write_text("encoder:\n  lr: 0.001\n  module_kwargs: {widths: [8, 16]}\n")
    assert read_config(tmp_path / "c.toml") == read_config(tmp_path / "c.yaml") == {
        "encoder": {"lr": 0.001, "module_kwargs": {"widths": [8, 16]}}}
    (tmp_path / "c.json").write_text("{}")
    with pytest.raises(ValueError, match="must end in .toml, .yaml or .yml"):
        read_config(tmp_path / "c.json")


def test_named_paper_configuration(tmp_path, capsys):
    from mne_synapse import SynapseEncoder

    config = read_config("paper")
    assert SynapseEncoder(**config["encoder"]).get_params() == SynapseEncoder.paper().get_params()
    assert set(config) == {"encoder", "generator", "generate"}
    # The authors' network takes 128 x 440 EEG: the synthetic set's 128 x 64 is refused
    # with a message saying how to crop, before any CLIP model is loaded.
    small = [f"--set=data.{k}={v}" for k, v in dict(
        n_classes=5, n_images_per_class=6, n_subjects=2, n_repetitions=2, n_times=64,
        sfreq=128.0).items()]
    code = main(["fit-encoder", "--config", "paper", *small, "--quiet",
                 "--output", str(tmp_path / "enc")])
    err = capsys.readouterr().err
    assert code == 1 and "128 electrodes x 440 samples, got 128 x 64" in err and "crop" in err
    assert not (tmp_path / "enc").exists()


def test_data_spec_layers(tmp_path):
    (tmp_path / "cli_data.json").write_text(json.dumps(
        {"data": {"source": "synthetic", "n_classes": 3, "sfreq": 128.0}}))
    # The record of the model folder, updated by the config...
    spec = data_spec({"data": {"n_classes": 4}}, None, folder=tmp_path)
    assert spec == {"source": "synthetic", "n_classes": 4, "sfreq": 128.0}
    # ...and a new source drops the options of the old one; paths become absolute.
    spec = data_spec({}, "eeg.pth", folder=tmp_path)
    assert spec == {"source": str((tmp_path.cwd() / "eeg.pth").resolve())}
    assert data_spec({}, None) == {"source": "synthetic"}
