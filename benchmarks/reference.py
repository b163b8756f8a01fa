"""ONNX Runtime called in-process on the decoded images: this model's limit on this machine."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray


@dataclass(frozen=True)
class ReferenceResult:
    """``session.run`` timings for one batch size: one caller's latency, and ``parallel``'s rate."""

    batch: int
    sessions: int
    """Sessions run one after the other per call (2 for compare)."""
    p50_ms: float
    p99_ms: float
    per_image_ms: float
    parallel: int
    """Threads calling at once for the throughput figure (the service's worker count)."""
    images_per_s: float

    def to_json(self) -> dict[str, float | int]:
        return asdict(self)


def _call(sessions: Sequence[ort.InferenceSession], batch: NDArray[np.uint8]) -> None:
    for session in sessions:
        session.run(["probabilities"], {"image": batch})


def measure(
    sessions: Sequence[ort.InferenceSession],
    images: NDArray[np.uint8],
    batch: int,
    *,
    duration: float,
    parallel: int,
) -> ReferenceResult:
    """Time ``session.run`` on ``images`` taken ``batch`` at a time, alone and ``parallel``-wide."""
    batches = [images[i : i + batch] for i in range(0, len(images) - batch + 1, batch)]
    for b in batches[:3]:
        _call(sessions, b)  # first runs allocate
    latencies: list[float] = []
    deadline = time.perf_counter() + duration / 2
    i = 0
    while time.perf_counter() < deadline or len(latencies) < 5:
        began = time.perf_counter()
        _call(sessions, batches[i % len(batches)])
        latencies.append(time.perf_counter() - began)
        i += 1
    p50, p99 = (float(v) * 1000 for v in np.percentile(latencies, [50, 99]))

    # onnxruntime releases the GIL inside run, so threads here run as worker processes would.
    counts = [0] * parallel
    start = threading.Event()

    def loop(slot: int) -> None:
        start.wait()
        stop = time.perf_counter() + duration / 2
        n = 0
        while time.perf_counter() < stop:
            _call(sessions, batches[n % len(batches)])
            n += 1
        counts[slot] = n

    threads = [threading.Thread(target=loop, args=(k,)) for k in range(parallel)]
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    start.set()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    return ReferenceResult(
        batch=batch,
        sessions=len(sessions),
        p50_ms=p50,
        p99_ms=p99,
        per_image_ms=p50 / batch,
        parallel=parallel,
        images_per_s=sum(counts) * batch / elapsed,
    )
