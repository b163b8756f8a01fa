"""The Open Inference Protocol over gRPC against V2 REST with binary tensors.

One gunicorn server (the production command and settings) answers the same single-image
inference both ways, in alternating rounds at each concurrency, so the two are compared
under the same load: REST sends the JSON header and the raw tensor
(``Inference-Header-Content-Length``) and asks for binary probabilities; gRPC sends the
tensor in ``raw_input_contents`` and gets ``raw_output_contents``. Both clients are Python
processes of the same layout, one connection per concurrent request.
"""

from __future__ import annotations

import re
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from benchmarks import loadgen, scenarios, servers
from benchmarks.run import BenchError, _model
from service.decode import DecodeOptions, decode_batch
from service.grpc.generated import grpc_service_pb2 as pb
from service.server_command import serve_command

_GRPC_AT = re.compile(r"gRPC at: (\S+)")


def run(
    repository: Path,
    model: str | None = None,
    *,
    duration: float = 10.0,
    rounds: int = 5,
    concurrency: tuple[int, ...] = (1, 8),
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Measure both protocols at every concurrency; the report holds each one's median round."""
    entries = _model(repository, model)
    first = entries["pretrained"]
    images = scenarios.load_images(first.manifest.input, 1)
    pixels = decode_batch(images.png, first.manifest.input, DecodeOptions())
    name = f"{first.name}-pretrained"
    body, header = scenarios.v2_binary(pixels)
    rest = loadgen.Request(
        f"/v2/models/{name}/infer",
        body,
        {
            "Content-Type": "application/octet-stream",
            "Inference-Header-Content-Length": str(header),
        },
    )
    message = _grpc_request(name, pixels.tobytes(), list(pixels.shape))
    with tempfile.TemporaryDirectory(prefix="headstart-bench-grpc-") as scratch:
        env = servers.environment(
            {
                "HEADSTART_MODEL_REPOSITORY": str(repository.resolve()),
                "HEADSTART_HOST": "127.0.0.1",
                "HEADSTART_PORT": "0",
                "HEADSTART_STATE_DIRECTORY": str(Path(scratch) / "state"),
            }
        )
        server = servers.Server(serve_command(), env, "/health/ready")
        with servers.running({"headstart": server}, Path(scratch)) as urls:
            address = grpc_address(Path(scratch) / "headstart.log")
            results = [
                _compare(urls["headstart"], address, rest, message, c, duration, rounds, echo)
                for c in concurrency
            ]
            inside = _server_time(urls["headstart"], name)
    echo(
        "  time inside the service, mean over every request: "
        + ", ".join(f"{k} {v:.3f} ms" for k, v in inside.items())
    )
    return {
        "model": name,
        "images": images.source,
        "request": "one image, probabilities as raw bytes",
        "client": "Python processes, one per core, one connection per concurrent request",
        "rounds": rounds,
        "results": results,
        "server_mean_ms": inside,
    }


def _server_time(url: str, name: str) -> dict[str, float]:
    """Mean time from a request reaching the service to its answer, per protocol, from the
    service's own histograms: what the protocols cost inside, apart from clients and wires."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=30) as response:
        text = response.read().decode()
    model, variant = name.rsplit("-", 1)
    wanted = {
        "rest_binary": (
            "headstart_request_duration_seconds",
            "endpoint",
            "/v2/models/<name>/infer",
        ),
        "grpc": ("headstart_grpc_request_duration_seconds", "method", "ModelInfer"),
    }
    sums: dict[str, dict[str, float]] = {k: {"sum": 0.0, "count": 0.0} for k in wanted}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if (labels.get("model"), labels.get("variant")) != (model, variant):
                continue
            for key, (metric, label, value) in wanted.items():
                if labels.get(label) == value and sample.name in (
                    f"{metric}_sum",
                    f"{metric}_count",
                ):
                    sums[key][sample.name.rsplit("_", 1)[1]] += sample.value
    return {k: 1000.0 * v["sum"] / v["count"] for k, v in sums.items() if v["count"]}


def _grpc_request(name: str, raw: bytes, shape: list[int]) -> bytes:
    tensor = pb.ModelInferRequest.InferInputTensor(name="image", datatype="UINT8", shape=shape)
    request = pb.ModelInferRequest(model_name=name, inputs=[tensor], raw_input_contents=[raw])
    request.outputs.add(name="probabilities")
    serialized: bytes = request.SerializeToString()
    return serialized


def grpc_address(log: Path, timeout: float = 60.0) -> str:
    """The gRPC address in the server's log, once every worker's health check can answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        match = _GRPC_AT.search(text)
        if match and text.count("gRPC serving at") >= text.count("Booting worker"):
            address = match.group(1)
            with grpc.insecure_channel(address) as channel:
                check = health_pb2_grpc.HealthStub(channel).Check
                answer = check(health_pb2.HealthCheckRequest(), timeout=10, wait_for_ready=True)
            if answer.status == health_pb2.HealthCheckResponse.SERVING:
                return address
        time.sleep(0.1)
    raise BenchError(f"the server's gRPC service did not start within {timeout:.0f} s")


def _compare(
    url: str,
    address: str,
    rest: loadgen.Request,
    message: bytes,
    concurrency: int,
    duration: float,
    rounds: int,
    echo: Callable[[str], None],
) -> dict[str, Any]:
    runs: dict[str, Callable[[float], loadgen.LoadResult]] = {
        "rest_binary": lambda s: loadgen.run_load("python", url, rest, concurrency, s),
        "grpc": lambda s: loadgen.run_grpc(address, message, concurrency, s),
    }
    for measure in runs.values():  # warm both paths up
        measure(min(1.0, duration))
    measured: dict[str, list[loadgen.LoadResult]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, measure in runs.items():
            measured[name].append(measure(duration / rounds))
    combined = {name: loadgen.combine(results) for name, results in measured.items()}
    for name, result in combined.items():
        echo(
            f"  {name:<11} c={concurrency}: {result.requests_per_s:8.1f} req/s, "
            f"p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms, failures {result.failures}"
        )
    ratio = combined["grpc"].requests_per_s / combined["rest_binary"].requests_per_s
    echo(f"  gRPC / REST binary throughput at c={concurrency}: {ratio:.3f}")
    return {
        "concurrency": concurrency,
        "grpc_over_rest": ratio,
        **{name: r.to_json() for name, r in combined.items()},
    }
