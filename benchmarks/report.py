"""Turn measured rows into the ratio table and the target checks."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

HEADSTART = "headstart"
MINIMAL = "minimal"
FRAMED = "minimal+framing"
BATCHED = "headstart+batching"
FLOORS = (HEADSTART, FRAMED, MINIMAL)
"""The stacks of the floors table: headstart, the floor calling the service's framing, the floor."""


@dataclass(frozen=True)
class Target:
    """One of the service's speed targets and whether this run met it."""

    name: str
    measured: float | None
    limit: float
    unit: str
    at_most: bool
    """The limit is a ceiling (latency, cost, failures); else a floor (throughput)."""

    @property
    def met(self) -> bool | None:
        """``None`` when the run did not measure what the target needs."""
        if self.measured is None:
            return None
        return self.measured <= self.limit if self.at_most else self.measured >= self.limit

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.name,
            "measured": self.measured,
            "limit": self.limit,
            "unit": self.unit,
            "at_most": self.at_most,
            "met": self.met,
        }


def _find(
    rows: Sequence[dict[str, Any]], stack: str, scenario: str, c: int, beside: str | None = None
) -> dict[str, Any] | None:
    """The row of ``scenario`` run on its own, or in the rounds of the ``beside`` scenario."""
    for row in rows:
        key = (row["stack"], row["scenario"], row["concurrency"], row.get("beside"))
        if key == (stack, scenario, c, beside):
            return row
    return None


def _get(row: dict[str, Any] | None, key: str) -> float | None:
    return None if row is None else float(row[key])


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0 or math.isnan(a) or math.isnan(b):
        return None
    return a / b


def ratios(
    rows: Sequence[dict[str, Any]], reference: dict[str, dict[str, Any]], refs_for: dict[str, str]
) -> list[dict[str, Any]]:
    """Per scenario and concurrency: headstart over the minimal stack and over ONNX Runtime."""
    out = []
    for row in rows:
        if row["stack"] != HEADSTART:
            continue
        floor = _find(rows, MINIMAL, row["scenario"], row["concurrency"])
        ort = reference.get(refs_for[row["scenario"]])
        out.append(
            {
                "scenario": row["scenario"],
                "concurrency": row["concurrency"],
                "throughput_vs_minimal": _ratio(
                    row["requests_per_s"], _get(floor, "requests_per_s")
                ),
                "p50_vs_minimal": _ratio(row["p50_ms"], _get(floor, "p50_ms")),
                "images_per_s_vs_onnxruntime": _ratio(
                    row["images_per_s"], _get(ort, "images_per_s")
                ),
                "p50_vs_onnxruntime": _ratio(row["p50_ms"], _get(ort, "p50_ms")),
            }
        )
    return out


def targets(
    rows: Sequence[dict[str, Any]], reference: dict[str, dict[str, Any]], batch_scenario: str
) -> list[Target]:
    """The four targets, checked on this run's figures."""

    def value(stack: str, scenario: str, c: int, key: str) -> float | None:
        row = _find(rows, stack, scenario, c)
        return None if row is None else float(row[key])

    found: list[Target] = []
    p50 = value(HEADSTART, "classify", 1, "p50_ms")
    found.append(Target("classify, 1 image, concurrency 1: median latency", p50, 1.5, "ms", True))
    for name, key, c, limit, at_most in (
        ("throughput", "requests_per_s", 8, 0.9, False),
        ("p99 latency", "p99_ms", 8, 2.0, True),
        ("median latency", "p50_ms", 1, 1.2, True),
    ):
        share = _ratio(value(HEADSTART, "classify", c, key), value(MINIMAL, "classify", c, key))
        found.append(
            Target(f"classify, concurrency {c}: {name} / the floor's", share, limit, "x", at_most)
        )
    batch = value(HEADSTART, batch_scenario, 1, "p50_ms")
    ort = reference.get("batch64")
    per_image = None if batch is None or ort is None else batch / ort["batch"]
    cost = _ratio(per_image, _get(ort, "per_image_ms"))
    found.append(
        Target(
            f"{batch_scenario}, concurrency 1: cost per image / ONNX Runtime's at batch 64",
            cost,
            2.0,
            "x",
            True,
        )
    )
    # Against classify measured in the same rounds as compare, when the run did that.
    paired = _find(rows, HEADSTART, "classify", 1, beside="compare")
    classify_p50 = p50 if paired is None else float(paired["p50_ms"])
    compare = _ratio(value(HEADSTART, "compare", 1, "p50_ms"), classify_p50)
    found.append(
        Target(
            "compare, concurrency 1: median / classify's (measured in the same rounds)",
            compare,
            1.5,
            "x",
            True,
        )
    )
    at_32 = [r for r in rows if r["concurrency"] == 32 and r["stack"] != MINIMAL]
    failed = float(sum(r["failures"] for r in at_32)) if at_32 else None
    found.append(
        Target(
            "failed requests at concurrency 32 (every run, the soak included)",
            failed,
            0,
            "requests",
            True,
        )
    )
    return found


