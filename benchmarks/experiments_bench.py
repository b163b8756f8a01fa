"""What online experiments cost: routed classify against plain classify, and bulk feedback.

One gunicorn server (the production command and settings) answers both kinds of classify
in alternating rounds at the same concurrency, so the ratio is taken under the same load;
then 1,000 feedback items go in one request, again and again (repeats are idempotent).
"""

from __future__ import annotations

import json
import secrets
import statistics
import tempfile
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks import loadgen, scenarios, servers
from benchmarks.run import BenchError, _model
from service.server_command import serve_command

ROUTED_TARGET = 0.85
"""Routed classify throughput must be at least this share of plain classify's."""
FEEDBACK_TARGET_MS = 100.0
"""The median time to store 1,000 feedback items in one request must stay under this."""
FEEDBACK_ITEMS = 1000


def run(
    repository: Path,
    model: str | None = None,
    *,
    duration: float = 10.0,
    rounds: int = 5,
    concurrency: int = 8,
    feedback_posts: int = 20,
    tool: loadgen.Tool = "python",
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    entries = _model(repository, model)
    if "baseline" not in entries:
        raise BenchError("the experiment benchmark needs both variants of the model")
    first = entries["pretrained"]
    image = scenarios.load_images(first.manifest.input, 1).png[0]
    token = secrets.token_hex(16)
    with tempfile.TemporaryDirectory(prefix="headstart-bench-exp-") as scratch:
        env = servers.environment(
            {
                "HEADSTART_MODEL_REPOSITORY": str(repository.resolve()),
                "HEADSTART_HOST": "127.0.0.1",
                "HEADSTART_PORT": "0",
                "HEADSTART_ADMIN_TOKEN": token,
                "HEADSTART_STATE_DIRECTORY": str(Path(scratch) / "state"),
            }
        )
        server = servers.Server(serve_command(), env, "/health/ready")
        with servers.running({"headstart": server}, Path(scratch)) as urls:
            url = urls["headstart"]
            _post(
                url,
                "/v1/experiments",
                token,
                {
                    "name": "bench",
                    "model": first.name,
                    "arms": [
                        {"name": "a", "variant": "pretrained"},
                        {"name": "b", "variant": "baseline"},
                    ],
                },
            )
            throughput = _throughput(
                url, first.name, image, duration, rounds, concurrency, tool, echo
            )
            feedback = _feedback(url, first.name, image, token, feedback_posts, echo)
    result = {
        "throughput": throughput,
        "feedback": feedback,
        "targets": {"routed_ratio": ROUTED_TARGET, "feedback_median_ms": FEEDBACK_TARGET_MS},
    }
    echo(
        f"routed/plain classify throughput at c={concurrency}: {throughput['ratio']:.3f} "
        f"(target >= {ROUTED_TARGET}): {'met' if throughput['ratio'] >= ROUTED_TARGET else 'MISSED'}"
    )
    echo(
        f"{FEEDBACK_ITEMS} feedback items in one request: median {feedback['median_ms']:.1f} ms "
        f"(target < {FEEDBACK_TARGET_MS:g} ms): "
        f"{'met' if feedback['median_ms'] < FEEDBACK_TARGET_MS else 'MISSED'}"
    )
    return result


def _throughput(
    url: str,
    model: str,
    image: bytes,
    duration: float,
    rounds: int,
    concurrency: int,
    tool: loadgen.Tool,
    echo: Callable[[str], None],
) -> dict[str, Any]:
    png = {"Content-Type": "image/png"}
    requests = {
        "plain": loadgen.Request(f"/v1/models/{model}/classify", image, png),
        "routed": loadgen.Request(
            f"/v1/models/{model}/classify?experiment=bench",
            image,
            {**png, "X-Experiment-Unit": "bench-user"},
        ),
    }
    for request in requests.values():  # warm both paths up
        loadgen.run_load(tool, url, request, concurrency, min(1.0, duration))
    measured: dict[str, list[loadgen.LoadResult]] = {name: [] for name in requests}
    for _ in range(rounds):
        for name, request in requests.items():
            measured[name].append(
                loadgen.run_load(tool, url, request, concurrency, duration / rounds)
            )
    combined = {name: loadgen.combine(results) for name, results in measured.items()}
    for name, result in combined.items():
        echo(
            f"  {name:<7} classify c={concurrency}: {result.requests_per_s:8.1f} req/s, "
            f"p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms, failures {result.failures}"
        )
    ratio = combined["routed"].requests_per_s / combined["plain"].requests_per_s
    return {
        "concurrency": concurrency,
        "ratio": ratio,
        **{name: r.to_json() for name, r in combined.items()},
    }


def _feedback(
    url: str, model: str, image: bytes, token: str, posts: int, echo: Callable[[str], None]
) -> dict[str, Any]:
    tag = secrets.token_hex(4)

    def expose(i: int) -> str:
        rid = f"fb-{tag}-{i}"
        call = urllib.request.Request(
            f"{url}/v1/models/{model}/classify?experiment=bench",
            data=image,
            method="POST",
            headers={
                "Content-Type": "image/png",
                "X-Experiment-Unit": f"u{i}",
                "X-Request-ID": rid,
            },
        )
        with urllib.request.urlopen(call, timeout=30) as response:
            response.read()
        return rid

    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(expose, range(FEEDBACK_ITEMS)))
    items = [{"request_id": rid, "label": i % 10} for i, rid in enumerate(ids)]
    times = []
    for _ in range(posts):
        start = time.perf_counter()
        answer = _post(url, "/v1/feedback", token, {"items": items})
        times.append((time.perf_counter() - start) * 1000.0)
        if answer["stored"] != FEEDBACK_ITEMS:
            raise BenchError(f"feedback stored {answer['stored']} of {FEEDBACK_ITEMS} items")
    echo(
        f"  feedback x{FEEDBACK_ITEMS}: first {times[0]:.1f} ms, median {statistics.median(times):.1f} ms, "
        f"max {max(times):.1f} ms over {posts} requests"
    )
    return {
        "items": FEEDBACK_ITEMS,
        "posts": posts,
        "first_ms": times[0],
        "median_ms": statistics.median(times),
        "max_ms": max(times),
    }


def _post(url: str, path: str, token: str, body: Any) -> Any:
    call = urllib.request.Request(
        url + path,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(call, timeout=60) as response:
        return json.loads(response.read())
