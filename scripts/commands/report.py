"""``headstart report``: run the pre-trained-vs-baseline sweep and write the evidence report."""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path

from models import defaults
from models.report.budgets import BUDGETS, PUBLIC_BUDGETS
from scripts.commands import _training as common
from scripts.errors import CommandError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    expectations = "; ".join(f"{name}: {BUDGETS[name].expected}" for name in PUBLIC_BUDGETS)
    parser = subparsers.add_parser(
        "report",
        help="measure how pre-training changes accuracy and write an HTML/Markdown report",
        description=(
            "Train every pre-trained variant and its paired baseline over label budgets, "
            "seeds, MLP depths and fine-tuning optimisers, the transfer panel (a CNN "
            "pre-trained on another task or data set) and the 2 x 2 panel (pre-training x "
            "semi-supervised fine-tuning, with augmentation); cache each finished run (an "
            "interrupted report resumes); write report.html (self-contained), report.md, "
            f"results.csv and the figures as PNG. Wall time: {expectations}."
        ),
    )
    parser.add_argument(
        "--dataset",
        default=defaults.DATASET,
        metavar="SPEC",
        help=f"image set, as for 'headstart build' (default: {defaults.DATASET})",
    )
    common.add_pretrain_dataset_option(parser)
    parser.add_argument(
        "--budget",
        choices=tuple(BUDGETS),
        default="quick",
        metavar="{" + ",".join(PUBLIC_BUDGETS) + "}",
        help="size of the sweep and of every run in it (default: quick)",
    )
    parser.add_argument(
        "--seeds",
        type=int,
        default=None,
        metavar="N",
        help="seeds per setting, at least 2 (default: 5 for quick, 10 for full)",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("reports"), metavar="DIR",
        help="output folder; its cache/ holds finished runs (default: reports)",
    )  # fmt: skip
    parser.add_argument(
        "--split-seed",
        type=int,
        default=defaults.SPLIT_SEED,
        help=f"seed of the test/validation/pool split (default: {defaults.SPLIT_SEED})",
    )
    common.add_device_option(parser)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        metavar="N",
        help=(
            "torch CPU threads; the sweep's small nets gain little from more, and lose much "
            "on a busy machine (default: 1)"
        ),
    )
    parallel = parser.add_argument_group("sharing the sweep between processes or machines")
    parallel.add_argument(
        "--shard",
        default=None,
        metavar="I/N",
        help=(
            "train only slice I (0..N-1) of N of the sweep into --out's cache and write no "
            "report; a later run without --shard assembles the report from the cache"
        ),
    )
    parallel.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="train the sweep as N shards in N local processes, then assemble (default: 1)",
    )
    parser.set_defaults(func=run)


@common.guarded
def run(args: argparse.Namespace) -> int:
    budget = BUDGETS[args.budget]
    seeds = budget.seeds if args.seeds is None else args.seeds
    if seeds < 2:
        raise CommandError(f"--seeds must be at least 2 for confidence intervals, got {seeds}")
    if args.threads < 1:
        raise CommandError(f"--threads must be at least 1, got {args.threads}")
    if args.out.exists() and not args.out.is_dir():
        raise CommandError(f"--out {args.out}: exists and is not a folder")
    if args.jobs < 1:
        raise CommandError(f"--jobs must be at least 1, got {args.jobs}")
    if args.jobs > 1 and args.shard is not None:
        raise CommandError("--jobs and --shard exclude each other: --jobs starts the shards")
    from models.report.shard import Shard

    shard = Shard.parse(args.shard) if args.shard is not None else None
    # One line per run, not per epoch: the sweep's progress bar and run lines say enough.
    logging.getLogger("models").setLevel(logging.WARNING)
    logging.getLogger("models.report").setLevel(logging.INFO)
    print(f"headstart report --budget {budget.name}: expect {budget.expected}.", flush=True)

    import torch

    from models.report.build import build_report
    from models.report.measure import ReportOptions

    torch.set_num_threads(args.threads)
    if args.jobs > 1:
        _run_jobs(args)
    options = ReportOptions(
        out=args.out,
        budget=budget,
        dataset=args.dataset,
        pretrain_dataset=args.pretrain_dataset,
        seeds=seeds,
        split_seed=args.split_seed,
        device=args.device,
        command=shlex.join(["headstart", *sys.argv[1:]]) if _from_shell() else _command(args),
    )
    if shard is not None:
        from models.report.shard import train_shard

        done = train_shard(options, shard)
        print(
            f"shard {done.shard}: {done.runs} of {done.total} runs in {options.out / 'cache'} "
            f"({done.trained} trained, {done.cached} from the cache, {done.seconds / 60:.1f} min)"
        )
        return 0
    files = build_report(options)
    print(
        f"wrote {files.html}, {files.markdown}, {files.csv} and {len(files.figures)} figures "
        f"({files.trained} runs trained, {files.cached} from the cache, "
        f"{files.seconds / 60:.1f} min)"
    )
    return 0


def _from_shell() -> bool:
    return Path(sys.argv[0]).name == "headstart"


def _command(args: argparse.Namespace) -> str:
    parts = ["headstart", "report", "--dataset", args.dataset, "--budget", args.budget]
    if args.pretrain_dataset is not None:
        parts += ["--pretrain-dataset", args.pretrain_dataset]
    if args.seeds is not None:
        parts += ["--seeds", str(args.seeds)]
    return shlex.join([*parts, "--out", str(args.out)])


def _run_jobs(args: argparse.Namespace) -> None:
    """Train the shards 0/N..N-1/N in N local processes and wait for all of them."""
    import os
    import subprocess

    argv = _without(args.argv, "--jobs")
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "scripts.cli", *argv, "--shard", f"{i}/{args.jobs}"],
            env={**os.environ, "OMP_NUM_THREADS": str(args.threads)},
        )
        for i in range(args.jobs)
    ]
    failed = [(i, code) for i, code in enumerate(child.wait() for child in children) if code]
    if failed:
        shards = ", ".join(f"{i}/{args.jobs} (exit {code})" for i, code in failed)
        raise CommandError(f"report shard {shards} failed; rerun to resume from the cache")


def _without(argv: list[str], option: str) -> list[str]:
    """``argv`` less ``option VALUE`` and ``option=VALUE``."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == option:
            skip = True
        elif not arg.startswith(option + "="):
            out.append(arg)
    return out
