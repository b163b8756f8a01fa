"""Run shadow arms off the response path, at most ``threads`` at a time per worker process.

Each task gets a real thread of its own that waits for one of the process's slots. (A
``concurrent.futures`` pool would not do: the gevent worker patches the ``queue`` module
its threads wait on, and a real thread blocking on a gevent queue never wakes.)
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

_lock = threading.Lock()
_slots: threading.BoundedSemaphore | None = None
_slots_pid = 0


def submit(task: Callable[[], None], threads: int) -> threading.Thread:
    """Start ``task`` in the background; its errors are logged, never raised."""
    global _slots, _slots_pid
    with _lock:
        if _slots is None or _slots_pid != os.getpid():  # fresh in every forked worker
            _slots = threading.BoundedSemaphore(threads)
            _slots_pid = os.getpid()
        slots = _slots
    thread = threading.Thread(target=_run, args=(task, slots), name="shadow", daemon=True)
    thread.start()
    return thread


def _run(task: Callable[[], None], slots: threading.BoundedSemaphore) -> None:
    with slots:
        try:
            task()
        except Exception:
            log.exception("shadow arm failed; the served answer was not affected")
