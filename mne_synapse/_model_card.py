"""The model card (``README.md``) of a saved estimator folder, as the Hugging Face hub reads it.

YAML front matter (``library_name: mne-synapse``, tags, ``base_model``,
license, data sets, metric names) and a body that says how to load the
folder, how it was trained and how many parameters were trained.
:func:`encoder_card` and :func:`generator_card` say what each estimator's card
holds; :func:`hub_id` tells a hub repository id (a card's ``base_model``) from a path.
"""

import json
import re
from pathlib import Path

LIBRARY_NAME = "mne-synapse"
_DOCS = "https://github.com/mne-tools/mne-synapse"
# A hub repository id, "user/name" (a local path is tried first).
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")


def model_card(name, *, summary, params, n_trainable, tags, base_model=None, repo_id=None,
               license=None, datasets=None, metrics=None, load_lines=(), notes=()):
    """Return the text of a model card.

    Parameters
    ----------
    name : str
        The estimator class (``'SynapseEncoder'`` or ``'EEGImageGenerator'``).
    summary : str
        One sentence on what the folder holds.
    params : dict
        The saved constructor parameters (JSON values).
    n_trainable : str
        The trainable parameter count, as a sentence.
    tags : list of str
        The tags (duplicates dropped).
    base_model : str | None
        A Hugging Face hub id this model was finetuned from (omitted if None).
    repo_id : str | None
        The name to load from in the snippet (a placeholder if None).
    license : str | None
        A hub license identifier, e.g. ``'mit'`` or ``'openrail++'``.
    datasets : str | list of str | None
        Hub data set ids the model was trained on.
    metrics : dict of str to float | None
        Scores to report, by metric name.
    load_lines : sequence of str
        Python lines run after loading, in the snippet.
    notes : sequence of str
        Extra paragraphs.
    """
    from huggingface_hub import ModelCardData

    from . import __version__

    if metrics is not None and not isinstance(metrics, dict):
        raise TypeError(f"metrics must be a dict of metric name to value, got "
                        f"{type(metrics).__name__}.")
    if isinstance(datasets, str):
        datasets = [datasets]
    data = ModelCardData(
        library_name=LIBRARY_NAME, license=license, datasets=datasets or None,
        base_model=base_model, metrics=sorted(metrics) if metrics else None,
        tags=list(dict.fromkeys(tags)),
    )
    where = repo_id or "path/to/this/folder"
    lines = [
        "---", data.to_yaml(), "---", "",
        f"# {name}", "",
        f"{summary} Saved by [mne-synapse]({_DOCS}) {__version__}.", "",
        "## How to load", "",
        "```python",
        f"from mne_synapse import {name}",
        "",
        f"model = {name}.from_pretrained({where!r})",
        *load_lines,
        "```", "",
        *[line for note in notes for line in (note, "")],
        "## Parameters", "",
        n_trainable, "",
        "## Training configuration", "",
        "```json",
        json.dumps(params, indent=1, sort_keys=True, default=str),
        "```", "",
    ]
    if metrics:
        lines += ["## Metrics", "", "| metric | value |", "|---|---|",
                  *[f"| {key} | {value} |" for key, value in sorted(metrics.items())], ""]
    return "\n".join(lines)


def encoder_card(encoder):
    """What a fitted ``SynapseEncoder``'s card says: keyword arguments of :func:`model_card`."""
    from .models import count_parameters

    rate = "" if encoder.sfreq_ is None else f" at {encoder.sfreq_:g} Hz"
    return dict(
        summary=(f"A Stage-1 SYNAPSE encoder: EEG of {encoder.n_chans_} channels x "
                 f"{encoder.n_times_} samples{rate} -> CLIP space ({encoder.clip_model})."),
        params=encoder._saved_params(), tags=["eeg", "mne", "braindecode", "clip"],
        n_trainable=(f"{count_parameters(encoder.net_.module_):,} trainable parameters "
                     f"(the {type(encoder.net_.module_).__name__})."),
        load_lines=["Z = model.transform(epochs)  # CLIP-space embedding of each epoch"])


def generator_card(generator):
    """What a fitted ``EEGImageGenerator``'s card says: keyword arguments of :func:`model_card`."""
    return dict(
        summary=(f"A SYNAPSE EEG-to-image generator: f_adapt and the {generator.recipe!r} "
                 f"recipe finetuned on {generator.base_id_} (not in this folder); encoder in "
                 "encoder/."),
        params=generator._saved_params(), base_model=hub_id(generator.base_id_),
        tags=["eeg", "eeg-to-image", "stable-diffusion", "mne"],
        n_trainable=(f"{generator.n_trainable_params_:,} trainable parameters (the recipe "
                     f"and f_adapt), {100 * generator.trainable_fraction_:.2f}% of the U-Net."),
        load_lines=["images = model.generate(epochs, n_images=5, random_state=0)"],
        notes=["`model.export_diffusers(folder)` writes a folder that stock diffusers "
               "uses without mne-synapse (doc: \"Sharing and reusing models\")."])


def hub_id(name):
    """``name`` if it can only be a hub repository id (``'user/repo'``, no such local path), else None."""
    if isinstance(name, str) and _REPO_ID.fullmatch(name) and not Path(name).exists():
        return name
    return None
