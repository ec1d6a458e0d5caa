import json
import subprocess
import sys

import pytest
from PIL import Image

from mne_synapse.cli._config import data_spec, read_config
from mne_synapse.cli import main

VERBS = ("info", "demo", "fit-encoder", "fit-generator", "generate", "evaluate",
         "convert-official")
# The small_synthetic fixture's data set (cached once per session) and tiny training.
TINY = """
[data]
n_classes = 5
n_images_per_class = 6
n_subjects = 2
n_repetitions = 2
n_times = 64
sfreq = 128.0

[encoder]
max_epochs = 2

[generator]
max_steps = 3
batch_size = 4
num_inference_steps = 2
"""


def _cli(*args, timeout=900):
    return subprocess.run([sys.executable, "-m", "mne_synapse.cli", *args],
                          capture_output=True, text=True, timeout=timeout)


def _exit_code(argv):
    with pytest.raises(SystemExit) as info:
        main(argv)
    return info.value.code


@pytest.mark.parametrize("verb", VERBS)
def test_each_verb_has_help(verb, capsys):
    assert _exit_code([verb, "--help"]) == 0
    out = capsys.readouterr().out
    assert f"usage: mne-synapse {verb}" in out
    if verb != "info":
        assert "--config" in out and "--quiet" in out


def test_info_lists_versions_device_and_caches(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    for word in ("torch", "device", "cache", "hf cache"):
        assert word in out


@pytest.mark.parametrize("argv, message", [
    (["demo", "--epochs", "0"], "must be an integer >= 1, got 0"),
    (["demo", "--epochs", "many"], "invalid int value: 'many'"),
    (["fit-encoder"], "the following arguments are required: --output"),
    (["fit-generator", "--output", "x"], "required: --encoder"),
    (["generate", "--generator", "g", "--output", "x", "--limit", "-1"], "must be an integer"),
    (["transmogrify"], "invalid choice: 'transmogrify'"),
])
def test_bad_arguments_exit_2_with_a_message(argv, message, capsys):
    assert _exit_code(argv) == 2
    assert message in capsys.readouterr().err


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
    result = _cli("fit-encoder", "--config", str(tmp_path / "absent.toml"),
                  "--output", str(tmp_path / "enc"))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"mne-synapse fit-encoder: error: config file '{tmp_path / 'absent.toml'}' does not exist"]
    assert main(["fit-encoder", "--data", str(tmp_path / "eeg_5_95_std.pth"),
                 "--output", str(tmp_path / "enc")]) == 1
    assert "eeg_5_95_std.pth' does not exist; give --data 'synthetic', an MNE epochs file" \
        in capsys.readouterr().err


@pytest.mark.parametrize("verb, flag", [("fit-generator", "--encoder"),
                                        ("evaluate", "--generator")])
def test_missing_model_folder_exits_1(verb, flag, tmp_path, capsys):
    argv = [verb, flag, str(tmp_path / "nothing"), "--quiet"]
    if verb == "fit-generator":
        argv += ["--output", str(tmp_path / "out")]
    assert main(argv) == 1
    assert "does not exist" in capsys.readouterr().err


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


def test_convert_official_writes_an_encoder_folder(tmp_path, capsys):
    import numpy as np
    import torch

    from mne_synapse import SynapseEncoder
    from mne_synapse.models import OfficialEncoder

    torch.manual_seed(0)
    theirs = OfficialEncoder().eval()
    torch.save({"net": theirs.state_dict()}, tmp_path / "EEGEncoder_BLIP2_69000.pth")
    assert main(["convert-official", "--checkpoint",
                 str(tmp_path / "EEGEncoder_BLIP2_69000.pth"), "--output", str(tmp_path / "enc")]) == 0
    out = capsys.readouterr().out
    assert "n_layer=2, n_head=64, 27,590,878 parameters, 128 x 440 EEG -> 77 x 1024" in out
    encoder = SynapseEncoder.load(tmp_path / "enc")
    x = torch.randn(2, 128, 440)
    with torch.no_grad():
        np.testing.assert_allclose(encoder.latent(x.numpy()), theirs(x).numpy(), atol=1e-6)
    torch.save({"net": {}}, tmp_path / "empty.pth")
    assert main(["convert-official", "--checkpoint", str(tmp_path / "empty.pth"),
                 "--output", str(tmp_path / "bad")]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "does not hold the authors'" in err
    assert not (tmp_path / "bad").exists()
    assert main(["convert-official", "--checkpoint", str(tmp_path / "empty.pth"),
                 "--encoder", str(tmp_path / "enc"), "--output", str(tmp_path / "bad")]) == 2
    assert "--encoder goes with a Stage-2 checkpoint-N folder" in capsys.readouterr().err


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


def test_fit_encoder_generator_generate_evaluate(small_synthetic, tmp_path, capsys):
    config = tmp_path / "tiny.toml"
    config.write_text(TINY)
    enc, gen, images = tmp_path / "enc", tmp_path / "gen", tmp_path / "images"
    common = ["--config", str(config), "--quiet"]

    # A flag beats the config (max_epochs 1, not 2).
    assert main(["fit-encoder", *common, "--output", str(enc), "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "image-disjoint" in out and "class decoding of held-out images" in out
    assert json.loads((enc / "config.json").read_text())["params"]["max_epochs"] == 1
    assert json.loads((enc / "cli_data.json").read_text())["data"]["n_classes"] == 5

    # The generator finds its data through the encoder's record (no [data] here).
    gen_config = tmp_path / "gen.toml"
    gen_config.write_text(TINY[TINY.index("[generator]"):])
    assert main(["fit-generator", "--config", str(gen_config), "--quiet", "--encoder",
                 str(enc), "--output", str(gen)]) == 0
    assert "finetuned" in capsys.readouterr().out
    assert (gen / "generator.safetensors").is_file() and (gen / "encoder").is_dir()

    n_test = (small_synthetic.epochs.metadata.split == "test").sum()
    assert main(["generate", *common, "--generator", str(gen), "--output", str(images),
                 "--n-images", "2", "--limit", "3"]) == 0
    pngs = sorted(images.glob("0*.png"))
    assert len(pngs) == 3 * 2
    assert Image.open(pngs[0]).size == (32, 32)
    assert len((images / "generated.csv").read_text().strip().splitlines()) == 1 + 3 * 2
    assert (images / "grid.png").stat().st_size > 1000
    capsys.readouterr()

    metrics = tmp_path / "metrics.json"
    assert main(["evaluate", *common, "--generator", str(gen), "--output", str(metrics)]) == 0
    out = capsys.readouterr().out
    assert "5-way top-1 of images generated from held-out EEG" in out
    result = json.loads(metrics.read_text())
    assert result["n_test_epochs"] == n_test and result["chance"] == pytest.approx(0.2)
    for key in ("top1", "shuffled_control", "decoding"):
        assert 0 <= result[key] <= 1

    # A split the data do not have: a one-line error naming the splits there are.
    assert main(["generate", *common, "--generator", str(gen), "--output", str(images),
                 "--split", "holdout"]) == 1
    assert "no epochs in split 'holdout' (the data have ['test', 'train', 'val'])" in \
        capsys.readouterr().err


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path):
    result = _cli("demo", "--output", str(tmp_path), "--epochs", "2", "--steps", "5",
                  "--n-images", "2", "--quiet")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "metrics:" in result.stdout
    assert (tmp_path / "generated.png").stat().st_size > 10_000
    assert (tmp_path / "generator" / "generator.safetensors").is_file()
