"""Dynamic batching: concurrent requests in one worker share one ONNX Runtime call.

A request thread queues its images. If no batch is running, it becomes the
runner: it waits up to ``max_wait`` for more images (none by default, because
requests that arrive while a batch runs queue up on their own), runs everything
queued up to ``max_size`` images as one call, hands each request its rows and
wakes the next runner. A request with ``max_size`` images or more skips the
queue.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from service.runtime import OUTPUTS, Outputs, RunFn, RunWrapper, note_compute, note_queue


@dataclass(eq=False)
class _Job:
    images: NDArray[np.uint8]
    done: bool = False
    result: Outputs = field(default_factory=dict)
    error: Exception | None = None
    queued_at: float = field(default_factory=time.perf_counter)
    queue_s: float = 0.0
    """How long the job waited before its batch's call began."""
    compute_s: float = 0.0
    """How long the call of this job's batch took."""


class Batcher:
    """Merge concurrent ``run`` calls on one model into batches of at most ``max_size`` images."""

    def __init__(
        self, run: RunFn, outputs: Sequence[str], max_size: int, max_wait_s: float
    ) -> None:
        self._run = run
        self._outputs = tuple(outputs)
        self.max_size = max_size
        self.max_wait_s = max_wait_s
        self._cond = threading.Condition()
        self._queue: list[_Job] = []
        self._running = False

    def run(self, images: NDArray[np.uint8], outputs: Sequence[str] = OUTPUTS) -> Outputs:
        """The named outputs for ``images``, computed alone or with other requests' images."""
        if len(images) >= self.max_size:
            return self._run(images, outputs)
        job = _Job(images)
        with self._cond:
            self._queue.append(job)
            self._cond.notify_all()
            while not job.done:
                if self._running:
                    self._cond.wait()
                    continue
                self._running = True
                batch = self._collect()
                self._cond.release()
                try:
                    self._execute(batch)
                finally:
                    self._cond.acquire()
                    self._running = False
                    self._cond.notify_all()
        if job.error is not None:
            raise job.error
        # The runner thread made the call; each request of the batch reports its duration.
        note_queue(job.queue_s)
        note_compute(job.compute_s)
        return {name: job.result[name] for name in outputs}

    def _collect(self) -> list[_Job]:
        """Wait (lock held) up to ``max_wait`` for a full batch; take the queue's head."""
        deadline = time.monotonic() + self.max_wait_s
        while self._queued_images() < self.max_size:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._cond.wait(left)
        batch, total = [], 0
        while self._queue and total + len(self._queue[0].images) <= self.max_size:
            job = self._queue.pop(0)
            batch.append(job)
            total += len(job.images)
        return batch

    def _queued_images(self) -> int:
        return sum(len(job.images) for job in self._queue)

    def _execute(self, batch: list[_Job]) -> None:
        """Run the batch without the lock; results and errors go to each job (under the lock)."""
        images = batch[0].images if len(batch) == 1 else np.concatenate([j.images for j in batch])
        began = time.perf_counter()
        try:
            results = self._run(images, self._outputs)
        except Exception as exc:  # noqa: BLE001 -- each request of the batch raises it
            with self._cond:
                for job in batch:
                    job.error, job.done = exc, True
            return
        compute_s = time.perf_counter() - began
        with self._cond:
            start = 0
            for job in batch:
                stop = start + len(job.images)
                job.result = {name: value[start:stop] for name, value in results.items()}
                job.queue_s = began - job.queued_at
                job.compute_s = compute_s
                job.done = True
                start = stop


def wrapper(max_size: int, max_wait_ms: float) -> RunWrapper | None:
    """What gives each variant a batcher when it loads; ``None`` (off) when ``max_size`` is 1."""
    if max_size <= 1:
        return None

    def wrap(run: RunFn) -> RunFn:
        return Batcher(run, OUTPUTS, max_size, max_wait_ms / 1000.0).run

    return wrap
