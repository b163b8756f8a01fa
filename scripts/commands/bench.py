"""``headstart bench``: serving speed against ONNX Runtime alone and a minimal Flask stack."""

from __future__ import annotations

import argparse
from pathlib import Path

from scripts.commands._lists import positive_ints
from scripts.commands._options import add_repository_option
from scripts.errors import CommandError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="measure serving latency and throughput against two references",
        description=(
            "Start the service under gunicorn with the production configuration (workers, "
            "threads and the rest from HEADSTART_* variables) and a minimal Flask + gunicorn + "
            "onnxruntime endpoint with the same workers, drive both with wrk (or a Python "
            "client when wrk is not installed) and time ONNX Runtime in-process on the same "
            "images; print the figures, their ratios and the targets, and optionally write JSON."
        ),
    )
    add_repository_option(parser)
    parser.add_argument(
        "--model", help="model to measure (default: the first in the repository by name)"
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=10.0,
        metavar="S",
        help="seconds of load per scenario, concurrency and server (default: 10)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=5,
        metavar="N",
        help=(
            "split each --duration into N rounds the servers take in turn; report the median "
            "round (default: 5)"
        ),
    )
    parser.add_argument(
        "--concurrency",
        type=positive_ints("integers", "every concurrency must be 1 or more"),
        default=(1, 8, 32),
        metavar="N,N,...",
        help="open connections to measure at (default: 1,8,32)",
    )
    parser.add_argument(
        "--scenarios",
        type=_name_list,
        metavar="NAME,...",
        help=(
            "scenarios to run (default: all: classify, classify-batch64, embed, compare, "
            "v2-infer-binary, v2-infer-binary-batch64)"
        ),
    )
    parser.add_argument(
        "--loadgen",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="load generator (default: auto, wrk when installed)",
    )
    parser.add_argument(
        "--soak",
        type=float,
        default=30.0,
        metavar="S",
        help="seconds of classify at the highest concurrency, counting failures; 0 skips (default: 30)",
    )
    parser.add_argument(
        "--batching",
        type=_batching,
        default="8,0",
        metavar="SIZE,WAIT_MS|off",
        help=(
            "dynamic batching to compare with the service as configured, on single-image "
            "classify and V2 infer; off skips the comparison (default: 8,0)"
        ),
    )
    parser.add_argument(
        "--experiments",
        action="store_true",
        help=(
            "instead of the scenarios: classify routed through an experiment against plain "
            "classify (at the highest --concurrency up to 8), and 1,000 feedback items in one request"
        ),
    )
    parser.add_argument(
        "--grpc",
        action="store_true",
        help=(
            "instead of the scenarios: single-image V2 inference over gRPC against V2 REST "
            "with binary tensors, in alternating rounds at each --concurrency (Python clients)"
        ),
    )
    parser.add_argument("--out", type=Path, metavar="FILE", help="write the report as JSON here")
    parser.set_defaults(func=run)


def _name_list(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def _batching(text: str) -> object:
    from benchmarks.run import Batching

    if text == "off":
        return None
    try:
        size, wait = text.split(",")
        found = Batching(int(size), float(wait))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not SIZE,WAIT_MS or off") from None
    if found.max_size < 2 or found.max_wait_ms < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: SIZE must be 2 or more, WAIT_MS 0 or more")
    return found


def run(args: argparse.Namespace) -> int:
    from benchmarks.run import BenchConfig, BenchError, write
    from benchmarks.run import run as bench
    from service.settings import Settings

    if args.duration <= 0:
        raise CommandError(f"--duration: must be more than 0 seconds (got {args.duration:g})")
    if args.rounds < 1:
        raise CommandError(f"--rounds: must be 1 or more (got {args.rounds})")
    if args.soak < 0:
        raise CommandError(f"--soak: must be 0 or more seconds (got {args.soak:g})")
    repository = args.model_repository or Settings().model_repository
    if not repository.is_dir():
        raise CommandError(
            f"model repository {repository} does not exist or is not a directory "
            "(build the default models with `headstart build`, or pass --model-repository)"
        )
    if args.experiments:
        return _experiments(args, repository)
    if args.grpc:
        return _grpc(args, repository)
    config = BenchConfig(
        repository=repository,
        model=args.model,
        duration=args.duration,
        rounds=args.rounds,
        concurrency=args.concurrency,
        scenarios=args.scenarios,
        loadgen=args.loadgen,
        soak=args.soak,
        batching=args.batching,
        warmup=min(1.0, args.duration),
    )
    try:
        result = bench(config)
    except BenchError as exc:
        raise CommandError(str(exc)) from None
    if args.out is not None:
        write(result, args.out)
        print(f"wrote {args.out}")
    return 0


def _experiments(args: argparse.Namespace, repository: Path) -> int:
    import json

    from benchmarks import experiments_bench, loadgen
    from benchmarks.run import BenchError

    try:
        result = experiments_bench.run(
            repository,
            args.model,
            duration=args.duration,
            rounds=args.rounds,
            concurrency=min(8, max(args.concurrency)),
            tool=loadgen.pick_tool(args.loadgen),
        )
    except (BenchError, FileNotFoundError) as exc:
        raise CommandError(str(exc)) from None
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


def _grpc(args: argparse.Namespace, repository: Path) -> int:
    import json

    from benchmarks import grpc_bench
    from benchmarks.run import BenchError

    try:
        result = grpc_bench.run(
            repository,
            args.model,
            duration=args.duration,
            rounds=args.rounds,
            concurrency=args.concurrency,
        )
    except BenchError as exc:
        raise CommandError(str(exc)) from None
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0
