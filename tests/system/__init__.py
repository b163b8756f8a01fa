"""Parts of the real world the suites need: Debian programs the test command installs.

``tests/system/install.sh`` (run by ``make test``) installs ``packages.txt``. A suite
asks for a program with :func:`require`: when it is missing the suite skips with one
line, but under ``CI=true`` a missing part fails, so CI never goes green by skipping.
"""

from __future__ import annotations

import os
import shutil

import pytest


def in_ci() -> bool:
    """Whether this run is CI's (``CI=true``), where nothing may be skipped for lack of a part."""
    return os.environ.get("CI", "").lower() == "true"


def require(program: str, package: str) -> str:
    """The path of ``program``; skip (fail under CI) naming the Debian ``package`` if missing."""
    path = shutil.which(program) or next(
        (p for p in (f"/usr/sbin/{program}", f"/sbin/{program}") if os.access(p, os.X_OK)), None
    )
    if path is not None:
        return path
    message = (
        f"{program} not found: install Debian's {package} (make test does, as root with apt-get)"
    )
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)
