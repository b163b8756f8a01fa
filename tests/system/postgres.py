"""A throwaway PostgreSQL server from Debian's own binaries, on a unix socket in a temp dir."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.system import require


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        require("initdb", "postgresql")  # skips (fails under CI) with one line
    return Path(found[-1]).parent


@contextmanager
def postgres_server() -> Iterator[str]:
    """Start a server whose files and socket live in a new temp dir; yield its SQLAlchemy URL.

    PostgreSQL refuses to run as root, so as root the server runs as the ``postgres`` user
    (in a directory of its own under /tmp, which that user can reach). Nothing listens on
    TCP: the socket is a file only this machine can reach.
    """
    bin_dir = _bin_dir()
    user = "postgres" if os.geteuid() == 0 else None
    with (
        tempfile.TemporaryDirectory(prefix="headstart-postgres-") as scratch,
        _server(bin_dir, Path(scratch), user) as url,
    ):
        yield url


@contextmanager
def _server(bin_dir: Path, directory: Path, user: str | None) -> Iterator[str]:
    data, sockets = directory / "data", directory / "sockets"
    data.mkdir(parents=True)
    sockets.mkdir()
    if user is not None:
        for path in (directory, data, sockets):
            shutil.chown(path, user)
    _run(user, bin_dir / "initdb", "-D", data, "-U", "headstart", "--auth=trust", "-E", "UTF8")
    options = f"-c listen_addresses='' -k {sockets}"
    log = directory / "server.log"
    _run(user, bin_dir / "pg_ctl", "-D", data, "-l", log, "-o", options, "-w", "start")
    try:
        yield f"postgresql+psycopg://headstart@/postgres?host={sockets}"
    finally:
        _run(user, bin_dir / "pg_ctl", "-D", data, "-m", "immediate", "stop")


def _run(user: str | None, *command: str | Path) -> None:
    done = subprocess.run(list(command), user=user, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{command[0]} failed ({done.returncode}): {done.stderr or done.stdout}")
