"""The argument parser of ``mne-synapse`` (cli/_parser.py) and ``main``'s exit statuses (cli/__init__.py)."""

import pytest

from mne_synapse.cli import main

VERBS = ("info", "demo", "fit-encoder", "fit-generator", "generate", "evaluate",
         "convert-official")


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
