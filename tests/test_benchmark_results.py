"""benchmarks/_results.py: standalone sections survive a rewrite of RESULTS.md."""

import pytest

from benchmarks._results import STANDALONE, read_section, read_standalone, write_section


def test_sections_are_replaced_in_place_and_kept(tmp_path):
    path = tmp_path / "RESULTS.md"
    path.write_text("# Benchmark results\n\n## bench_encoder (1 s)\n\nold table\n")
    full, stage2 = STANDALONE[2], STANDALONE[1]
    write_section(path, full, f"{full}\n\nfirst\n")
    write_section(path, stage2, f"{stage2}\n\noptions\n")
    write_section(path, full, f"{full}\n\nsecond\n")
    text = path.read_text()
    assert "first" not in text and text.count(full) == 1
    assert text.index("old table") < text.index("second") < text.index("options")
    assert read_section(path, stage2) == f"{stage2}\n\noptions\n"
    assert set(read_standalone(path)) == {full, stage2}
    assert read_section(path, STANDALONE[0]) is None
    with pytest.raises(ValueError, match="must start with its heading"):
        write_section(path, full, "## Something else\n")


def test_finished_only_writes_what_a_run_finished(tmp_path, monkeypatch):
    import sys

    from benchmarks.__main__ import main

    cache, out = tmp_path / "cache", tmp_path / "RESULTS.md"
    cache.mkdir()
    (cache / "section-bench_memory-quick.md").write_text("## bench_memory (1 s)\n\nmemory table\n")
    full = STANDALONE[2]
    write_section(out, full, f"{full}\n\nkept\n")
    monkeypatch.setattr(sys, "argv", ["benchmarks", "--cache-dir", str(cache), "--output",
                                      str(out), "--finished-only"])
    main()
    text = out.read_text()
    assert "memory table" in text and "kept" in text
    assert "**Unfinished:** bench_encoder, bench_zero_shot, bench_generator" in text
    assert not list(cache.glob("section-bench_encoder*"))  # nothing was run
