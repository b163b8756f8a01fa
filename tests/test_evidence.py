"""The committed full report under docs/evidence/ is whole, and the README quotes it exactly."""

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


def test_every_table_row_of_the_readme_evidence_is_in_the_report() -> None:
    readme = _section((ROOT / "README.md").read_text(), "Evidence")
    quoted = _table_rows(readme)
    assert len(quoted) >= 10
    report = set(REPORT.read_text().splitlines())
    assert [row for row in quoted if row not in report] == []


def test_the_row_finder_sees_body_rows_only() -> None:
    table = "| a | b |\n|---|---|\n| 1 | 2 |\n| 3 | 4 |\n\ntext | not a row\n"
    assert _table_rows(table) == ["| 1 | 2 |", "| 3 | 4 |"]
