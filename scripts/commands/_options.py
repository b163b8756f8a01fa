"""How every option states its default, and the options several commands share.

Each option's help ends with ``(default: VALUE)``, or ``(default: VALUE; env HEADSTART_X)``
when a ``HEADSTART_*`` variable sets it, so ``--help`` reads the same in every command.
"""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_REPOSITORY = Path("model_repository")


def stated(default: object, env: str | None = None) -> str:
    """``(default: VALUE; env NAME)``, the one way a help text gives its default."""
    return f"(default: {default}; env {env})" if env else f"(default: {default})"


def env_name(dest: str) -> str:
    """The ``HEADSTART_*`` variable of the service setting an option is named after."""
    return f"HEADSTART_{dest.upper()}"


def add_repository_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model-repository",
        type=Path,
        default=None,
        metavar="DIR",
        help="repository root " + stated(f"./{DEFAULT_REPOSITORY}", env_name("model_repository")),
    )
