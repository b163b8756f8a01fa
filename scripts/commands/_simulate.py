"""``headstart experiments simulate``: evidence that the experiment statistics are right."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from scripts.commands._connection import add_connection_options, client
from scripts.errors import CommandError


def register(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = actions.add_parser(
        "simulate",
        help="check the statistics by simulation: A/A false positives, A/B power, SRM",
        description=(
            "In-process (the default): run the service's own statistics code on simulated "
            "feedback: --runs A/A experiments watched after every --batch items (always-valid "
            "vs fixed-horizon false-positive rate), A/B runs at accuracies 0.72 and 0.80 "
            "(feedback needed to call the better arm; size your own with 'plan') and the sample-ratio check "
            "on healthy and broken splits. With --live: drive the server at --url with "
            "labelled MNIST digits as traffic and feedback, --runs A/A experiments (the same "
            "variant in both arms) and --ab-runs baseline-vs-pretrained ones."
        ),
    )
    add_connection_options(parser)
    parser.add_argument(
        "--live", action="store_true", help="drive the server at --url instead (admin token)"
    )
    parser.add_argument("--model", default="mnist", help="live: the model (default: mnist)")
    parser.add_argument("--runs", type=int, default=200, help="A/A runs (default: 200)")
    parser.add_argument("--ab-runs", type=int, default=100, help="A/B runs (default: 100)")
    parser.add_argument(
        "--items", type=int, default=4000, help="feedback items per A/A run (default: 4000)"
    )
    parser.add_argument("--batch", type=int, default=50, help="items between looks (default: 50)")
    parser.add_argument(
        "--alpha", type=float, default=0.05, help="significance level (default: 0.05)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--svg", type=Path, help="write the A/A plot here")
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.set_defaults(func=run_simulate)


def run_simulate(args: argparse.Namespace) -> int:
    if args.live:
        from benchmarks import experiment_live

        try:
            figures = experiment_live.run(
                client(args),
                args.model,
                runs=args.runs,
                ab_runs=args.ab_runs,
                items=args.items,
                batch=args.batch,
                alpha=args.alpha,
                seed=args.seed,
            )
        except experiment_live.LiveSimulationError as exc:
            raise CommandError(str(exc)) from None
        experiment_live.print_figures(figures)
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2) + "\n")
        return 0
    figures = in_process(args)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


def in_process(args: argparse.Namespace) -> dict[str, Any]:
    from benchmarks import experiment_simulation as sim

    aa = sim.peeking_aa(
        runs=args.runs, items=args.items, batch=args.batch, alpha=args.alpha, seed=args.seed
    )
    seq_rate, seq_ci = aa.rate(aa.sequential_rejections)
    fixed_rate, fixed_ci = aa.rate(aa.fixed_rejections)
    print(
        f"A/A, in-process: {aa.runs} experiments, accuracy 0.8 in both arms, "
        f"{args.items} feedback items each, looked at after every {args.batch} ({aa.looks} looks), "
        f"alpha {args.alpha:g}"
    )
    print("| test | false positives | rate | 95% interval |")
    print("|---|---|---|---|")
    print(
        f"| always-valid (mSPRT) | {aa.sequential_rejections}/{aa.runs} | {seq_rate:.3f} | "
        f"[{seq_ci[0]:.3f}, {seq_ci[1]:.3f}] |"
    )
    print(
        f"| fixed-horizon z test, peeked | {aa.fixed_rejections}/{aa.runs} | {fixed_rate:.3f} | "
        f"[{fixed_ci[0]:.3f}, {fixed_ci[1]:.3f}] |"
    )
    ab = sim.power_ab(runs=args.ab_runs, batch=args.batch, alpha=args.alpha, seed=args.seed + 1)
    s = ab.summary()
    print(
        f"A/B, in-process: accuracy 0.72 (a) vs 0.80 (b), {ab.runs} experiments: "
        f"feedback items to call b better: median {s['median']:.0f} (quartiles {s['q1']:.0f}"
        f"-{s['q3']:.0f}); undecided after 20000: {ab.undecided}; wrong arm called: {ab.wrong}"
    )
    ramp = sim.ramped_aa(
        runs=args.runs, items=args.items, alpha=args.alpha, batch=args.batch, seed=args.seed + 3
    )
    strata_rate, strata_ci = ramp.rate(ramp.stratified)
    pooled_rate, pooled_ci = ramp.rate(ramp.pooled)
    print(
        f"A/A through a ramp, in-process: {ramp.runs} experiments of {ramp.items} items, the "
        f"challenger's share {ramp.before:.0%} then {ramp.after:.0%} while accuracy falls from "
        f"{ramp.accuracies[0]:g} to {ramp.accuracies[1]:g} in both arms: false positives "
        f"{ramp.stratified}/{ramp.runs} ({strata_rate:.3f}, [{strata_ci[0]:.3f}, "
        f"{strata_ci[1]:.3f}]) compared within periods, {ramp.pooled}/{ramp.runs} "
        f"({pooled_rate:.3f}) pooled"
    )
    srm = sim.sample_ratio_check(seed=args.seed + 2)
    print(
        f"SRM, in-process: {srm.runs} splits of {srm.units} units at 1:1: flagged "
        f"{srm.healthy_flagged} healthy; {srm.broken_flagged} with {srm.loss:.0%} of arm b's "
        "exposures lost"
    )
    if args.svg:
        args.svg.write_text(sim.svg_plot(aa, args.batch) + "\n")
        print(f"wrote {args.svg}")
    return {
        "aa": {
            "runs": aa.runs,
            "looks": aa.looks,
            "alpha": aa.alpha,
            "sequential": aa.sequential_rejections,
            "fixed": aa.fixed_rejections,
            "sequential_interval": seq_ci,
            "fixed_interval": fixed_ci,
        },
        "ab": {
            "runs": ab.runs,
            "needed": ab.needed,
            "undecided": ab.undecided,
            "wrong": ab.wrong,
            **s,
        },
        "ramp": {
            "runs": ramp.runs,
            "items": ramp.items,
            "before": ramp.before,
            "after": ramp.after,
            "accuracies": list(ramp.accuracies),
            "alpha": ramp.alpha,
            "stratified": ramp.stratified,
            "stratified_interval": strata_ci,
            "pooled": ramp.pooled,
            "pooled_interval": pooled_ci,
        },
        "srm": {
            "runs": srm.runs,
            "units": srm.units,
            "healthy_flagged": srm.healthy_flagged,
            "broken_flagged": srm.broken_flagged,
            "loss": srm.loss,
        },
    }
