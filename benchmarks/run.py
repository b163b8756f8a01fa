"""Run the benchmark: ONNX Runtime alone, then the same load on headstart and the minimal stack.

Every server runs for the whole measurement and the stacks take turns at each
scenario and concurrency, so a machine whose load drifts during the run skews
them alike.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from benchmarks import loadgen, machine, report, scenarios, servers, workers
from benchmarks.reference import measure
from service.decode import DecodeOptions, decode_batch
from service.repository import ModelEntry, scan_repository
from service.runtime import create_session
from service.server_command import gunicorn, serve_command
from service.settings import Settings

SINGLE_IMAGE = ("classify", "v2-infer-binary")
"""Scenarios that dynamic batching can merge, measured with it off and on."""


class BenchError(Exception):
    """The benchmark cannot run as asked; the message says why."""


@dataclass(frozen=True)
class Batching:
    """Dynamic batching settings for the batching comparison."""

    max_size: int
    max_wait_ms: float

    def environment(self) -> dict[str, str]:
        return {
            "HEADSTART_BATCH_MAX_SIZE": str(self.max_size),
            "HEADSTART_BATCH_MAX_WAIT_MS": f"{self.max_wait_ms:g}",
        }


@dataclass(frozen=True)
class BenchConfig:
    """What to measure, and for how long."""

    repository: Path
    model: str | None = None
    duration: float = 10.0
    """Seconds of load per scenario, concurrency and server, split into ``rounds``."""
    rounds: int = 5
    """The servers take turns this many times at each point; the report takes the median."""
    concurrency: tuple[int, ...] = (1, 8, 32)
    scenarios: tuple[str, ...] | None = None
    """Scenario names to run; ``None`` runs them all."""
    loadgen: Literal["auto", "wrk", "python"] = "auto"
    soak: float = 30.0
    """Seconds of single-image classify at the highest concurrency, counting failures; 0 skips."""
    batching: Batching | None = Batching(max_size=8, max_wait_ms=0.0)
    """Batching to compare with the service as configured; ``None`` skips the comparison."""
    warmup: float = 1.0


REFERENCE_FOR = {
    "classify": "batch1",
    f"classify-batch{scenarios.BATCH}": "batch64",
    "embed": "batch1",
    "compare": "compare-batch1",
    "v2-infer-binary": "batch1",
    f"v2-infer-binary-batch{scenarios.BATCH}": "batch64",
}
"""The in-process ONNX Runtime measurement each scenario's ratio is taken against."""


@dataclass(frozen=True)
class _Setup:
    """What every step of a run shares: the settings, the model, the images, the scenarios."""

    settings: Settings
    names: tuple[str, ...]
    entries: dict[str, ModelEntry]
    tool: loadgen.Tool
    images: scenarios.Images
    decoded: NDArray[np.uint8]
    every: dict[str, scenarios.Scenario]

    @property
    def first(self) -> ModelEntry:
        return self.entries["pretrained"]


