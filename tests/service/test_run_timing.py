"""Each run's time queued for a batch and in the model call, as the statistics report them."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from service.batching import Batcher
from service.runtime import OUTPUTS, ModelStore, Outputs, reset_timing, run_timing

CALL_S = 0.05


def _slow_run(images: NDArray[np.uint8], outputs: Sequence[str] = OUTPUTS) -> Outputs:
    time.sleep(CALL_S)
    return {name: np.zeros((len(images), 2), np.float32) for name in outputs}


def test_a_batched_request_reports_its_wait_and_the_shared_call() -> None:
    # The first request waits (up to 2 s) for a second to fill the batch of two.
    batcher = Batcher(_slow_run, OUTPUTS, max_size=2, max_wait_s=2.0)
    timings: dict[str, tuple[float, float]] = {}

    def request(name: str) -> None:
        reset_timing()
        batcher.run(np.zeros((1, 1, 2, 2), np.uint8))
        timings[name] = run_timing()

    first = threading.Thread(target=request, args=("first",))
    first.start()
    time.sleep(0.2)
    request("second")
    first.join(timeout=10)
    (first_queue, first_compute), (second_queue, second_compute) = (
        timings["first"],
        timings["second"],
    )
    assert first_compute == second_compute >= CALL_S  # one call, shared
    assert first_queue >= 0.15  # it waited for the second request
    assert second_queue < first_queue


def test_an_unbatched_run_reports_its_onnx_call_and_no_queue(repository: Path) -> None:
    variant = ModelStore.load(repository).variant("tiny", "baseline")
    reset_timing()
    variant.run(np.zeros((4, 1, 28, 28), np.uint8))
    queued, computed = run_timing()
    assert queued == 0.0
    assert computed > 0.0
