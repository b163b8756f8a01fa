"""The committed full report under docs/evidence/ is whole, and the evidence page and the README
quote it exactly."""

from __future__ import annotations

import csv
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EVIDENCE = ROOT / "docs" / "evidence"
REPORT = EVIDENCE / "report.md"


def _section(text: str, heading: str) -> str:
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else len(text)]


def _table_rows(text: str) -> list[str]:
    """Body rows of every markdown table in ``text`` (no header, no separator)."""
    rows: list[str] = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if not line.startswith("| ") or set(line) <= set("|-: "):
            continue
        if i + 1 < len(lines) and set(lines[i + 1]) <= set("|-: ") and lines[i + 1]:
            continue  # a header: the separator follows it
        rows.append(line)
    return rows


def test_the_committed_report_is_the_full_budget_with_its_command() -> None:
    text = REPORT.read_text()
    produced = re.search(r"^Produced by: (.+)$", text, re.MULTILINE)
    assert produced, "report.md says no command"
    assert produced.group(1).startswith("headstart report --budget full ")


def test_every_figure_the_report_shows_is_committed() -> None:
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", REPORT.read_text())
    assert len(figures) >= 10
    missing = [name for name in figures if not (EVIDENCE / name).is_file()]
    assert not missing


def test_results_csv_holds_every_run_the_report_counts() -> None:
    runs = re.search(r"; (\d+) runs \(", REPORT.read_text())
    assert runs, "report.md gives no run count"
    with (EVIDENCE / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == int(runs.group(1))
    assert {row["seed"] for row in rows} == {str(seed) for seed in range(10)}


def _not_in_report(quoted: list[str]) -> list[str]:
    report = set(REPORT.read_text().splitlines())
    return [row for row in quoted if row not in report]


def test_every_table_row_of_the_evidence_page_is_in_the_report() -> None:
    quoted = _table_rows((ROOT / "docs" / "evidence.md").read_text())
    assert len(quoted) >= 30
    assert _not_in_report(quoted) == []


def test_the_readme_headline_row_is_in_the_report() -> None:
    quoted = _table_rows((ROOT / "README.md").read_text())
    assert len(quoted) == 1
    assert _not_in_report(quoted) == []


def test_a_changed_figure_is_caught() -> None:
    quoted = _table_rows((ROOT / "docs" / "evidence.md").read_text())
    digit = re.search(r"\d", quoted[0])
    assert digit is not None
    other = "1" if digit.group() != "1" else "2"
    changed = quoted[0][: digit.start()] + other + quoted[0][digit.end() :]
    assert changed != quoted[0]
    assert _not_in_report([changed]) == [changed]


def test_the_row_finder_sees_body_rows_only() -> None:
    table = "| a | b |\n|---|---|\n| 1 | 2 |\n| 3 | 4 |\n\ntext | not a row\n"
    assert _table_rows(table) == ["| 1 | 2 |", "| 3 | 4 |"]


_FIGURE = re.compile(r"(?<![\w.])[+\N{MINUS SIGN}-]?\d+\.\d+|(?<![\w.])[+\N{MINUS SIGN}]\d+")
"""A measured figure in prose: a number with decimals or a sign (counts and sizes are neither)."""


def _prose(text: str) -> str:
    """``text`` without its code blocks, table rows and images."""
    kept, inside = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            inside = not inside
        elif not inside and not line.startswith(("|", "![")):
            kept.append(line)
    return "\n".join(kept)


def _unbacked(prose: str, report: str) -> list[str]:
    """The figures of ``prose`` that no number of ``report`` rounds to."""

    def value(figure: str) -> float:
        return float(figure.replace("\N{MINUS SIGN}", "-").replace("+", ""))

    measured = [value(n) for n in re.findall(r"[+-]?\d+(?:\.\d+)?", report)]
    found = []
    for figure in _FIGURE.findall(prose):
        decimals = len(figure.partition(".")[2])
        if not any(round(m, decimals) == value(figure) for m in measured):
            found.append(figure)
    return found


def test_every_figure_in_the_evidence_prose_is_the_reports() -> None:
    prose = _prose((ROOT / "docs" / "evidence.md").read_text())
    assert len(_FIGURE.findall(prose)) >= 20
    assert _unbacked(prose, REPORT.read_text()) == []


def test_a_figure_the_report_lacks_is_caught() -> None:
    report = "| a | 22.71 | [+0.86, +3.38] | 0.939 |"
    assert _unbacked("gains of +22.7 pp, [+0.9, +3.4], p = 0.94", report) == []
    assert _unbacked("a gain of +22.8 pp at p = 0.95; 10 seeds", report) == ["+22.8", "0.95"]
