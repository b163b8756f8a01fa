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

from benchmarks import loadgen, machine, report, scenarios, servers
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


def run(config: BenchConfig, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Measure everything, print the tables, and return the report as JSON-ready data."""
    try:
        return _run(config, echo)
    except servers.ServerFailed as exc:
        raise BenchError(str(exc)) from None


def _run(config: BenchConfig, echo: Callable[[str], None]) -> dict[str, Any]:
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

    info = machine.describe(loadgen.wrk_path() if tool == "wrk" else None)
    echo(
        f"machine: {info['cpu']}, {info['usable_cores']} usable cores, "
        f"load average {info['load_average_at_start'][0]:.2f} at start"
    )
    echo(f"model: {first.name} ({first.manifest.architecture.kind}), images: {images.source}")
    echo(f"load generator: {loadgen.describe(tool)}")
    echo(
        f"service: {settings.workers} workers x {settings.threads} threads, "
        f"{settings.ort_threads} ONNX Runtime thread(s) per session, batching "
        + (
            f"max {settings.batch_max_size} images, wait {settings.batch_max_wait_ms:g} ms"
            if settings.batch_max_size > 1
            else "off"
        )
    )

    echo("measuring ONNX Runtime in-process ...")
    reference = _reference(entries, decoded, settings, config.duration)
    refs_for = {
        "classify": "batch1",
        f"classify-batch{scenarios.BATCH}": "batch64",
        "embed": "batch1",
        "compare": "compare-batch1",
        "v2-infer-binary": "batch1",
        f"v2-infer-binary-batch{scenarios.BATCH}": "batch64",
    }

    rows: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="headstart-bench-") as scratch,
        servers.running(_servers(config, first, settings, names), Path(scratch)) as urls,
    ):
        echo("started " + ", ".join(f"{name} at {url}" for name, url in urls.items()))
        # Each worker loads its models after the fork; give the last ones time to finish.
        time.sleep(1.0)
        for name in names:
            scenario = every[name]
            taking_part = {
                stack_name: url
                for stack_name, url in urls.items()
                if stack_name != report.BATCHED or name in SINGLE_IMAGE
            }
            for stack_name, url in taking_part.items():
                request = _request(stack_name, scenario)
                loadgen.run_load(tool, url, request, max(config.concurrency), config.warmup)
            for concurrency in config.concurrency:
                # compare's target is a ratio to classify's median: measure classify in the
                # same rounds, so the two medians come from the same minutes of the machine.
                beside = every["classify"] if name == "compare" and concurrency == 1 else None
                rounds: dict[str, list[loadgen.LoadResult]] = {s: [] for s in taking_part}
                paired: dict[str, list[loadgen.LoadResult]] = {s: [] for s in taking_part}
                share = config.duration / config.rounds
                for _ in range(config.rounds):
                    for stack_name, url in taking_part.items():
                        request = _request(stack_name, scenario)
                        rounds[stack_name].append(
                            loadgen.run_load(tool, url, request, concurrency, share)
                        )
                        if beside is not None:
                            request = _request(stack_name, beside)
                            paired[stack_name].append(
                                loadgen.run_load(tool, url, request, concurrency, share)
                            )
                for stack_name, results in rounds.items():
                    rows.append(_row(stack_name, scenario, loadgen.combine(results)))
                    echo(_progress(rows[-1]))
                    if beside is not None:
                        row = _row(stack_name, beside, loadgen.combine(paired[stack_name]))
                        rows.append({**row, "beside": name})
                        echo(_progress(rows[-1]))
        if config.soak > 0 and "classify" in names:
            top = max(config.concurrency)
            echo(f"soak: classify at concurrency {top} for {config.soak:g} s ...")
            result = loadgen.run_load(
                tool, urls[report.HEADSTART], every["classify"].headstart, top, config.soak
            )
            rows.append({**_row(report.HEADSTART, every["classify"], result), "soak": True})
            echo(_progress(rows[-1]))

    measured = [r for r in rows if not r.get("soak") and not r.get("beside")]
    found_ratios = report.ratios(measured, reference, refs_for)
    found_targets = report.targets(rows, reference, f"classify-batch{scenarios.BATCH}")
    info["load_average_at_end"] = list(os.getloadavg())
    echo("")
    echo(report.reference_table(reference))
    echo("")
    echo(report.measured_table(rows))
    echo("")
    echo(report.ratio_table(found_ratios))
    if any(r["stack"] == report.BATCHED for r in rows):
        echo("")
        echo(report.batching_table(rows))
    echo("")
    echo(report.targets_table(found_targets))
    echo(f"load average at end: {info['load_average_at_end'][0]:.2f}")
    return {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": info,
        "load_generator": loadgen.describe(tool),
        "model": {
            "name": first.name,
            "architecture": first.manifest.architecture.model_dump(mode="json"),
            "repository": str(config.repository),
            "images": images.source,
        },
        "service_settings": settings.model_dump(mode="json"),
        "config": {
            "duration_s": config.duration,
            "rounds": config.rounds,
            "concurrency": list(config.concurrency),
            "scenarios": list(names),
            "soak_s": config.soak,
            "batching_compared": None
            if config.batching is None
            else {"max_size": config.batching.max_size, "max_wait_ms": config.batching.max_wait_ms},
        },
        "onnxruntime_in_process": reference,
        "results": rows,
        "ratios": found_ratios,
        "targets": [t.to_json() for t in found_targets],
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
    """headstart as configured, the minimal stack, and headstart with the compared batching."""

    local = {
        "HEADSTART_MODEL_REPOSITORY": str(config.repository.resolve()),
        "HEADSTART_HOST": "127.0.0.1",
        "HEADSTART_PORT": "0",
    }
    headstart = serve_command()
    minimal_env = {
        k: v
        for k, v in servers.environment({}).items()
        if not k.startswith("HEADSTART_")  # none of headstart's settings apply to it
    }
    found = {
        report.HEADSTART: servers.Server(headstart, servers.environment(local), "/health/ready"),
        report.MINIMAL: servers.Server(
            [
                *gunicorn(),
                "--worker-class=gthread",
                f"--workers={settings.workers}",
                f"--threads={settings.threads}",
                "--bind=127.0.0.1:0",
                "benchmarks.minimal_app:create_app()",
            ],
            {
                **minimal_env,
                "BENCH_MODEL_DIR": str(first.directory.parent.resolve()),
                "BENCH_ORT_THREADS": str(settings.ort_threads),
            },
            "/health",
        ),
    }
    if config.batching is not None and any(n in SINGLE_IMAGE for n in names):
        found[report.BATCHED] = servers.Server(
            headstart,
            servers.environment({**local, **config.batching.environment()}),
            "/health/ready",
        )
    return found


def _request(stack: str, scenario: scenarios.Scenario) -> loadgen.Request:
    return scenario.minimal if stack == report.MINIMAL else scenario.headstart


def _row(stack: str, scenario: scenarios.Scenario, result: loadgen.LoadResult) -> dict[str, Any]:
    return {
        "stack": stack,
        "scenario": scenario.name,
        "images_per_request": scenario.images,
        **result.to_json(),
        "images_per_s": result.requests_per_s * scenario.images,
    }


def _progress(row: dict[str, Any]) -> str:
    return (
        f"  {row['stack']:<20} {row['scenario']:<18} c={row['concurrency']:<3} "
        f"{row['requests_per_s']:8.0f} req/s  p50 {row['p50_ms']:7.2f} ms  "
        f"p99 {row['p99_ms']:7.2f} ms  failed {row['failures']}"
    )
