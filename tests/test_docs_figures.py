"""Every figure block of the pages is what its committed results file renders to."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from benchmarks import docs_figures

ROOT = Path(__file__).resolve().parents[1]


def test_every_figure_block_agrees_with_its_results_file() -> None:
    wrong = docs_figures.problems()
    assert not wrong, "\n".join(wrong)


def test_every_results_file_is_committed_and_every_block_names_its_page() -> None:
    for figures in docs_figures.FIGURES.values():
        assert (ROOT / figures.page).is_file(), figures.page
        for source in figures.sources:
            assert (ROOT / source).is_file(), source
            assert source.startswith("benchmarks/results/"), source


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """The pages and results files, in a folder of their own to alter."""
    for figures in docs_figures.FIGURES.values():
        for name in (figures.page, *figures.sources):
            target = tmp_path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ROOT / name, target)
    return tmp_path


def test_a_changed_number_on_a_page_is_caught_and_rewritten(copy: Path) -> None:
    page = copy / "docs" / "performance.md"
    text = page.read_text(encoding="utf-8")
    assert "224,382" in text
    page.write_text(text.replace("224,382", "224,383"), encoding="utf-8")
    (problem,) = docs_figures.problems(copy)
    assert problem.startswith("docs/performance.md: figures:bench-cnn-queue16 differs from ")
    assert "python -m benchmarks.docs_figures --update" in problem
    fixed = docs_figures.updated(page.read_text(encoding="utf-8"), "docs/performance.md", copy)
    assert fixed == text


def test_a_missing_or_unknown_block_is_caught(copy: Path) -> None:
    page = copy / "docs" / "api.md"
    text = page.read_text(encoding="utf-8")
    page.write_text(text.replace("figures:realistic-digits", "figures:realistic"), encoding="utf-8")
    assert docs_figures.problems(copy) == [
        "docs/api.md: figures:realistic is not a block of benchmarks.docs_figures",
        "docs/api.md: no <!-- figures:realistic-digits --> block",
    ]


def test_blocks_are_read_between_their_markers() -> None:
    text = "a\n<!-- figures:one -->\n\n| x |\n\n<!-- /figures -->\nb\n<!-- figures:two -->\n7\n<!-- /figures -->\n"
    assert docs_figures.blocks(text) == {"one": "| x |", "two": "7"}
    with pytest.raises(ValueError, match="figures:one is marked twice"):
        docs_figures.blocks(text.replace("figures:two", "figures:one"))
