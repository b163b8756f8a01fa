"""``headstart models``: what a model repository holds and what is wrong with it (``list``),
and, on a running server, loading and unloading models and their history."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from urllib.parse import quote

from scripts.commands._connection import add_connection_options, client, utc
from scripts.commands._options import add_repository_option
from service.repository import scan_repository
from service.settings import Settings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "models",
        help="inspect the model repository",
        description="Inspect the model repository the service would serve, without serving it.",
    )
    actions = parser.add_subparsers(title="actions", dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser(
        "list",
        help="list every model variant with its provenance and test accuracy",
        description=(
            "List every model variant in the repository. Each unusable entry is "
            "reported on stderr with its path and reason; the exit code is 1 if any was found."
        ),
    )
    add_repository_option(listing)
    listing.set_defaults(func=run_list)
    for action, summary in (
        ("load", "load a model from the server's repository again (a new or rebuilt one)"),
        ("unload", "stop serving a model until it is loaded again"),
    ):
        command = actions.add_parser(
            action,
            help=summary,
            description=f"On a running server, {summary}, in every worker (admin token).",
        )
        add_connection_options(command)
        command.add_argument("name", help="the V2 name, <model>-<variant>, e.g. mnist-pretrained")
        command.set_defaults(func=run_change, change=action)
    history = actions.add_parser(
        "history",
        help="the server's latest model loads and unloads",
        description="The server's latest 100 model loads and unloads, oldest first (admin token).",
    )
    add_connection_options(history)
    history.set_defaults(func=run_history)


def run_change(args: argparse.Namespace) -> int:
    client(args).request("POST", f"/v2/repository/models/{quote(args.name, safe='')}/{args.change}")
    print(f"{args.change}ed {args.name} in every worker")
    return 0


def run_history(args: argparse.Namespace) -> int:
    found = client(args).request("GET", "/v1/repository/actions")["actions"]
    if not found:
        print("no loads or unloads yet")
    for action in reversed(found):
        detail = action["detail"].get("reason") or action["detail"].get("onnx_sha256", "")
        print(
            f"{utc(action['at'])}  {action['action']} {action['model']}-{action['variant']} by "
            f"{action['actor']}: {action['outcome']}" + (f" ({detail})" if detail else "")
        )
    return 0


def run_list(args: argparse.Namespace) -> int:
    root: Path = args.model_repository or Settings().model_repository
    listing = scan_repository(root)
    rows = [("MODEL", "VARIANT", "ARCH", "METHOD", "LABELS/CLASS", "TEST ACC", "VERSION")]
    counted = Counter((e.name, e.variant) for e in listing.entries)
    for entry in listing.entries:
        m = entry.manifest
        labels = m.training.labels_per_class
        version = m.version
        if (
            counted[(m.name, m.variant)] > 1
            and listing.defaults.get((m.name, m.variant)) == version
        ):
            version += " (default)"
        rows.append(
            (
                m.name,
                m.variant,
                m.architecture.kind,
                m.pretraining.method,
                "all" if labels is None else str(labels),
                f"{m.test_metrics.accuracy:.4f}",
                version,
            )
        )
    if listing.entries:
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    elif not listing.problems:
        print(f"no models in {root}")
    for problem in listing.problems:
        print(f"problem: {problem}", file=sys.stderr)
    return 1 if listing.problems else 0
