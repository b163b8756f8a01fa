"""The documentation's figures, written from the committed results files they come from.

A page marks each block of figures it quotes with ``<!-- figures:NAME -->`` and
``<!-- /figures -->``, each on a line of its own; between them, set off by blank lines (so that
Markdown reads the block as its own paragraph, table or code), stands exactly what :data:`FIGURES` ``[NAME]`` renders from
its results file. ``python -m benchmarks.docs_figures`` lists every block that disagrees with
its file; ``--update`` rewrites them. After a new run (the command in each entry's
``regenerate``) that one command brings the pages in step, and ``tests/test_docs_figures.py``
fails until it has.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import realistic_digits, report

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
_BLOCK = re.compile(r"<!-- figures:(?P<name>[\w-]+) -->\n(?P<body>.*?)<!-- /figures -->", re.DOTALL)


@dataclass(frozen=True)
class Figures:
    """One block of figures: where it stands, what it is read from and how that is remade."""

    page: str
    """The page (relative to the repository) that quotes it."""
    sources: tuple[str, ...]
    """The committed results files (relative to the repository) it is read from."""
    render: Callable[[list[Any]], str]
    """The block's text, from the parsed sources in order."""
    regenerate: str
    """The command that writes the sources anew."""

    def text(self, root: Path = ROOT) -> str:
        loaded = [json.loads((root / s).read_text(encoding="utf-8")) for s in self.sources]
        return self.render(loaded)


def bench_tables(stored: dict[str, Any]) -> str:
    """A stored ``headstart bench`` report's tables, as the command printed them."""
    found = [
        report.Target(t["target"], t["measured"], t["limit"], t["unit"], t["at_most"])
        for t in stored["targets"]
    ]
    tables = [
        report.reference_table(stored["onnxruntime_in_process"]),
        report.measured_table(stored["results"]),
        *([report.floors_table(stored["results"])] if _has_floors(stored) else []),
        report.ratio_table(stored["ratios"]),
        report.batching_table(stored["results"]),
        report.targets_table(found),
    ]
    return "```text\n" + "\n\n".join(tables) + "\n```"


def _has_floors(stored: dict[str, Any]) -> bool:
    """Whether a stored report measured the framed floor (reports before it did not)."""
    return any(r["stack"] == report.FRAMED for r in stored["results"])


