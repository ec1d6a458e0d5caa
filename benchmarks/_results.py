"""Sections of benchmarks/RESULTS.md that come from their own (longer) commands.

``python -m benchmarks`` rewrites RESULTS.md from its own benchmarks and keeps these
sections as they are; each standalone benchmark replaces its own with ``--results``.
"""

from pathlib import Path

#: Headings of the sections written by standalone commands, in the order they appear.
STANDALONE = ("## Stage 1 architectures", "## Stage 2 options", "## Full size",
              "## Stage 2 levers", "## Stage 1 levers")


def _span(text, heading):
    start = text.find(heading + "\n")
    if start < 0:
        return None
    end = text.find("\n## ", start + len(heading))
    return start, len(text) if end < 0 else end + 1


def read_section(path, heading):
    """The section of ``path`` that starts with ``heading``, or None."""
    text = Path(path).read_text() if Path(path).is_file() else ""
    span = _span(text, heading)
    return None if span is None else text[span[0]:span[1]]


def write_section(path, heading, section):
    """Replace (or add at the end) the section of ``path`` that starts with ``heading``."""
    if not section.startswith(heading + "\n"):
        raise ValueError(f"a section must start with its heading {heading!r}")
    path = Path(path)
    text = path.read_text() if path.is_file() else "# Benchmark results\n"
    span = _span(text, heading)
    if span is None:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        text = text[:span[0]] + section.rstrip("\n") + "\n\n" + text[span[1]:]
    path.write_text(text.rstrip("\n") + "\n")


def read_standalone(path):
    """Every standalone section of ``path``, by heading (those it has)."""
    found = {heading: read_section(path, heading) for heading in STANDALONE}
    return {heading: text for heading, text in found.items() if text is not None}
