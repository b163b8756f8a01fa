"""``headstart bench`` runs end to end on a tiny model for a moment; its figures are not checked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import loadgen
from benchmarks.breakdown import breakdown, framing
from benchmarks.report import floors_table, targets
from benchmarks.servers import Server, environment, running
from scripts.cli import main
from service.server_command import gunicorn

SCENARIOS = {
    "classify",
    "classify-batch64",
    "embed",
    "compare",
    "v2-infer-binary",
    "v2-infer-binary-batch64",
}


def test_bench_measures_every_scenario_on_every_stack(
    repository: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench.json"
    code = main(
        [
            "bench",
            "--model-repository",
            str(repository),
            "--duration",
            "0.3",
            "--rounds",
            "1",
            "--concurrency",
            "1",
            "--soak",
            "0.3",
            "--loadgen",
            "python",
            "--out",
            str(out),
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "load generator: Python client" in printed
    report = json.loads(out.read_text())
    seen = {(r["stack"], r["scenario"]) for r in report["results"]}
    assert seen >= {("headstart", s) for s in SCENARIOS} | {("minimal", s) for s in SCENARIOS}
    assert {s for stack, s in seen if stack == "headstart+batching"} == {
        "classify",
        "v2-infer-binary",
    }
    assert {s for stack, s in seen if stack == "minimal+framing"} == {"classify"}
    assert [r for r in report["results"] if r.get("soak")], "the soak run is missing"
    # classify is measured again in compare's rounds, for compare's ratio target.
    beside = {(r["stack"], r["scenario"]) for r in report["results"] if r.get("beside")}
    assert beside == {("headstart", "classify"), ("minimal", "classify")}
    for row in report["results"]:
        assert row["requests"] > 0, row
        assert row["failures"] == 0, row
    assert set(report["onnxruntime_in_process"]) == {"batch1", "batch64", "compare-batch1"}
    assert {r["scenario"] for r in report["ratios"]} == SCENARIOS
    assert len(report["targets"]) == 7
    assert report["machine"]["usable_cores"] >= 1
    assert report["machine"]["versions"]["onnxruntime"] != "not installed"
    for heading in ("req/s vs minimal", "framed floor", "off req/s", "target"):
        assert heading in printed


def test_python_client_counts_failed_requests(repository: Path, tmp_path: Path) -> None:
    env = environment(
        {
            "HEADSTART_MODEL_REPOSITORY": str(repository),
            "HEADSTART_HOST": "127.0.0.1",
            "HEADSTART_PORT": "0",
            "HEADSTART_WORKERS": "1",
        }
    )
    command = [*gunicorn(), "--config", "python:service.gunicorn_conf", "service:create_app()"]
    with running({"headstart": Server(command, env, "/health/ready")}, tmp_path) as urls:
        bad = loadgen.Request("/v1/models/nope/classify", b"x", {"Content-Type": "image/png"})
        result = loadgen.run_load("python", urls["headstart"], bad, concurrency=1, duration=0.3)
    assert result.requests > 0
    assert result.failures == result.requests


def test_missing_repository_is_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", "--model-repository", str(tmp_path / "nope")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("headstart: error: model repository ")
    assert err.count("\n") == 1


def test_unknown_scenario_is_one_line_error(
    repository: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["bench", "--model-repository", str(repository), "--scenarios", "classify,nap"])
    assert code == 1
    err = capsys.readouterr().err
    assert "unknown scenario 'nap'" in err
    assert err.count("\n") == 1


def test_breakdown_times_every_stage_of_every_body_form(repository: Path) -> None:
    rows = breakdown(repository, seconds=0.05)
    forms = {row[0] for row in rows}
    assert forms == {"1 PNG, image/png", "64 PNGs, multipart", "64 PNGs, JSON base64"}
    assert len(rows) == 3 * 6
    assert all(float(row[2]) > 0 for row in rows)


def test_framing_is_timed_on_every_kind_of_picture() -> None:
    rows = framing(seconds=0.05, count=3)
    assert [row[0] for row in rows] == [
        "28x28 digit, ring flat",
        "28x28 digit, ink in the ring",
        "28x28 digit, JPEG",
        "28x28 digit, off centre",
        "800x600 photo, unevenly lit",
    ]
    assert all(int(row[1]) == 3 and float(row[2]) > 0 for row in rows)


def test_compare_target_uses_classify_from_the_same_rounds() -> None:
    def row(scenario: str, p50: float, beside: str | None = None) -> dict[str, object]:
        found: dict[str, object] = {
            "stack": "headstart",
            "scenario": scenario,
            "concurrency": 1,
            "p50_ms": p50,
            "requests_per_s": 1000.0,
            "failures": 0,
        }
        return found if beside is None else {**found, "beside": beside}

    rows = [row("classify", 0.5), row("compare", 1.2), row("classify", 1.0, beside="compare")]
    compare = [t for t in targets(rows, {}, "classify-batch64") if "compare" in t.name]
    assert compare[0].measured == pytest.approx(1.2)
    without = [r for r in rows if not r.get("beside")]
    compare = [t for t in targets(without, {}, "classify-batch64") if "compare" in t.name]
    assert compare[0].measured == pytest.approx(2.4)


def test_floor_targets_and_table_compare_headstart_with_the_floor() -> None:
    def row(stack: str, c: int, rate: float, p50: float, p99: float) -> dict[str, object]:
        return {
            "stack": stack,
            "scenario": "classify",
            "concurrency": c,
            "requests_per_s": rate,
            "p50_ms": p50,
            "p99_ms": p99,
            "failures": 0,
            "round_requests_per_s": [rate - 10, rate, rate + 10],
        }

    rows = [
        row("headstart", 8, 900.0, 4.0, 12.0),
        row("minimal+framing", 8, 950.0, 3.5, 9.0),
        row("minimal", 8, 1000.0, 3.0, 8.0),
        row("headstart", 1, 300.0, 1.5, 3.0),
        row("minimal", 1, 500.0, 1.0, 2.0),
    ]
    found = {t.name: t for t in targets(rows, {}, "classify-batch64") if "floor" in t.name}
    throughput = found["classify, concurrency 8: throughput / the floor's"]
    assert (throughput.measured, throughput.met) == (pytest.approx(0.9), True)
    p99 = found["classify, concurrency 8: p99 latency / the floor's"]
    assert (p99.measured, p99.met) == (pytest.approx(1.5), True)
    median = found["classify, concurrency 1: median latency / the floor's"]
    assert (median.measured, median.met) == (pytest.approx(1.5), False)
    lines = floors_table(rows).splitlines()
    assert [line.split()[0] for line in lines[2:]] == ["headstart", "framed", "floor"]
    assert "890 / 900 / 910" in lines[2]
    assert "0.90" in lines[2]
    assert lines[3].split()[-1] == "-"  # the framed floor was not run at concurrency 1
