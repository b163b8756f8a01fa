"""Run shadow arms off the response path: a small thread pool per worker process."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

log = logging.getLogger(__name__)

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_pid = 0


def submit(task: Callable[[], None], threads: int) -> Future[None]:
    """Run ``task`` in this process's shadow pool; its errors are logged, never raised."""
    global _pool, _pool_pid
    with _lock:
        # A pool does not survive fork: a worker makes its own.
        if _pool is None or _pool_pid != os.getpid():
            _pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="shadow")
            _pool_pid = os.getpid()
        pool = _pool
    return pool.submit(_logged, task)


def _logged(task: Callable[[], None]) -> None:
    try:
        task()
    except Exception:
        log.exception("shadow arm failed; the served answer was not affected")
