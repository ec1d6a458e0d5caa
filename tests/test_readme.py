"""README.md's Python code runs as written (slow: it fits both stages and cross-validates)."""

import pytest

from benchmarks.bench_readme import python_blocks, run_blocks


def test_readme_has_the_short_example_and_the_cv_snippet():
    blocks = python_blocks()
    assert any("EEGImageGenerator(encoder=encoder).fit(train)" in b for b in blocks)
    assert any("cross_val_score(" in b and "groups=" in b for b in blocks)


@pytest.mark.slow
def test_readme_python_blocks_run():
    import matplotlib

    matplotlib.use("Agg")
    _, namespace = run_blocks(python_blocks(), log=lambda line: None)
    images, scores = namespace["images"], namespace["scores"]
    assert images.shape[:2] == (4, 3) and images.shape[-1] == 3
    # Five image-disjoint folds, each well above the 10-class chance level.
    assert len(scores) == 5 and scores.min() > 0.2
