"""``headstart models list``: what a model repository holds, and what is wrong with it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

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


def run_list(args: argparse.Namespace) -> int:
    root: Path = args.model_repository or Settings().model_repository
    listing = scan_repository(root)
    rows = [("MODEL", "VARIANT", "ARCH", "METHOD", "LABELS/CLASS", "TEST ACC", "VERSION")]
    for entry in listing.entries:
        m = entry.manifest
        labels = m.training.labels_per_class
        rows.append(
            (
                m.name,
                m.variant,
                m.architecture.kind,
                m.pretraining.method,
                "all" if labels is None else str(labels),
                f"{m.test_metrics.accuracy:.4f}",
                m.version,
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
