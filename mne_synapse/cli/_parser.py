"""The argument parser of ``mne-synapse``: one sub-parser per verb."""

import argparse

from ._config import SECTIONS
from .convert import convert_official
from .demo import demo, info
from .fit import fit_encoder, fit_generator
from .generate import evaluate, generate


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {value}")
    return value


def build_parser():
    """The argument parser of ``mne-synapse`` (one sub-parser per verb)."""
    parser = argparse.ArgumentParser(
        prog="mne-synapse", description="EEG-to-image synthesis (SYNAPSE) for MNE.",
        epilog="Exit status: 0 done, 1 failed (missing or unreadable file), 2 bad "
               "arguments or configuration, 130 interrupted.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="VERB")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="FILE",
                        help="TOML (or YAML, with pyyaml) file with sections "
                             + ", ".join(f"[{s}]" for s in SECTIONS) + ", or 'paper' (the "
                             "authors' configuration); flags override it")
    common.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                        help="override one config value, e.g. --set encoder.lr=1e-3 "
                             "(repeatable; VALUE is read as TOML, else as a string)")
    common.add_argument("--random-state", type=int, default=0, help="seed (default 0)")
    common.add_argument("--device", help="torch device, e.g. cuda (default: config or cpu)")
    common.add_argument("--verbose", default="warning", metavar="LEVEL",
                        help="MNE log level of the data readers (default warning)")
    common.add_argument("--quiet", action="store_true",
                        help="no progress bars (shown only on a terminal anyway)")
    data = argparse.ArgumentParser(add_help=False)
    data.add_argument("--data", metavar="SOURCE",
                      help="'synthetic', an MNE epochs file (-epo.fif; metadata with "
                           "image_path), a CVPR40 .pth file or the CVPR40 hub release "
                           "(folder of parquet shards) (default: [data] source, else the "
                           "data the input model was fitted on, else synthetic)")

    def verb(name, func, help_, parents=(common,)):
        p = sub.add_parser(name, help=help_, description=help_, parents=list(parents))
        p.set_defaults(func=func)
        return p

    verb("info", info, "versions, device and cache folders", parents=())

    demo_parser = verb("demo", demo, "run the synthetic end-to-end demo: fit both stages, "
                       "generate images for held-out EEG, print metrics, save the figure")
    demo_parser.add_argument("--output", default="synapse-demo", help="output folder")
    demo_parser.add_argument("--epochs", type=positive_int, help="Stage-1 training epochs (40)")
    demo_parser.add_argument("--steps", type=positive_int, help="Stage-2 finetuning steps (600)")
    demo_parser.add_argument("--n-images", type=positive_int, default=4,
                             help="images per row of the figure (4)")

    fit_enc = verb("fit-encoder", fit_encoder, "fit the Stage-1 encoder and save it",
                   parents=(common, data))
    fit_enc.add_argument("--output", required=True, help="folder to save the encoder in")
    fit_enc.add_argument("--epochs", type=positive_int, help="training epochs (default 40)")

    fit_gen = verb("fit-generator", fit_generator,
                   "finetune the Stage-2 generator on a saved encoder and save it",
                   parents=(common, data))
    fit_gen.add_argument("--encoder", required=True, help="folder written by fit-encoder")
    fit_gen.add_argument("--output", required=True, help="folder to save the generator in")
    fit_gen.add_argument("--steps", type=positive_int, help="finetuning steps (default 600)")
    fit_gen.add_argument("--base-model", help="'tiny' or a Stable Diffusion hub name or folder")

    convert = verb("convert-official", convert_official,
                   "save the authors' files as ours: their Stage-1 .pth file as an encoder, "
                   "a checkpoint-N folder of their Stage-2 trainer (onto its base model) "
                   "as a generator")
    convert.add_argument("--checkpoint", required=True,
                         help="their Stage-1 file (the released EEGEncoder_BLIP2_*.pth, or "
                              "their trainer's checkpoint; read with weights_only), or their "
                              "Stage-2 checkpoint-N folder (unet/, ip_adaption/, ema_unet/)")
    convert.add_argument("--encoder",
                         help="with a checkpoint-N folder: the Stage-1 encoder it was "
                              "trained with, a folder written by fit-encoder or their .pth")
    convert.add_argument("--n-head", type=positive_int, default=64,
                         help="attention heads of their Stage-1 network, which the weights "
                              "do not reveal (64, as released; their Train_AE.json says 16)")
    convert.add_argument("--output", required=True, help="folder to save the result in")
    convert.add_argument("--base-model", default="stabilityai/stable-diffusion-2-1",
                         help="the Stable Diffusion they finetuned, hub name or folder "
                              "(default stabilityai/stable-diffusion-2-1)")
    convert.add_argument("--ema", action="store_true", help="their EMA U-Net (ema_unet/)")

    for name, func, help_ in (
            ("generate", generate, "generate images from EEG and write PNG files"),
            ("evaluate", evaluate, "score images generated from held-out EEG (n-way "
                                   "top-1, shuffled-EEG control, chance)")):
        p = verb(name, func, help_, parents=(common, data))
        p.add_argument("--generator", required=True, help="folder written by fit-generator")
        p.add_argument("--split", help="which epochs: test (default), val, train, unassigned")
        p.add_argument("--inference-steps", type=positive_int, help="denoising steps")
        p.add_argument("--base-model", help="where the base Stable Diffusion is now")
    generate_parser = sub.choices["generate"]
    generate_parser.add_argument("--output", required=True, help="folder for the PNG files")
    generate_parser.add_argument("--n-images", type=positive_int, help="images per epoch (1)")
    generate_parser.add_argument("--limit", type=positive_int, help="only the first N epochs")
    evaluate_parser = sub.choices["evaluate"]
    evaluate_parser.add_argument("--n-way", type=positive_int,
                                 help="candidates per trial (default: classes, at most 50)")
    evaluate_parser.add_argument("--output", help="also write the metrics to this JSON file")
    return parser
