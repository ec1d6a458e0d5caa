"""Failure injection shared by the atomic-save tests."""

import os


def crashing_replace(fail_at):
    """An ``os.replace`` that raises on call number ``fail_at`` (0-based), else renames."""
    real_replace, calls = os.replace, []

    def replace(src, dst):
        calls.append(dst)
        if len(calls) - 1 == fail_at:
            raise OSError("simulated crash")
        real_replace(src, dst)

    return replace