def run(config: BenchConfig, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Measure everything, print the tables, and return the report as JSON-ready data."""
    try:
        return _run(config, echo)
    except servers.ServerFailed as exc:
        raise BenchError(str(exc)) from None


def _run(config: BenchConfig, echo: Callable[[str], None]) -> dict[str, Any]:
    setup = _setup(config)
    info = _describe(setup, echo)
    echo("measuring ONNX Runtime in-process ...")
    reference = _reference(setup.entries, setup.decoded, setup.settings, config.duration)
    rows = _measure_servers(config, setup, echo)
    measured = [r for r in rows if not r.get("soak") and not r.get("beside")]
    found_ratios = report.ratios(measured, reference, REFERENCE_FOR)
    found_targets = report.targets(rows, reference, f"classify-batch{scenarios.BATCH}")
    info["load_average_at_end"] = list(os.getloadavg())
    _print_tables(rows, reference, found_ratios, found_targets, echo)
    echo(f"load average at end: {info['load_average_at_end'][0]:.2f}")
    return {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": info,
        "load_generator": loadgen.describe(setup.tool),
        "model": {
            "name": setup.first.name,
            "architecture": setup.first.manifest.architecture.model_dump(mode="json"),
            "repository": str(config.repository),
            "images": setup.images.source,
        },
        "service_settings": setup.settings.model_dump(mode="json"),
        "config": _config_json(config, setup.names),
        "onnxruntime_in_process": reference,
        "results": rows,
        "ratios": found_ratios,
        "targets": [t.to_json() for t in found_targets],
    }


def _setup(config: BenchConfig) -> _Setup:
    """Check what was asked for against the repository and build the scenarios' requests."""
    settings = Settings()
    names = config.scenarios or scenarios.NAMES
    unknown = [n for n in names if n not in scenarios.NAMES]
    if unknown:
        raise BenchError(f"unknown scenario {unknown[0]!r} (known: {', '.join(scenarios.NAMES)})")
    entries = _model(config.repository, config.model)
    first = entries["pretrained"]
    if "compare" in names and "baseline" not in entries:
        raise BenchError(f"model {first.name!r} has no baseline variant to compare with")
    try:
        tool = loadgen.pick_tool(config.loadgen)
    except FileNotFoundError as exc:
        raise BenchError(str(exc)) from None
    spec = first.manifest.input
    images = scenarios.load_images(spec)
    decoded = decode_batch(images.png, spec, DecodeOptions())
    every = scenarios.build(first.name, images, decoded)
    return _Setup(settings, names, entries, tool, images, decoded, every)


def _describe(setup: _Setup, echo: Callable[[str], None]) -> dict[str, Any]:
    """Say what is measured on what, and return the machine's description."""
    settings = setup.settings
    info = machine.describe(loadgen.wrk_path() if setup.tool == "wrk" else None)
    echo(
        f"machine: {info['cpu']}, {info['usable_cores']} usable cores, "
        f"load average {info['load_average_at_start'][0]:.2f} at start"
    )
    echo(
        f"model: {setup.first.name} ({setup.first.manifest.architecture.kind}), "
        f"images: {setup.images.source}"
    )
    echo(f"load generator: {loadgen.describe(setup.tool)}")
    echo(
        f"service: {settings.workers} workers x {settings.threads} threads, "
        f"{settings.ort_threads} ONNX Runtime thread(s) per session, batching "
        + (
            f"max {settings.batch_max_size} images, wait {settings.batch_max_wait_ms:g} ms"
            if settings.batch_max_size > 1
            else "off"
        )
    )
    return info


def _measure_servers(
    config: BenchConfig, setup: _Setup, echo: Callable[[str], None]
) -> list[dict[str, Any]]:
    """Start every stack, take turns at each scenario and concurrency, then soak."""
    rows: list[dict[str, Any]] = []
    stacks = _servers(config, setup.first, setup.settings, setup.names)
    with (
        tempfile.TemporaryDirectory(prefix="headstart-bench-") as scratch,
        servers.running(stacks, Path(scratch)) as urls,
    ):
        echo("started " + ", ".join(f"{name} at {url}" for name, url in urls.items()))
        # Each worker loads its models after the fork; give the last ones time to finish.
        time.sleep(1.0)
        for name in setup.names:
            taking_part = {
                stack: url
                for stack, url in urls.items()
                if (stack != report.BATCHED or name in SINGLE_IMAGE)
                and (stack != report.FRAMED or name == "classify")
            }
            access_log = Path(scratch) / f"{report.HEADSTART}.log"
            _measure_scenario(config, setup, name, taking_part, access_log, rows, echo)
        if config.soak > 0 and "classify" in setup.names:
            rows.append(_soak(config, setup, urls[report.HEADSTART], echo))
    return rows


def _measure_scenario(
    config: BenchConfig,
    setup: _Setup,
    name: str,
    taking_part: dict[str, str],
    access_log: Path,
    rows: list[dict[str, Any]],
    echo: Callable[[str], None],
) -> None:
    """Warm every stack up on scenario ``name``, then measure it at each concurrency.

    headstart's rows also say how many requests each of its workers served (from
    ``access_log``), so an imbalance shows next to the throughput it explains.
    """
    scenario = setup.every[name]
    for stack, url in taking_part.items():
        request = _request(stack, scenario)
        loadgen.run_load(setup.tool, url, request, max(config.concurrency), config.warmup)
    for concurrency in config.concurrency:
        # compare's target is a ratio to classify's median: measure classify in the
        # same rounds, so the two medians come from the same minutes of the machine.
        beside = setup.every["classify"] if name == "compare" and concurrency == 1 else None
        served_before = workers.served_by(access_log)
        rounds, paired = _rounds(config, setup.tool, taking_part, scenario, beside, concurrency)
        for stack, results in rounds.items():
            rows.append(_row(stack, scenario, loadgen.combine(results)))
            rows[-1]["round_requests_per_s"] = [r.requests_per_s for r in results]
            if stack == report.HEADSTART:
                rows[-1]["per_worker"] = workers.share(served_before, workers.served_by(access_log))
            echo(_progress(rows[-1]))
            if beside is not None:
                row = _row(stack, beside, loadgen.combine(paired[stack]))
                rows.append({**row, "beside": name})
                echo(_progress(rows[-1]))


def _rounds(
    config: BenchConfig,
    tool: loadgen.Tool,
    taking_part: dict[str, str],
    scenario: scenarios.Scenario,
    beside: scenarios.Scenario | None,
    concurrency: int,
) -> tuple[dict[str, list[loadgen.LoadResult]], dict[str, list[loadgen.LoadResult]]]:
    """The stacks take turns ``config.rounds`` times; each turn runs ``beside`` too, if any."""
    rounds: dict[str, list[loadgen.LoadResult]] = {s: [] for s in taking_part}
    paired: dict[str, list[loadgen.LoadResult]] = {s: [] for s in taking_part}
    share = config.duration / config.rounds
    for _ in range(config.rounds):
        for stack, url in taking_part.items():
            request = _request(stack, scenario)
            rounds[stack].append(loadgen.run_load(tool, url, request, concurrency, share))
            if beside is not None:
                request = _request(stack, beside)
                paired[stack].append(loadgen.run_load(tool, url, request, concurrency, share))
    return rounds, paired


def _soak(
    config: BenchConfig, setup: _Setup, url: str, echo: Callable[[str], None]
) -> dict[str, Any]:
    """Single-image classify on headstart at the highest concurrency, counting failures."""
    top = max(config.concurrency)
    echo(f"soak: classify at concurrency {top} for {config.soak:g} s ...")
    classify = setup.every["classify"]
    result = loadgen.run_load(setup.tool, url, classify.headstart, top, config.soak)
    row = {**_row(report.HEADSTART, classify, result), "soak": True}
    echo(_progress(row))
    return row


def _print_tables(
    rows: list[dict[str, Any]],
    reference: dict[str, dict[str, Any]],
    found_ratios: list[dict[str, Any]],
    found_targets: list[report.Target],
    echo: Callable[[str], None],
) -> None:
    echo("")
    echo(report.reference_table(reference))
    echo("")
    echo(report.measured_table(rows))
    echo("")
    echo(report.floors_table(rows))
    echo("")
    echo(report.ratio_table(found_ratios))
    if any(r["stack"] == report.BATCHED for r in rows):
        echo("")
        echo(report.batching_table(rows))
    echo("")
    echo(report.targets_table(found_targets))


def _config_json(config: BenchConfig, names: tuple[str, ...]) -> dict[str, Any]:
    return {
        "duration_s": config.duration,
        "rounds": config.rounds,
        "concurrency": list(config.concurrency),
        "scenarios": list(names),
        "soak_s": config.soak,
        "batching_compared": None
        if config.batching is None
        else {"max_size": config.batching.max_size, "max_wait_ms": config.batching.max_wait_ms},
    }


def write(result: dict[str, Any], path: Path) -> None:
    """Write the report as indented JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")


def _model(repository: Path, wanted: str | None) -> dict[str, ModelEntry]:
    listing = scan_repository(repository)
    models = listing.models()
    if not models:
        problems = "; ".join(str(p) for p in listing.problems) or "it holds no model"
        raise BenchError(f"no usable model in {repository}: {problems}")
    name = wanted or min(models)
    if name not in models:
        raise BenchError(f"no model {name!r} in {repository} (found: {', '.join(sorted(models))})")
    if "pretrained" not in models[name]:
        raise BenchError(f"model {name!r} in {repository} has no pretrained variant")
    return models[name]


def _reference(
    entries: dict[str, ModelEntry], decoded: Any, settings: Settings, duration: float
) -> dict[str, dict[str, Any]]:
    """``session.run`` on the decoded images, sessions made exactly as the service makes them."""
    pretrained = create_session(entries["pretrained"].onnx_path, settings.ort_threads)
    found = {
        "batch1": measure([pretrained], decoded, 1, duration=duration, parallel=settings.workers),
        f"batch{scenarios.BATCH}": measure(
            [pretrained], decoded, scenarios.BATCH, duration=duration, parallel=settings.workers
        ),
    }
    if "baseline" in entries:
        baseline = create_session(entries["baseline"].onnx_path, settings.ort_threads)
        found["compare-batch1"] = measure(
            [pretrained, baseline], decoded, 1, duration=duration, parallel=settings.workers
        )
    return {name: result.to_json() for name, result in found.items()}


def _servers(
    config: BenchConfig, first: ModelEntry, settings: Settings, names: tuple[str, ...]
) -> dict[str, servers.Server]:
    """headstart as configured, the floor (the minimal stack) with and without the service's
    framing, and headstart with the compared batching."""

    local = {
        "HEADSTART_MODEL_REPOSITORY": str(config.repository.resolve()),
        "HEADSTART_HOST": "127.0.0.1",
        "HEADSTART_PORT": "0",
    }
    headstart = serve_command()
    minimal = [
        *gunicorn(),
        "--worker-class=gthread",
        f"--workers={settings.workers}",
        f"--threads={settings.threads}",
        "--bind=127.0.0.1:0",
        "benchmarks.minimal_app:create_app()",
    ]
    minimal_env = {
        **{
            k: v
            for k, v in servers.environment({}).items()
            if not k.startswith("HEADSTART_")  # none of headstart's settings apply to it
        },
        "BENCH_MODEL_DIR": str(first.directory.parent.resolve()),
        "BENCH_ORT_THREADS": str(settings.ort_threads),
    }
    found = {
        report.HEADSTART: servers.Server(headstart, servers.environment(local), "/health/ready"),
        report.MINIMAL: servers.Server(minimal, minimal_env, "/health"),
    }
    if "classify" in names:
        framed_env = {**minimal_env, "BENCH_FRAMING": "1"}
        found[report.FRAMED] = servers.Server(minimal, framed_env, "/health")
    if config.batching is not None and any(n in SINGLE_IMAGE for n in names):
        found[report.BATCHED] = servers.Server(
            headstart,
            servers.environment({**local, **config.batching.environment()}),
            "/health/ready",
        )
    return found


def _request(stack: str, scenario: scenarios.Scenario) -> loadgen.Request:
    return scenario.minimal if stack in (report.MINIMAL, report.FRAMED) else scenario.headstart


def _row(stack: str, scenario: scenarios.Scenario, result: loadgen.LoadResult) -> dict[str, Any]:
    return {
        "stack": stack,
        "scenario": scenario.name,
        "images_per_request": scenario.images,
        **result.to_json(),
        "images_per_s": result.requests_per_s * scenario.images,
    }


def _progress(row: dict[str, Any]) -> str:
    per_worker = row.get("per_worker")
    return (
        f"  {row['stack']:<20} {row['scenario']:<18} c={row['concurrency']:<3} "
        f"{row['requests_per_s']:8.0f} req/s  p50 {row['p50_ms']:7.2f} ms  "
        f"p99 {row['p99_ms']:7.2f} ms  failed {row['failures']}"
        + (f"  per worker {' / '.join(map(str, per_worker.values()))}" if per_worker else "")
    )
