"""Write the whole report: measure, draw, word, then the CSV, Markdown and HTML files.

Each step has its module: :mod:`~models.report.measure` runs the sweep,
:mod:`~models.report.drawing` draws the figures, :mod:`~models.report.compose` words the
sections, :mod:`~models.report.document` renders them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from models.report.compose import compose
from models.report.document import render_html, render_markdown, write_csv
from models.report.drawing import draw_figures
from models.report.measure import ReportOptions, measure
from models.report.plan import studies_of
from models.report.semi import STUDY as SEMI_STUDY
from models.report.transfer import STUDY


@dataclass(frozen=True)
class ReportFiles:
    html: Path
    markdown: Path
    csv: Path
    figures: tuple[Path, ...]
    trained: int
    cached: int
    seconds: float


def build_report(options: ReportOptions) -> ReportFiles:
    """Train (or load) every run of the sweep, then write the report into ``options.out``."""
    began = time.perf_counter()
    measured = measure(options)
    results, sweep = measured.results, measured.sweep
    transfer, semi = set(measured.transfer_specs), set(measured.semi_specs)
    main_source = options.pretrain_dataset or ""
    rows = [
        {
            **sweep.records[sweep.keys[s]],
            "mode": s.mode,  # runs cached before modes existed do not record these two
            "augment": s.augment,
            "studies": ";".join(
                [
                    *studies_of(s, results.budget, results.all_labels, main_source),
                    *([STUDY] if s in transfer else []),
                    *([SEMI_STUDY] if s in semi else []),
                ]
            ),
        }
        for s in measured.specs
    ]
    csv_path = write_csv(options.out / "results.csv", rows)
    drawn = draw_figures(options, measured)
    title, intro, sections = compose(options, measured)
    md = options.out / "report.md"
    md.write_text(render_markdown(title, intro, sections))
    page = options.out / "report.html"
    page.write_text(render_html(title, intro, sections, options.out))
    return ReportFiles(
        page, md, csv_path, drawn, sweep.trained, sweep.cached, time.perf_counter() - began
    )
