"""What the estimators print: MNE's rules, no colour codes or bars in captured streams.

pytest's captured stdout/stderr are not terminals, like a log file, a CI job or
a notebook capture: progress bars and ANSI colour codes must not reach them.
"""

import logging
import re
import subprocess
import sys

import mne
import numpy as np
import pytest

from mne_synapse import EEGImageGenerator, SynapseEncoder
from mne_synapse.utils import LogSink, quiet_libraries, show_progress

from test_generator import _tiny_base

FAST = dict(max_epochs=2, batch_size=16, module_kwargs=dict(widths=(8, 16), n_heads=2))
ANSI = re.compile(r"\x1b\[")
BAR = re.compile(r"\d+%\||it/s|step/s")


def _fit_and_generate(epochs, verbose):
    encoder = SynapseEncoder(random_state=0, verbose=verbose, **FAST).fit(epochs)
    generator = EEGImageGenerator(encoder=encoder, base_model=_tiny_base(), max_steps=3,
                                  batch_size=4, num_inference_steps=2, random_state=0,
                                  verbose=verbose).fit(epochs[:8])
    generator.generate(epochs[:2], output_type="np")


@pytest.mark.parametrize("verbose", [None, False])
def test_output_into_a_non_terminal_follows_verbose(small_synthetic, capfd, verbose):
    epochs = small_synthetic.epochs[:40]
    with mne.utils.use_log_level("INFO"):  # MNE's default level
        _fit_and_generate(epochs, verbose)
    out, err = capfd.readouterr()
    assert not ANSI.search(out + err), (out + err)[:500]
    assert not BAR.search(out + err), (out + err)[:500]
    table = re.findall(r"^\s+\d+\s+[\d.]+\s+[\d.]+$", out, flags=re.M)
    if verbose is None:  # info level: the epoch table, plain
        assert "train_loss" in out and len(table) == 2
    else:
        assert out == "" and table == []


def test_the_epoch_table_follows_mne_log_level_and_log_file(small_synthetic, tmp_path,
                                                             capfd):
    epochs = small_synthetic.epochs[:40]
    with mne.utils.use_log_level("WARNING"):  # verbose=None: MNE's level decides
        SynapseEncoder(random_state=0, **FAST).fit(epochs)
    assert capfd.readouterr().out == ""
    log = tmp_path / "fit.log"
    mne.set_log_file(log, overwrite=True)
    try:
        SynapseEncoder(random_state=0, verbose=True, **FAST).fit(epochs)
    finally:
        mne.set_log_file(None)
    text = log.read_text()
    assert "train_loss" in text and not ANSI.search(text)


def test_log_sink_keeps_colours_on_terminals_only(capfd, monkeypatch):
    coloured = "      1        \x1b[36m7.9448\x1b[0m  1.0233"
    with mne.utils.use_log_level("INFO"):
        LogSink()(coloured)
        assert capfd.readouterr().out == "      1        7.9448  1.0233\n"
        monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
        LogSink()(coloured)
        assert capfd.readouterr().out == coloured + "\n"
        LogSink(verbose=False)(coloured)
        assert capfd.readouterr().out == ""
    assert show_progress(True) is False  # stderr is captured: never a bar
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert show_progress(True) and not show_progress(False)


def test_our_offline_error_comes_first(capfd):
    """open_clip logs ERROR:root before raising; our FileNotFoundError is what shows."""
    from mne_synapse.clip import CLIPEmbedder

    root = logging.getLogger()
    handlers = list(root.handlers)
    with pytest.raises(FileNotFoundError, match="On a machine with internet run"):
        CLIPEmbedder("RN50", "openai").model
    out, err = capfd.readouterr()
    assert "ERROR" not in out + err and "Failed to download" not in out + err
    assert root.handlers == handlers  # no handler installed behind the user's back
    with pytest.raises(FileNotFoundError, match="hf download"):
        from mne_synapse._finetuning import load_base_model

        load_base_model("stabilityai/stable-diffusion-2-1")
    out, err = capfd.readouterr()
    assert "Warning" not in out + err, err


def test_quiet_libraries_is_scoped():
    import warnings

    with quiet_libraries():
        warnings.warn("library noise", FutureWarning)
        logging.error("library noise")
    with pytest.warns(FutureWarning, match="ours"):
        warnings.warn("ours", FutureWarning)
    assert logging.getLogger().filters == []


@pytest.mark.slow  # a fresh interpreter importing torch, diffusers, braindecode: ~10-50 s
def test_cli_info_prints_no_library_warnings():
    result = subprocess.run([sys.executable, "-m", "mne_synapse.cli", "info"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0
    assert "braindecode" in result.stdout
    assert "Warning" not in result.stderr, result.stderr


def test_volts_then_microvolts_warns(small_synthetic):
    epochs = small_synthetic.epochs[:40]
    encoder = SynapseEncoder(random_state=0, verbose=False, **FAST).fit(epochs)
    X = epochs.get_data()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # same units: no warning
        encoder.transform(X * 3, subjects=epochs.metadata.subject.to_numpy())
    with pytest.warns(UserWarning, match=r"is 1e\+06 times that seen in fit .*microvolts"):
        encoder.transform(X * 1e6, subjects=epochs.metadata.subject.to_numpy())
    assert np.isfinite(encoder.signal_rms_) and encoder.signal_rms_ > 0
