"""The fit verbs (cli/fit.py), and generate / evaluate (cli/generate.py) on the folders they write.

``generate`` and ``evaluate`` need a fitted generator, which needs a fitted encoder: the
chain fit-encoder -> fit-generator -> generate -> evaluate is one test.
"""

import json

import pytest
from PIL import Image

from mne_synapse.cli import main

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


@pytest.mark.parametrize("verb, flag", [("fit-generator", "--encoder"),
                                        ("evaluate", "--generator")])
def test_missing_model_folder_exits_1(verb, flag, tmp_path, capsys):
    argv = [verb, flag, str(tmp_path / "nothing"), "--quiet"]
    if verb == "fit-generator":
        argv += ["--output", str(tmp_path / "out")]
    assert main(argv) == 1
    assert "does not exist" in capsys.readouterr().err


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
