"""``headstart serve``: run the service under gunicorn with the one canonical command line."""

from __future__ import annotations

import argparse
import errno
import os
import socket
from typing import TYPE_CHECKING, Any

from scripts.commands._options import add_repository_option, env_name, stated
from scripts.errors import CommandError
from service.grpc.port import port_problem
from service.server_command import repository_problem, serve_command

if TYPE_CHECKING:
    from service.settings import Settings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve the model repository over HTTP and gRPC (gunicorn; gRPC on port 8001)",
        description=(
            "Serve every model in the repository under gunicorn, on loopback unless --host says "
            "otherwise. Options left out come from their HEADSTART_* variables, as does every "
            "other setting of the service."
        ),
    )
    from service.settings import Settings

    fields = Settings.model_fields
    add_repository_option(parser)

    def option(name: str, text: str, **kwargs: Any) -> None:
        default = stated(fields[name].default, env_name(name))
        parser.add_argument(f"--{name}", help=f"{text} {default}", **kwargs)

    option("host", "address to bind; 0.0.0.0 faces the network")
    option("port", "port to bind, 0 for any free one", type=int)
    option("workers", "worker processes", type=int, metavar="N")
    option("threads", "request threads per worker", type=int, metavar="N")
    parser.set_defaults(func=run)


OPTIONS: tuple[str, ...] = ("model_repository", "host", "port", "workers", "threads")


def resolve_settings(args: argparse.Namespace) -> Settings:
    """The settings gunicorn will see: the environment, overridden by the given options."""
    from pydantic import ValidationError

    from service.settings import Settings

    overrides: dict[str, Any] = {
        name: getattr(args, name) for name in OPTIONS if getattr(args, name) is not None
    }
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = str(err["loc"][0]) if err["loc"] else "settings"
        source = f"--{name.replace('_', '-')}" if name in overrides else f"HEADSTART_{name.upper()}"
        raise CommandError(f"{source}: {err['msg']} (got {err.get('input')!r})") from None
    problem = repository_problem(settings.model_repository) or port_problem(settings)
    if problem is not None:
        raise CommandError(problem)
    return settings


def serve_environment(settings: Settings, base: dict[str, str]) -> dict[str, str]:
    """``base`` with the chosen options as ``HEADSTART_*`` variables, for gunicorn's config."""
    env = dict(base)
    env["HEADSTART_MODEL_REPOSITORY"] = str(settings.model_repository.resolve())
    for name in OPTIONS[1:]:
        env[f"HEADSTART_{name.upper()}"] = str(getattr(settings, name))
    return env


PORT_IN_USE = 75
"""Exit status for a busy port (EX_TEMPFAIL: try again, or elsewhere)."""


def require_free_port(host: str, port: int, step: int = 1) -> None:
    """Stop with one line when ``host:port`` is taken, instead of gunicorn's retries and traceback."""
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise CommandError(f"--host {host!r}: cannot be resolved ({exc.strerror})") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        # gunicorn binds with SO_REUSEADDR too, so a port in TIME_WAIT is free for both.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise CommandError(f"cannot bind {host}:{port} ({exc.strerror})") from None
            # With gRPC on the next port, the suggestion moves both.
            raise CommandError(
                f"port {port} on {host} is already in use; choose another with "
                f"`make serve PORT={port + step}` or `headstart serve --port {port + step}`",
                exit_code=PORT_IN_USE,
            ) from None


def run(args: argparse.Namespace) -> int:
    settings = resolve_settings(args)
    require_free_port(settings.host, settings.port, 2 if settings.grpc else 1)
    env = serve_environment(settings, dict(os.environ))
    command = serve_command()
    os.execve(command[0], command, env)  # replaces this process; never returns
