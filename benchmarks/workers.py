"""Which gunicorn worker served how many requests, from the service's access log."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

_WORKER = re.compile(r" worker=<(\d+)> ")


def served_by(log: Path) -> Counter[str]:
    """Access log lines per worker pid so far (an empty count when there is no log yet)."""
    try:
        text = log.read_text(errors="replace")
    except FileNotFoundError:
        return Counter()
    return Counter(_WORKER.findall(text))


def share(before: Counter[str], after: Counter[str]) -> dict[str, int]:
    """Requests each worker served between two counts, busiest first."""
    return dict((after - before).most_common())
