"""What the benchmark ran on: CPU, cores, memory, load and the versions that matter."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = (
    "onnxruntime",
    "flask",
    "werkzeug",
    "gunicorn",
    "numpy",
    "pillow",
    "pyspng",
    "orjson",
    "headstart",
)


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo``, else what ``platform`` says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gib() -> float | None:
    """Total memory in GiB, where ``/proc/meminfo`` says."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def versions() -> dict[str, str]:
    """Installed versions of the packages on the serving path."""
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def describe(wrk: str | None) -> dict[str, Any]:
    """Everything about the machine and software worth keeping beside the figures."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    wrk_version = None
    if wrk is not None:
        done = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False)
        lines = (done.stdout or done.stderr).strip().splitlines()
        wrk_version = lines[0] if lines else None
    return {
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "memory_gib": memory_gib(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "versions": versions(),
        "wrk": wrk_version,
        "load_average_at_start": list(os.getloadavg()),
    }
