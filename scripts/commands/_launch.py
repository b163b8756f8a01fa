"""``--nproc N``: start N data-parallel training processes through torch's own launcher.

The command re-runs itself under ``torch.distributed.run`` (what ``torchrun`` is) with the same
arguments minus ``--nproc``; each worker finds ``WORLD_SIZE`` and friends in its environment and
joins the group (:func:`models.distributed.init_from_env`). Across machines, start the same
command under ``torchrun --nnodes ... --rdzv-endpoint ...`` on each of them instead.
"""

from __future__ import annotations

import argparse
import os

from scripts.errors import CommandError


def add_nproc_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--nproc",
        type=int,
        default=1,
        metavar="N",
        help=(
            "data-parallel training processes on this machine, started with torch's launcher: "
            "gloo on CPU, NCCL on GPU (default: 1)"
        ),
    )


def without_nproc(argv: list[str]) -> list[str]:
    """``argv`` less its ``--nproc N`` / ``--nproc=N``."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            out.append(arg)
    return out


def launch(args: argparse.Namespace) -> int | None:
    """Run the command in ``args.nproc`` workers and return its exit code; ``None`` when this
    process should do the work itself (one process, or already a worker)."""
    if args.nproc < 1:
        raise CommandError(f"--nproc must be at least 1, got {args.nproc}")
    if args.nproc == 1 or "LOCAL_RANK" in os.environ:
        return None
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    # One machine: the workers meet on loopback (a free port) and talk over it.
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    launcher = get_args_parser().parse_args(
        [
            "--nnodes=1",
            f"--nproc-per-node={args.nproc}",
            "--rdzv-backend=c10d",
            "--rdzv-endpoint=127.0.0.1:0",
            "--module",
            "scripts.cli",
            *without_nproc(args.argv),
        ]
    )
    try:
        run(launcher)  # type: ignore[no-untyped-call]
    except ChildFailedError as exc:
        # The launcher stops the other ranks once one fails; the first failure is the cause.
        rank, failure = exc.get_first_failure()
        code = failure.exitcode
        raise CommandError(
            f"training process rank {rank} of {args.nproc} failed with exit code {code} "
            "(its error is above)",
            exit_code=code if 0 < code < 126 else 1,
        ) from None
    return 0
