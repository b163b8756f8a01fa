"""``headstart experiments plan``: how much labelled feedback an accuracy experiment needs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from scripts.errors import CommandError


def register(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = actions.add_parser(
        "plan",
        help="labelled feedback items per arm to detect an accuracy difference",
        description=(
            "Size an accuracy experiment before it starts: from the control's accuracy "
            "(--base), the smallest difference worth finding (--mde), the level and the power, "
            "the labelled feedback items each arm needs, for the fixed-horizon z test (read "
            "once, at that size) and for the always-valid test the service runs (watched "
            "after every --batch items), the latter by simulation on the service's own code. "
            "Create the experiment with the same --mde: it is the test's mixing scale."
        ),
    )
    parser.add_argument(
        "--base", type=float, required=True, help="the control's accuracy, e.g. 0.91"
    )
    parser.add_argument(
        "--mde", type=float, required=True, help="smallest difference worth finding, e.g. 0.02"
    )
    parser.add_argument(
        "--alpha", type=float, default=0.05, help="significance level (default: 0.05)"
    )
    parser.add_argument(
        "--power", type=float, default=0.8, help="chance of finding --mde (default: 0.8)"
    )
    parser.add_argument(
        "--arms", type=int, default=2, help="arms, the control included (default: 2)"
    )
    parser.add_argument(
        "--runs", type=int, default=100, help="simulated experiments (default: 100)"
    )
    parser.add_argument("--batch", type=int, default=50, help="items between looks (default: 50)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--json", type=Path, help="write the plan here")
    parser.set_defaults(func=run_plan)


def _check(args: argparse.Namespace) -> None:
    if not 0 < args.base < 1:
        raise CommandError(f"--base is an accuracy between 0 and 1, got {args.base:g}", 2)
    if not 0 < args.mde < 1 - args.base:
        raise CommandError(
            f"--mde must be above 0 and leave the challenger's accuracy under 1 "
            f"(--base {args.base:g} leaves up to {1 - args.base:g}), got {args.mde:g}",
            2,
        )
    if not 0 < args.alpha < 0.5:
        raise CommandError(f"--alpha must be between 0 and 0.5, got {args.alpha:g}", 2)
    if not 0.5 <= args.power < 1:
        raise CommandError(f"--power must be at least 0.5 and under 1, got {args.power:g}", 2)
    if args.arms < 2:
        raise CommandError(f"--arms counts the control too: at least 2, got {args.arms}", 2)
    if args.runs < 10 or args.batch < 1:
        raise CommandError("--runs must be at least 10 and --batch at least 1", 2)


def run_plan(args: argparse.Namespace) -> int:
    _check(args)
    from benchmarks.experiment_simulation import plan

    found = plan(
        args.base,
        args.mde,
        alpha=args.alpha,
        power=args.power,
        arms=args.arms,
        runs=args.runs,
        batch=args.batch,
        seed=args.seed,
    )
    shared = f" ({found.alpha_each:.3g} per contrast)" if args.arms > 2 else ""
    print(
        f"accuracy {found.base:g} (control) against {found.base + found.mde:g}, "
        f"alpha {found.alpha:g}{shared}, power {found.power:g}"
    )
    print(
        f"fixed-horizon z test, read once at its size: {found.fixed_per_arm:,} labelled "
        f"items per arm"
    )
    s = found.simulated
    if found.sequential_per_arm is None:
        print(
            f"always-valid test, watched every {args.batch} items: fewer than {found.power:.0%} "
            f"of {s.runs} simulated experiments called the challenger better within "
            f"{20 * found.fixed_per_arm:,} items per arm"
        )
    else:
        print(
            f"always-valid test, watched every {args.batch} items: {found.sequential_per_arm:,} "
            f"labelled items per arm ({found.power:.0%} of {s.runs} simulated experiments had "
            f"called the challenger better by then; {s.wrong} called the wrong arm)"
        )
    if args.json:
        record = {
            "base": found.base,
            "mde": found.mde,
            "alpha": found.alpha,
            "alpha_each": found.alpha_each,
            "power": found.power,
            "fixed_per_arm": found.fixed_per_arm,
            "sequential_per_arm": found.sequential_per_arm,
            "runs": s.runs,
            "batch": args.batch,
            "wrong": s.wrong,
            "undecided": s.undecided,
        }
        args.json.write_text(json.dumps(record, indent=2) + "\n")
    return 0
