"""The options and client every command that talks to a running server shares."""

from __future__ import annotations

import argparse
import os
import time

from scripts.commands._admin_client import AdminClient
from scripts.errors import CommandError

DEFAULT_URL = "http://127.0.0.1:8000"


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    """``--url`` and ``--token``, each defaulting to its ``HEADSTART_*`` variable."""
    parser.add_argument(
        "--url",
        default=os.environ.get("HEADSTART_URL", DEFAULT_URL),
        help=f"the server (default: {DEFAULT_URL}; env HEADSTART_URL)",
    )
    parser.add_argument(
        "--token",
        default=None,
        help="admin token; prefer the variable, as command lines are visible to other users "
        "(default: none; env HEADSTART_ADMIN_TOKEN)",
    )


def utc(at: float) -> str:
    """A time the server recorded (seconds since the epoch), as the admin commands print it."""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))


def client(args: argparse.Namespace) -> AdminClient:
    """A client of the server at ``--url`` with the admin token; stop if there is none."""
    token = args.token or os.environ.get("HEADSTART_ADMIN_TOKEN")
    if not token:
        raise CommandError("no admin token: set HEADSTART_ADMIN_TOKEN (or pass --token)", 2)
    return AdminClient(args.url, token)
