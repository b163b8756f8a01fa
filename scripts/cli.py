"""The ``headstart`` command: one entry point, one module per sub-command."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from scripts.errors import CommandError
from service.version import __version__

# Each module has ``register(subparsers)``; it adds its parser and sets ``func``
# to a callable taking the parsed namespace and returning an exit code. Modules
# are imported lazily by name so that ``headstart --help`` stays fast and the
# serving commands never import torch.
COMMAND_MODULES: tuple[str, ...] = (
    "scripts.commands.models",
    "scripts.commands.serve",
    "scripts.commands.build",
    "scripts.commands.pretrain",
    "scripts.commands.finetune",
    "scripts.commands.evaluate",
    "scripts.commands.export",
    "scripts.commands.report",
    "scripts.commands.bench",
    "scripts.commands.experiments",
)


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every sub-command."""
    parser = argparse.ArgumentParser(
        prog="headstart",
        description=(
            "Train an image classifier from an unsupervised pre-trained start and from "
            "random weights, export both to ONNX, and serve them side by side."
        ),
    )
    parser.add_argument("--version", action="version", version=f"headstart {__version__}")
    subparsers = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def chosen(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The innermost (sub-)command parser that ``args`` was parsed by."""
    while True:
        actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        name = getattr(args, actions[0].dest, None) if actions else None
        if name is None or name not in actions[0].choices:
            return parser
        parser = actions[0].choices[name]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # the command's own usage, not the top level's (exits 2)
        chosen(parser, args).error(f"unrecognized arguments: {' '.join(unknown)}")
    args.argv = argv  # what --nproc hands each worker it starts
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        code: int = args.func(args)
    except CommandError as exc:
        print(f"headstart: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("headstart: interrupted", file=sys.stderr)
        return 130
    return code


def _exit_as_launched_worker(code: int) -> None:
    """End a process torchrun started without running C++ static destructors.

    Now and then a rank aborts at interpreter exit ("terminate called without an active
    exception", exit -6) after it has left the process group and everything it writes is
    written: a thread of torch's own is still joinable when the runtime tears down. The
    launcher would report that abort as the run's failure, so a worker, having flushed its
    output and logs, leaves with its own exit code directly.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    exit_code = main()
    _exit_as_launched_worker(exit_code)
    sys.exit(exit_code)
