"""Run shadow arms off the response path: ``threads`` threads per worker process, and a
bounded queue in front of them.

A shadow run is extra work nobody waits for, so it never grows without bound: when the
threads are busy and ``QUEUE_PER_THREAD`` tasks per thread already wait, a new one is
dropped (the served answer is unaffected) and counted in ``headstart_shadow_dropped_total``.
A queued task holds its request's image, so the queue also bounds that memory.

The threads wait on a :class:`threading.Condition` over a deque: the gevent worker patches
the ``queue`` module, and a real thread blocking on a gevent queue never wakes.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import Callable

from service.metrics import record_shadow_dropped

log = logging.getLogger(__name__)

QUEUE_PER_THREAD = 4
"""Tasks that may wait per shadow thread before new ones are dropped."""


class ShadowQueue:
    """A fixed set of daemon threads taking tasks from a bounded queue."""

    def __init__(self, threads: int, capacity: int) -> None:
        self.threads = threads
        self.capacity = capacity
        self._tasks: deque[Callable[[], None]] = deque()
        self._changed = threading.Condition()
        self._running = 0
        self._started = False

    def submit(self, task: Callable[[], None]) -> bool:
        """Queue ``task``; False (and nothing queued) when the queue is full."""
        with self._changed:
            if len(self._tasks) >= self.capacity:
                return False
            if not self._started:
                self._started = True
                for i in range(self.threads):
                    threading.Thread(target=self._work, name=f"shadow-{i}", daemon=True).start()
            self._tasks.append(task)
            self._changed.notify()
        return True

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no task runs or waits; whether that happened within ``timeout`` s."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._tasks and not self._running, timeout)

    def _work(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: bool(self._tasks))
                task = self._tasks.popleft()
                self._running += 1
            try:
                task()
            except Exception:
                log.exception("shadow arm failed; the served answer was not affected")
            finally:
                with self._changed:
                    self._running -= 1
                    self._changed.notify_all()


_lock = threading.Lock()
_queue: ShadowQueue | None = None
_queue_pid = 0


def queue(threads: int) -> ShadowQueue:
    """This process's queue (fresh in every forked worker), sized for ``threads`` threads."""
    global _queue, _queue_pid
    with _lock:
        if _queue is None or _queue_pid != os.getpid():
            _queue = ShadowQueue(threads, QUEUE_PER_THREAD * threads)
            _queue_pid = os.getpid()
        return _queue


def submit(task: Callable[[], None], threads: int, experiment: str) -> bool:
    """Run ``task`` in the background, or drop and count it when the queue is full; its
    errors are logged, never raised. Whether it was queued."""
    queued = queue(threads).submit(task)
    if not queued:
        record_shadow_dropped(experiment)
    return queued


def wait_idle(timeout: float) -> bool:
    """Wait until this process's shadow work is done (for tests and shutdown)."""
    with _lock:
        current = _queue if _queue_pid == os.getpid() else None
    return current is None or current.wait_idle(timeout)