def _fmt(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def table(headers: Sequence[str], lines: Sequence[Sequence[str]]) -> str:
    """A plain text table, columns right-aligned except the first."""
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(headers)]

    def render(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join([render(headers), render(["-" * w for w in widths]), *map(render, lines)])


def measured_table(rows: Sequence[dict[str, Any]]) -> str:
    """Every load run: throughput, latency percentiles and failures."""
    headers = ["stack / scenario", "conc", "req/s", "img/s", "p50 ms", "p90 ms", "p99 ms", "failed"]
    lines = [
        [
            f"{r['stack']} / {r['scenario']}"
            + (f" (soak, {r['duration_s']:.0f} s)" if r.get("soak") else "")
            + (f" (beside {r['beside']})" if r.get("beside") else ""),
            str(r["concurrency"]),
            _fmt(r["requests_per_s"], 0),
            _fmt(r["images_per_s"], 0),
            _fmt(r["p50_ms"]),
            _fmt(r["p90_ms"]),
            _fmt(r["p99_ms"]),
            str(r["failures"]),
        ]
        for r in rows
    ]
    return table(headers, lines)


def reference_table(reference: dict[str, dict[str, Any]]) -> str:
    """ONNX Runtime in-process: latency of one call and throughput of ``parallel`` callers."""
    headers = [
        "onnxruntime in-process",
        "batch",
        "p50 ms",
        "p99 ms",
        "ms/image",
        "threads",
        "img/s",
    ]
    lines = [
        [
            name,
            str(r["batch"]),
            _fmt(r["p50_ms"], 3),
            _fmt(r["p99_ms"], 3),
            _fmt(r["per_image_ms"], 3),
            str(r["parallel"]),
            _fmt(r["images_per_s"], 0),
        ]
        for name, r in reference.items()
    ]
    return table(headers, lines)


def ratio_table(found: Sequence[dict[str, Any]]) -> str:
    """headstart divided by each reference (throughput: higher is better; latency: lower)."""
    headers = [
        "scenario",
        "conc",
        "req/s vs minimal",
        "p50 vs minimal",
        "img/s vs ORT",
        "p50 vs ORT",
    ]
    lines = [
        [
            r["scenario"],
            str(r["concurrency"]),
            _fmt(r["throughput_vs_minimal"]),
            _fmt(r["p50_vs_minimal"]),
            _fmt(r["images_per_s_vs_onnxruntime"]),
            _fmt(r["p50_vs_onnxruntime"]),
        ]
        for r in found
    ]
    return table(headers, lines)


def floors_table(rows: Sequence[dict[str, Any]]) -> str:
    """classify of one digit PNG on headstart and on the floors, measured in the same rounds:
    throughput at concurrency 8 (median, and each round), its p99, and the median at 1."""
    headers = ["classify", "c=8 req/s", "rounds", "vs floor", "c=8 p99 ms", "c=1 p50 ms"]
    floor8 = _find(rows, MINIMAL, "classify", 8)
    lines = []
    for stack in FLOORS:
        at8, at1 = _find(rows, stack, "classify", 8), _find(rows, stack, "classify", 1)
        if at8 is None and at1 is None:
            continue
        each = [] if at8 is None else at8.get("round_requests_per_s", [])
        lines.append(
            [
                "floor" if stack == MINIMAL else "framed floor" if stack == FRAMED else stack,
                _fmt(_get(at8, "requests_per_s"), 0),
                " / ".join(f"{v:.0f}" for v in each) or "-",
                _fmt(_ratio(_get(at8, "requests_per_s"), _get(floor8, "requests_per_s"))),
                _fmt(_get(at8, "p99_ms")),
                _fmt(_get(at1, "p50_ms")),
            ]
        )
    return table(headers, lines)


def batching_table(rows: Sequence[dict[str, Any]]) -> str:
    """Throughput and p99 with batching off and on, for the scenarios run both ways."""
    headers = ["scenario", "conc", "off req/s", "on req/s", "off p99 ms", "on p99 ms", "winner"]
    lines = []
    for on in rows:
        if on["stack"] != BATCHED:
            continue
        off = _find(rows, HEADSTART, on["scenario"], on["concurrency"])
        if off is None:
            continue
        faster = on["requests_per_s"] > off["requests_per_s"]
        tighter = on["p99_ms"] <= off["p99_ms"]
        winner = "on" if faster and tighter else "off" if not faster and not tighter else "mixed"
        lines.append(
            [
                on["scenario"],
                str(on["concurrency"]),
                _fmt(off["requests_per_s"], 0),
                _fmt(on["requests_per_s"], 0),
                _fmt(off["p99_ms"]),
                _fmt(on["p99_ms"]),
                winner,
            ]
        )
    return table(headers, lines)


def targets_table(found: Sequence[Target]) -> str:
    """Each target: measured value, limit, met or not."""
    lines = [
        [
            t.name,
            _fmt(t.measured),
            f"{'<=' if t.at_most else '>='} {t.limit:g} {t.unit}",
            {True: "met", False: "MISSED", None: "not measured"}[t.met],
        ]
        for t in found
    ]
    return table(["target", "measured", "limit", "result"], lines)