def targets_across(runs: Sequence[dict[str, Any]]) -> str:
    """Each target's measured value in every run, as a markdown table."""
    names = [t["target"] for t in runs[0]["targets"]]
    head = "| target | " + " | ".join(f"run {i}" for i in range(1, len(runs) + 1)) + " |"
    lines = [head, "|---|" + "---:|" * len(runs)]
    for name in names:
        cells = []
        for run in runs:
            (target,) = [t for t in run["targets"] if t["target"] == name]
            mark = "" if target["met"] else " (missed)"
            cells.append(f"{target['measured']:.2f} {target['unit']}{mark}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def failed_requests(stored: dict[str, Any]) -> str:
    """The failed requests of every load run of a stored report, summed."""
    return f"{sum(r['failures'] for r in stored['results']):,}"


def realistic_table(stored: dict[str, Any]) -> str:
    return realistic_digits.table(stored["sets"], stored["count"])


def simulation(stored: dict[str, Any]) -> str:
    """``headstart experiments simulate``'s in-process figures, as the page quotes them."""
    aa, ab, srm = stored["aa"], stored["ab"], stored["srm"]

    def row(label: str, hits: int, interval: Sequence[float]) -> str:
        rate = hits / aa["runs"]
        return (
            f"| {label} | {hits}/{aa['runs']} | {rate:.3f} | "
            f"[{interval[0]:.3f}, {interval[1]:.3f}] |"
        )

    alpha = "\N{GREEK SMALL LETTER ALPHA}"
    dash = "\N{EN DASH}"
    head = (
        f"| A/A, {aa['runs']} experiments, both arms 0.80 accurate, {aa['looks']} looks each, "
        f"{alpha} = {aa['alpha']:g} | false positives | rate | 95% interval (Wilson) |"
    )
    power = (
        f"- A/B with arms 0.72 and 0.80 accurate, {ab['runs']} experiments: feedback items to "
        f"call the better arm: median {ab['median']:.0f}, quartiles {ab['q1']:.0f}{dash}"
        f"{ab['q3']:.0f}; wrong arm called: {ab['wrong']}; undecided: {ab['undecided']}."
    )
    ramp = stored["ramp"]
    ramped = (
        f"- A/A through a ramp, {ramp['runs']} experiments of {ramp['items']:,} items: the "
        f"challenger's share {ramp['before']:.0%} then {ramp['after']:.0%} half-way, while "
        f"accuracy falls from {ramp['accuracies'][0]:g} to {ramp['accuracies'][1]:g} in both "
        f"arms: false positives {ramp['stratified']}/{ramp['runs']} (95% interval "
        f"[{ramp['stratified_interval'][0]:.3f}, {ramp['stratified_interval'][1]:.3f}]) with "
        f"the arms compared within periods, as the service does; {ramp['pooled']}/"
        f"{ramp['runs']} with the periods pooled."
    )
    ratio = (
        f"- Sample-ratio check, {srm['runs']} splits of {srm['units']} units at 1:1: "
        f"{srm['healthy_flagged']} healthy splits flagged; {srm['broken_flagged']} flagged "
        f"when {srm['loss']:.0%} of arm b's exposures are lost."
    )
    peeked = f"fixed-horizon z test, peeked at the same {aa['looks']} looks"
    return "\n".join(
        [
            head,
            "|---|---|---|---|",
            row("always-valid (mSPRT)", aa["sequential"], aa["sequential_interval"]),
            row(peeked, aa["fixed"], aa["fixed_interval"]),
            "",
            power,
            ramped,
            ratio,
        ]
    )


def _one(render: Callable[[dict[str, Any]], str]) -> Callable[[list[Any]], str]:
    return lambda loaded: render(loaded[0])


_BENCH = "headstart bench --model-repository DIR --out {}"
FIGURES: dict[str, Figures] = {
    "bench-cnn": Figures(
        "docs/performance.md",
        ("benchmarks/results/bench-cnn.json",),
        _one(bench_tables),
        _BENCH.format("benchmarks/results/bench-cnn.json"),
    ),
    "bench-cnn-queue16": Figures(
        "docs/performance.md",
        ("benchmarks/results/bench-cnn-queue16.json",),
        _one(failed_requests),
        "HEADSTART_MAX_QUEUE=16 " + _BENCH.format("benchmarks/results/bench-cnn-queue16.json"),
    ),
    "bench": Figures(
        "docs/performance.md",
        ("benchmarks/results/bench.json",),
        _one(bench_tables),
        _BENCH.format("benchmarks/results/bench.json"),
    ),
    "bench-runs": Figures(
        "docs/performance.md",
        (
            "benchmarks/results/bench-run1.json",
            "benchmarks/results/bench-run2.json",
            "benchmarks/results/bench.json",
        ),
        targets_across,
        _BENCH.format("benchmarks/results/bench-run1.json") + ", then run2, then bench.json",
    ),
    "realistic-digits": Figures(
        "docs/api.md",
        ("benchmarks/results/realistic_digits.json",),
        _one(realistic_table),
        "python -m benchmarks.realistic_digits --model-repository model_repository "
        "--json benchmarks/results/realistic_digits.json",
    ),
    "experiments-simulation": Figures(
        "docs/experiments.md",
        ("benchmarks/results/experiments_simulation.json",),
        _one(simulation),
        "headstart experiments simulate --json benchmarks/results/experiments_simulation.json "
        "--svg docs/evidence/experiments_aa_peeking.svg",
    ),
}
"""Every block of figures the documentation quotes, by the name its markers give it."""


def blocks(text: str) -> dict[str, str]:
    """The figure blocks of a page's ``text``: name to what stands between its markers."""
    found: dict[str, str] = {}
    for match in _BLOCK.finditer(text):
        name = match["name"]
        if name in found:
            raise ValueError(f"figures:{name} is marked twice")
        found[name] = match["body"].strip("\n")
    return found


def problems(root: Path = ROOT) -> list[str]:
    """Every way the pages and the results files disagree, one line each."""
    found: list[str] = []
    pages = sorted({f.page for f in FIGURES.values()})
    for page in pages:
        marked = blocks((root / page).read_text(encoding="utf-8"))
        for name in sorted(set(marked) - set(FIGURES)):
            found.append(f"{page}: figures:{name} is not a block of benchmarks.docs_figures")
        for name, figures in FIGURES.items():
            if figures.page != page:
                continue
            if name not in marked:
                found.append(f"{page}: no <!-- figures:{name} --> block")
            elif marked[name] != figures.text(root):
                found.append(
                    f"{page}: figures:{name} differs from {', '.join(figures.sources)}: "
                    "python -m benchmarks.docs_figures --update writes them "
                    f"(the sources come from: {figures.regenerate})"
                )
    return found


def updated(text: str, page: str, root: Path = ROOT) -> str:
    """``text`` of ``page`` with every figure block rewritten from its results files."""

    def replace(match: re.Match[str]) -> str:
        figures = FIGURES.get(match["name"])
        if figures is None or figures.page != page:
            return match[0]
        return f"<!-- figures:{match['name']} -->\n\n{figures.text(root)}\n\n<!-- /figures -->"

    return _BLOCK.sub(replace, text)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.docs_figures",
        description="Check (or, with --update, rewrite) the documentation's figure blocks "
        "against the committed results files they come from.",
    )
    parser.add_argument("--update", action="store_true", help="rewrite the blocks in place")
    args = parser.parse_args(argv)
    if args.update:
        for page in sorted({f.page for f in FIGURES.values()}):
            path = ROOT / page
            text = path.read_text(encoding="utf-8")
            new = updated(text, page)
            if new != text:
                path.write_text(new, encoding="utf-8")
                print(f"updated {page}")
    wrong = problems()
    for line in wrong:
        print(line, file=sys.stderr)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
