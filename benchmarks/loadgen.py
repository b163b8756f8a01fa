"""Drive one endpoint with closed-loop load: wrk when it is installed, else a Python client.

Both keep ``concurrency`` keep-alive connections busy for ``duration`` seconds,
each sending the next request as soon as the last answer arrives, and report
the latency distribution and every failed request (a connection or read
error, a timeout, or a status other than 2xx).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

Tool = Literal["wrk", "python"]

TIMEOUT_S = 10.0
"""A request unanswered for this long counts as failed."""


@dataclass(frozen=True)
class Request:
    """One HTTP POST, sent again and again."""

    path: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LoadResult:
    """What one load run measured, or the median of several rounds; latencies in milliseconds."""

    concurrency: int
    requests: int
    failures: int
    duration_s: float
    requests_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    rounds: int = 1

    def to_json(self) -> dict[str, float | int]:
        return asdict(self)


def combine(rounds: Sequence[LoadResult]) -> LoadResult:
    """Rounds of the same load as one result: counts summed, rates and latencies their median.

    The median of short rounds taken in turn with the other servers' rounds
    keeps a burst of unrelated work on a shared machine from deciding a ratio.
    """
    if len(rounds) == 1:
        return rounds[0]

    def median(name: str) -> float:
        return float(np.median([getattr(r, name) for r in rounds]))

    return LoadResult(
        concurrency=rounds[0].concurrency,
        requests=sum(r.requests for r in rounds),
        failures=sum(r.failures for r in rounds),
        duration_s=sum(r.duration_s for r in rounds),
        requests_per_s=median("requests_per_s"),
        p50_ms=median("p50_ms"),
        p90_ms=median("p90_ms"),
        p99_ms=median("p99_ms"),
        mean_ms=median("mean_ms"),
        rounds=len(rounds),
    )


def wrk_path() -> str | None:
    """The wrk executable on ``PATH``, if any."""
    return shutil.which("wrk")


def pick_tool(wanted: Literal["auto", "wrk", "python"]) -> Tool:
    """``wrk`` when asked for or installed, else the Python client."""
    if wanted == "python":
        return "python"
    if wrk_path() is not None:
        return "wrk"
    if wanted == "wrk":
        raise FileNotFoundError("wrk is not installed (apt-get install wrk), use --loadgen python")
    return "python"


def describe(tool: Tool) -> str:
    """One line naming the load generator, for the report."""
    if tool == "wrk":
        path = wrk_path() or "wrk"
        version = subprocess.run([path, "-v"], capture_output=True, text=True, check=False)
        first = (version.stdout or version.stderr).strip().splitlines()
        return f"wrk ({first[0] if first else path})"
    return (
        "Python client (http.client keep-alive, one process per core, threads per connection); "
        "wrk is not used, so the client measures itself and its own CPU time competes with "
        "the server's"
    )


def run_load(
    tool: Tool, base_url: str, request: Request, concurrency: int, duration: float
) -> LoadResult:
    """Keep ``concurrency`` connections busy with ``request`` for ``duration`` seconds."""
    if tool == "wrk":
        return _run_wrk(base_url, request, concurrency, duration)
    return _run_python(base_url, request, concurrency, duration)


# wrk needs Lua for a POST body; the body and headers come from files and the environment.
_WRK_SCRIPT = r"""
local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
local h = assert(io.open(os.getenv("BENCH_HEADERS"), "r"))
for line in h:lines() do
  local name, value = line:match("^([^:]+): (.*)$")
  if name then wrk.headers[name] = value end
