"""A real gunicorn on loopback with the production defaults (2 workers x 4 threads), and ways
to watch its processes: which workers it runs and how much memory each holds."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.builders import write_repository
from tests.server import running_server

PRODUCTION = {"HEADSTART_WORKERS": "2", "HEADSTART_THREADS": "4"}
"""The service's defaults, which ``running_server`` turns down for the other suites."""

_MASTER = re.compile(r"\[(\d+)\] \[INFO\] Starting gunicorn")
_BOOTED = re.compile(r"Booting worker with pid: (\d+)")


@dataclass(frozen=True)
class Server:
    """A running server: its base URL and its log, from which its processes are read."""

    url: str
    log: Path

    def master(self) -> int:
        match = _MASTER.search(self.log.read_text())
        assert match, "gunicorn logged no master pid"
        return int(match.group(1))

    def workers(self) -> list[int]:
        """The workers alive now, oldest first."""
        booted = [int(pid) for pid in _BOOTED.findall(self.log.read_text())]
        return [pid for pid in booted if Path(f"/proc/{pid}").exists()]


def rss_mib(pid: int) -> float:
    """Resident memory of a process now, from ``/proc/<pid>/status``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for process {pid}")


def cpu_seconds(pid: int) -> float:
    """CPU time the process (all its threads) has used: what an attack costs it, whatever
    else the machine is doing."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def peak_rss_mib(pid: int) -> float:
    """The most resident memory the process has held (``VmHWM``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM for process {pid}")


@pytest.fixture(scope="package")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the suite's non-destructive attacks."""
    repo = write_repository(tmp_path_factory.mktemp("adversarial-repo"))
    log = tmp_path_factory.mktemp("adversarial-log") / "gunicorn.log"
    with running_server(repo, PRODUCTION, log_path=log) as url:
        yield Server(url, log)


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[Server]:
    """A server of its own, for a test that kills or stops it."""
    repo = write_repository(tmp_path / "repo")
    with running_server(repo, PRODUCTION, log_path=tmp_path / "gunicorn.log") as url:
        yield Server(url, tmp_path / "gunicorn.log")


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session
