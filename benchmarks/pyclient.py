"""One process of the Python load generator: ``python -m benchmarks.pyclient SPEC_JSON``.

It opens one keep-alive connection per thread, prints ``ready``, waits for
``go`` on stdin, then sends the request in a loop on every connection for the
given duration and prints its latencies (seconds, successful requests only)
and its failure count as JSON.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


def _worker(
    spec: dict[str, Any],
    body: bytes,
    connected: threading.Barrier,
    start: threading.Event,
    out: list[float],
    failed: list[int],
) -> None:
    url = urlsplit(spec["url"])
    headers = {**spec["headers"], "Content-Length": str(len(body))}
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=spec["timeout"])
    with contextlib.suppress(OSError):  # a refused connection fails its first request instead
        connection.connect()
    connected.wait()
    start.wait()
    deadline = time.perf_counter() + spec["duration"]
    clock = time.perf_counter
    while True:
        began = clock()
        if began >= deadline:
            break
        try:
            connection.request("POST", url.path, body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            ok = 200 <= response.status < 300
        except (OSError, http.client.HTTPException):
            ok = False
            connection.close()  # http.client reconnects on the next request
        if ok:
            out.append(clock() - began)
        else:
            failed[0] += 1
    connection.close()


Worker = Callable[
    [dict[str, Any], bytes, threading.Barrier, threading.Event, list[float], list[int]], None
]
"""One connection's loop: spec, body, connected barrier, start event, latencies, failures."""


def main(argv: list[str]) -> int:
    """Run the spec in ``argv[1]``; print the JSON report on stdout."""
    return run_threads(_worker, argv)


def run_threads(worker: Worker, argv: list[str]) -> int:
    """Start ``spec["threads"]`` workers, say ``ready``, wait for ``go``, print the report."""
    spec = json.loads(argv[1])
    body = Path(spec["body"]).read_bytes()
    start = threading.Event()
    connected = threading.Barrier(spec["threads"] + 1)
    latencies: list[list[float]] = [[] for _ in range(spec["threads"])]
    failures = [[0] for _ in range(spec["threads"])]
    threads = [
        threading.Thread(
            target=worker, args=(spec, body, connected, start, latencies[i], failures[i])
        )
        for i in range(spec["threads"])
    ]
    for thread in threads:
        thread.start()
    connected.wait()
    print("ready", flush=True)
    sys.stdin.readline()
    began = time.perf_counter()
    start.set()
    for thread in threads:
        thread.join()
    report = {
        "latencies": [v for chunk in latencies for v in chunk],
        "failures": sum(f[0] for f in failures),
        "elapsed": time.perf_counter() - began,
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