end
h:close()

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH_RESULT %d %d %d %d %d %d %d %d %d %d %.3f\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean))
end
"""
_WRK_RESULT = re.compile(r"^BENCH_RESULT ((?:[\d.]+ ?){11})$", re.MULTILINE)


def _run_wrk(base_url: str, request: Request, concurrency: int, duration: float) -> LoadResult:
    path = wrk_path()
    if path is None:
        raise FileNotFoundError("wrk is not installed")
    with tempfile.TemporaryDirectory(prefix="headstart-wrk-") as scratch:
        work = Path(scratch)
        (work / "post.lua").write_text(_WRK_SCRIPT)
        (work / "body").write_bytes(request.body)
        (work / "headers").write_text("".join(f"{k}: {v}\n" for k, v in request.headers.items()))
        env = {
            **os.environ,
            "BENCH_BODY": str(work / "body"),
            "BENCH_HEADERS": str(work / "headers"),
        }
        threads = max(1, min(concurrency, os.cpu_count() or 1))
        command = [
            path,
            f"-t{threads}",
            f"-c{concurrency}",
            f"-d{max(1, math.ceil(duration))}s",  # wrk takes whole seconds
            f"--timeout={TIMEOUT_S:.0f}s",
            "-s",
            str(work / "post.lua"),
            base_url + request.path,
        ]
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    match = _WRK_RESULT.search(done.stdout)
    if done.returncode != 0 or match is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout}{done.stderr}")
    values = [float(v) for v in match.group(1).split()]
    requests, duration_us, *errors = (int(v) for v in values[:7])
    p50, p90, p99, mean = values[7:]
    return LoadResult(
        concurrency=concurrency,
        requests=requests,
        failures=sum(errors),
        duration_s=duration_us / 1e6,
        requests_per_s=requests / (duration_us / 1e6) if duration_us else 0.0,
        p50_ms=p50 / 1000,
        p90_ms=p90 / 1000,
        p99_ms=p99 / 1000,
        mean_ms=mean / 1000,
    )


def _run_python(base_url: str, request: Request, concurrency: int, duration: float) -> LoadResult:
    """Split the connections over one client process per core; start them together."""
    with tempfile.TemporaryDirectory(prefix="headstart-pyload-") as scratch:
        body = Path(scratch) / "body"
        body.write_bytes(request.body)
        spec = {
            "url": base_url + request.path,
            "headers": request.headers,
            "body": str(body),
            "timeout": TIMEOUT_S,
        }
        return run_clients("benchmarks.pyclient", spec, concurrency, duration)


def run_grpc(address: str, message: bytes, concurrency: int, duration: float) -> LoadResult:
    """Keep ``concurrency`` gRPC channels (one connection each) busy with ``ModelInfer``
    carrying the serialized request ``message``; the Python client's process layout."""
    with tempfile.TemporaryDirectory(prefix="headstart-grpcload-") as scratch:
        body = Path(scratch) / "body"
        body.write_bytes(message)
        spec = {"address": address, "body": str(body), "timeout": TIMEOUT_S}
        return run_clients("benchmarks.grpcclient", spec, concurrency, duration)


def run_clients(
    module: str, spec: dict[str, object], concurrency: int, duration: float
) -> LoadResult:
    """Run ``python -m module SPEC`` client processes, one per core, with ``concurrency``
    connections among them; start them together and merge their reports."""
    processes = max(1, min(concurrency, os.cpu_count() or 1))
    shares = [concurrency // processes + (i < concurrency % processes) for i in range(processes)]
    clients = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                module,
                json.dumps({**spec, "duration": duration, "threads": n}),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[1],
        )
        for n in shares
    ]
    try:
        for client in clients:  # each says "ready" once its connections are open
            assert client.stdout is not None
            client.stdout.readline()
        for client in clients:
            assert client.stdin is not None
            client.stdin.write("go\n")
            client.stdin.flush()
        outputs = [
            client.communicate(timeout=duration + 2 * TIMEOUT_S + 30)[0] for client in clients
        ]
    finally:
        for client in clients:
            if client.poll() is None:
                client.kill()
                client.wait()
    reports = [json.loads(out) for out in outputs]
    latencies = np.concatenate([np.asarray(r["latencies"], dtype=np.float64) for r in reports])
    return _summarise(
        concurrency,
        latencies,
        failures=sum(int(r["failures"]) for r in reports),
        duration_s=max(float(r["elapsed"]) for r in reports),
    )


def _summarise(
    concurrency: int, latencies_s: Sequence[float] | np.ndarray, *, failures: int, duration_s: float
) -> LoadResult:
    values = np.asarray(latencies_s, dtype=np.float64) * 1000.0
    if values.size == 0:
        p50 = p90 = p99 = mean = math.nan
    else:
        p50, p90, p99 = (float(v) for v in np.percentile(values, [50, 90, 99]))
        mean = float(values.mean())
    requests = int(values.size) + failures
    return LoadResult(
        concurrency=concurrency,
        requests=requests,
        failures=failures,
        duration_s=duration_s,
        requests_per_s=requests / duration_s if duration_s > 0 else 0.0,
        p50_ms=p50,
        p90_ms=p90,
        p99_ms=p99,
        mean_ms=mean,
    )
