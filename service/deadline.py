"""The time by which the request a thread is serving must be answered.

:mod:`service.front` answers 504 at the deadline on the event loop, but cannot stop the pool
thread that runs the request. The thread sets the deadline here, and the long steps of the
data plane (each image's decoding, each model run) check it first, so an abandoned request
stops within one step instead of holding its thread to the end.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from service.errors import ServiceError

_local = threading.local()


class DeadlinePassed(ServiceError):
    """The request ran past its deadline; it was (or is being) answered 504."""

    status_code = 504
    code = "timeout"


@contextmanager
def running_until(deadline: float | None) -> Iterator[None]:
    """Run the block under ``deadline`` (a :func:`time.monotonic` time; ``None``: no deadline)."""
    outer = getattr(_local, "deadline", None)
    _local.deadline = deadline
    try:
        yield
    finally:
        _local.deadline = outer


def passed() -> bool:
    """Whether this thread's request is past its deadline."""
    deadline: float | None = getattr(_local, "deadline", None)
    return deadline is not None and time.monotonic() >= deadline


def check(step: str) -> None:
    """Raise :class:`DeadlinePassed` before ``step`` when the request is past its deadline."""
    if passed():
        raise DeadlinePassed(f"the request ran past its deadline and was abandoned before {step}")
