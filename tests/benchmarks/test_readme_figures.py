"""The README's Performance tables are the ones its stored benchmark report prints."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import report

ROOT = Path(__file__).resolve().parents[2]


def test_readme_tables_come_from_the_stored_report() -> None:
    stored = json.loads((ROOT / "benchmarks" / "results" / "bench.json").read_text())
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = stored["results"]
    found = [
        report.Target(t["target"], t["measured"], t["limit"], t["unit"], t["at_most"])
        for t in stored["targets"]
    ]
    for printed in (
        report.reference_table(stored["onnxruntime_in_process"]),
        report.measured_table(rows),
        report.ratio_table(stored["ratios"]),
        report.batching_table(rows),
        report.targets_table(found),
    ):
        assert printed in readme, f"not in the README:\n{printed}"
