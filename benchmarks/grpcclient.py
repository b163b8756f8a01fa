"""One process of the gRPC load generator: ``python -m benchmarks.grpcclient SPEC_JSON``.

As :mod:`benchmarks.pyclient` does for HTTP: one channel per thread, each on a connection of
its own; it prints ``ready`` once every channel is connected, waits for ``go`` on stdin, then
sends the serialized ``ModelInferRequest`` in a loop on every channel for the given duration
and prints its latencies (seconds, successful calls only) and its failure count as JSON.
Requests and answers stay bytes: the client parses nothing, as the HTTP client parses no JSON.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from typing import Any

import grpc

from benchmarks.pyclient import run_threads

METHOD = "/inference.GRPCInferenceService/ModelInfer"


def _worker(
    spec: dict[str, Any],
    body: bytes,
    connected: threading.Barrier,
    start: threading.Event,
    out: list[float],
    failed: list[int],
) -> None:
    # A subchannel pool of its own: channels to one address would share one connection.
    options = [("grpc.use_local_subchannel_pool", 1), ("grpc.max_receive_message_length", -1)]
    with grpc.insecure_channel(spec["address"], options=options) as channel:
        call = channel.unary_unary(METHOD)
        with contextlib.suppress(grpc.FutureTimeoutError):  # its first call fails instead
            grpc.channel_ready_future(channel).result(timeout=spec["timeout"])
        connected.wait()
        start.wait()
        deadline = time.perf_counter() + spec["duration"]
        clock = time.perf_counter
        while True:
            began = clock()
            if began >= deadline:
                break
            try:
                call(body, timeout=spec["timeout"])
                out.append(clock() - began)
            except grpc.RpcError:
                failed[0] += 1


def main(argv: list[str]) -> int:
    """Run the spec in ``argv[1]``; print the JSON report on stdout."""
    return run_threads(_worker, argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
