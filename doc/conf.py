"""Sphinx configuration of mne-synapse (build: ``make -C doc html``)."""

import argparse
import os
import sys
from pathlib import Path

# The same settings as the tests: no downloads, and one torch thread (tiny
# models run fastest on one, and the CI machines have two cores).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))  # gallery_order.py, architecture.py

project = "mne-synapse"
author = "mne-synapse developers"
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "matplotlib.sphinxext.plot_directive",
]
autosummary_generate = True
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
html_theme = "pydata_sphinx_theme"
html_title = "mne-synapse"
exclude_patterns = ["_build", "auto_examples/*.ipynb", "auto_examples/*.py"]
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    # Files named plot_*.py run during the build; others (the GPU recipe) are shown only.
    "filename_pattern": r"/plot_",
    "within_subsection_order": "gallery_order.example_order",
    "download_all_examples": False,
}
# The architecture figure of method.rst, drawn by architecture.py at build time.
plot_include_source = False
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 120)]


def _write_cli_help():
    """``--help`` of every verb into generated/cli/, included by cli.rst."""
    from mne_synapse.cli import build_parser

    os.environ["COLUMNS"] = "90"
    parser = build_parser()
    out = HERE / "generated" / "cli"
    out.mkdir(parents=True, exist_ok=True)
    (out / "mne-synapse.txt").write_text(parser.format_help())
    verbs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in verbs.choices.items():
        (out / f"{name}.txt").write_text(sub.format_help())


_write_cli_help()
