"""The shadow queue: a fixed number of threads, a bounded queue, drops counted."""

from __future__ import annotations

import threading

from prometheus_client import REGISTRY

from service.experiments import shadow
from service.metrics import record_shadow_dropped


def _dropped(experiment: str) -> float:
    value = REGISTRY.get_sample_value("headstart_shadow_dropped_total", {"experiment": experiment})
    return value or 0.0


def test_a_burst_of_shadow_work_is_bounded_and_the_excess_dropped_and_counted() -> None:
    release = threading.Event()
    ran: list[int] = []
    before_threads = threading.active_count()
    before_dropped = _dropped("burst")
    queue = shadow.ShadowQueue(threads=2, capacity=8)
    accepted = 0
    for i in range(600):

        def task(i: int = i) -> None:
            release.wait(10)
            ran.append(i)

        if queue.submit(task):
            accepted += 1
        else:
            record_shadow_dropped("burst")
    assert threading.active_count() - before_threads <= 2
    assert 8 <= accepted <= 10  # eight waiting, and up to two already taken by the threads
    assert _dropped("burst") - before_dropped == 600 - accepted
    release.set()
    assert queue.wait_idle(10)
    assert len(ran) == accepted
    assert threading.active_count() - before_threads <= 2  # the threads stay for the next


def test_the_process_queue_counts_what_it_drops() -> None:
    release = threading.Event()
    before = _dropped("process-queue")
    shadow_queue = shadow.queue(1)
    capacity = shadow_queue.capacity

    def task() -> None:
        release.wait(10)

    queued = [shadow.submit(task, 1, "process-queue") for _ in range(capacity + 20)]
    assert queued.count(False) >= 19
    assert _dropped("process-queue") - before == queued.count(False)
    release.set()
    assert shadow.wait_idle(10)


def test_a_failing_shadow_task_is_logged_and_the_thread_goes_on() -> None:
    queue = shadow.ShadowQueue(threads=1, capacity=4)
    done = threading.Event()

    def fail() -> None:
        raise RuntimeError("boom")

    assert queue.submit(fail)
    assert queue.submit(done.set)
    assert done.wait(10)
