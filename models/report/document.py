"""Write the report as ``results.csv``, ``report.md`` and a self-contained ``report.html``."""

from __future__ import annotations

import base64
import csv
import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.report.tables import Table

CSV_COLUMNS = (
    "run",
    "studies",
    "arch",
    "depth",
    "hidden",
    "method",
    "variant",
    "optimizer",
    "init",
    "mode",
    "augment",
    "lr",
    "labels_per_class",
    "seed",
    "dataset",
    "pretrain_dataset",
    "test_accuracy",
    "test_nll",
    "best_epoch",
    "epochs_run",
    "pretrain_seconds",
    "finetune_seconds",
)


@dataclass(frozen=True)
class FigureRef:
    """A PNG in the report folder and what it shows."""

    file: str
    caption: str


Block = str | Table | FigureRef
"""A paragraph (plain text), a table or a figure."""


@dataclass
class Section:
    title: str
    blocks: Sequence[Block]


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    """One row per run; floats at full precision so the tables can be checked against it."""
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: repr(v) if isinstance(v, float) else v for k, v in row.items()})
    return path


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(title: str, intro: list[str], sections: list[Section]) -> str:
    out = [f"# {title}", "", *[line for p in intro for line in (p, "")]]
    for section in sections:
        out += [f"## {section.title}", ""]
        for block in section.blocks:
            if isinstance(block, Table):
                out += [f"<!-- table:{block.name} -->", f"**{block.title}**", ""]
                out.append("| " + " | ".join(_md_cell(c) for c in block.columns) + " |")
                out.append("|" + "---|" * len(block.columns))
                out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
                out.append("")
                if block.note:
                    out += [f"_{block.note}_", ""]
            elif isinstance(block, FigureRef):
                out += [f"![{block.caption}]({block.file})", "", f"_{block.caption}_", ""]
            else:
                out += [block, ""]
    return "\n".join(out)


STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.45; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f2f2f2; } td:first-child, th:first-child { text-align: left; }
figure { margin: 1em 0 2em; } figure img { max-width: 100%; }
figcaption, .note { color: #555; font-size: 0.9em; }
.conclusion li { margin: 0.3em 0; }
"""


def render_html(title: str, intro: list[str], sections: list[Section], folder: Path) -> str:
    """The same content as the markdown, with every PNG inlined as a data URI."""
    esc = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        *[f"<p>{esc(p)}</p>" for p in intro],
    ]
    for section in sections:
        out.append(f"<h2>{esc(section.title)}</h2>")
        for block in section.blocks:
            if isinstance(block, Table):
                out.append(f'<h3 id="table-{esc(block.name)}">{esc(block.title)}</h3>')
                out.append(f'<table data-table="{esc(block.name)}"><thead><tr>')
                out += [f"<th>{esc(c)}</th>" for c in block.columns]
                out.append("</tr></thead><tbody>")
                for row in block.rows:
                    out.append("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>")
                out.append("</tbody></table>")
                if block.note:
                    out.append(f'<p class="note">{esc(block.note)}</p>')
            elif isinstance(block, FigureRef):
                data = base64.b64encode((folder / block.file).read_bytes()).decode("ascii")
                out.append(
                    f'<figure><img alt="{esc(block.caption)}" src="data:image/png;base64,{data}">'
                    f"<figcaption>{esc(block.caption)}</figcaption></figure>"
                )
            else:
                out.append(f"<p>{esc(block)}</p>")
    out.append("</body></html>")
    return "\n".join(out)
