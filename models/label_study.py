"""The label-budget study: pre-trained vs baseline over seeds x label budgets (README figures).

    python -m models.label_study --arch cnn --labels 10 --seeds 0 1 2 3 4

Prints one JSON line per run and a summary table: each variant's mean test accuracy, the
mean gap with its range, the paired t-test over seeds, and McNemar's exact test on the
test split for each seed. With no ``--method`` and no budget options it trains the build's
own recipe (:func:`models.experiment.build_recipe`), so the table describes what
``headstart build`` serves. Pre-training is cached per seed, so extra label budgets cost
only fine-tuning.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from models import defaults, methods
from models.evaluate import predict_logits
from models.experiment import (
    ExperimentConfig,
    ExperimentResult,
    Prepared,
    build_recipe,
    load_data,
    run_experiment,
)
from models.modes import DEFAULT_MODE, Mode, SemiConfig
from models.report.stats import paired_test
from models.training import FinetuneConfig, FinetuneResult
from service.statistics import McNemarResult, paired_outcomes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.label_study", description=__doc__)
    parser.add_argument("--dataset", default=defaults.DATASET)
    parser.add_argument("--arch", default=defaults.ARCH)
    parser.add_argument("--method", default=None)
    parser.add_argument("--labels", type=int, nargs="+", default=[defaults.LABELS_PER_CLASS])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="smoke-test budgets")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument(
        "--lr",
        type=float,
        default=None,
        help="one fine-tuning learning rate for both variants (default: each variant's best on "
        "validation of the build's choices)",
    )
    parser.add_argument("--pretrain-epochs", type=int, default=None, help="pre-training epochs")
    parser.add_argument(
        "--finetune",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="set a FinetuneConfig field for both variants, e.g. encoder_lr_scale=0.1 or "
        "lr_choices=3e-4,1e-3,3e-3 (repeatable)",
    )
    parser.add_argument(
        "--mode",
        choices=list(Mode),
        default=None,
        help=f"fine-tuning mode of the pretrained variant (default: {DEFAULT_MODE})",
    )
    parser.add_argument(
        "--semi",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="set a SemiConfig field, e.g. threshold=0.9 or steps_per_epoch=50 (repeatable)",
    )
    args = parser.parse_args(argv)
    method = methods.check_pairing(args.arch, args.method or methods.DEFAULT_METHOD[args.arch])
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    base = build_recipe(
        ExperimentConfig(dataset=args.dataset, arch=args.arch, method=method, device=args.device)
    )
    if args.pretrain_epochs is not None:
        base = replace(base, pretrain=replace(base.pretrain, epochs=args.pretrain_epochs))
    if args.quick:
        base = base.quick()
    if args.lr is not None:
        base = replace(base, finetune=replace(base.finetune, lr=args.lr, lr_choices=()))
    if args.finetune:
        fields = _fields(args.finetune, parser, FinetuneConfig)
        if "lr" in fields:  # one rate asked for: no choosing among the build's
            fields.setdefault("lr_choices", ())
        base = replace(base, finetune=replace(base.finetune, **fields))
    if args.mode is not None:
        base = replace(base, mode=args.mode)
    if args.semi:
        base = replace(base, semi=replace(base.semi, **_fields(args.semi, parser, SemiConfig)))
    prepared = load_data(base)
    rows: dict[int, list[tuple[float, float]]] = {k: [] for k in args.labels}
    tests: dict[int, list[float]] = {k: [] for k in args.labels}
    minutes: list[float] = []
    with tempfile.TemporaryDirectory() as scratch:
        cache = args.cache_dir or Path(scratch)
        for seed in args.seeds:
            for k in args.labels:
                config = replace(base, labels_per_class=k, seed=seed)
                began = time.perf_counter()
                result = run_experiment(config, prepared=prepared, cache_dir=cache)
                seconds = time.perf_counter() - began
                pre, bl = result.pretrained, result.baseline
                rows[k].append((pre.test.accuracy, bl.test.accuracy))
                mcnemar = test_split_mcnemar(result, prepared)
                tests[k].append(mcnemar.p_value)
                if k == args.labels[0]:
                    # Pre-training's own time even when its encoder came from the cache.
                    trained = result.pretraining.seconds + pre.finetune.seconds
                    minutes.append((trained + bl.finetune.seconds) / 60)
                line = {
                    "arch": args.arch,
                    "method": method,
                    "mode": config.mode,
                    "labels_per_class": k,
                    "seed": seed,
                    "pretrained_acc": round(pre.test.accuracy, 4),
                    "baseline_acc": round(bl.test.accuracy, 4),
                    "pretrained_nll": round(pre.test.nll, 4),
                    "baseline_nll": round(bl.test.nll, 4),
                    "pretrained_lr": pre.finetune.lr,
                    "baseline_lr": bl.finetune.lr,
                    "pretrained_val_acc": round(_best_val(pre.finetune), 4),
                    "baseline_val_acc": round(_best_val(bl.finetune), 4),
                    "mcnemar": {
                        "only_pretrained_correct": mcnemar.only_a_correct,
                        "only_baseline_correct": mcnemar.only_b_correct,
                        "p_value": mcnemar.p_value,
                    },
                    "pretrain_s": round(result.pretraining.seconds, 1),
                    "total_s": round(seconds, 1),
                    "drift_pretrained": {n: round(v, 3) for n, v in pre.finetune.drift.items()},
                    "drift_baseline": {n: round(v, 3) for n, v in bl.finetune.drift.items()},
                }
                print(json.dumps(line), flush=True)
    print(f"\n{args.arch}/{method} on {args.dataset}, seeds {args.seeds}")
    print(
        "| labels/class | pretrained | baseline | gap: mean (min..max) | paired t-test p "
        "| McNemar p per seed |\n|---|---|---|---|---|---|"
    )
    for k, pairs in rows.items():
        pre_acc = [p for p, _ in pairs]
        base_acc = [b for _, b in pairs]
        gaps = [p - b for p, b in pairs]
        paired = paired_test(pre_acc, base_acc)
        print(
            f"| {k} | {_fmt(pre_acc)} | {_fmt(base_acc)} | "
            f"{statistics.mean(gaps):+.4f} ({min(gaps):+.4f}..{max(gaps):+.4f}) | "
            f"{paired.p:.2g} | {', '.join(f'{p:.2g}' for p in tests[k])} |"
        )
    print(
        f"\nminutes per seed at {args.labels[0]} labels/class (pre-training, as first run, and "
        f"both fine-tunings; no export): {', '.join(f'{m:.1f}' for m in minutes)}"
    )
    return 0


def test_split_mcnemar(result: ExperimentResult, prepared: Prepared) -> McNemarResult:
    """McNemar's exact test of the two variants on the same test images."""
    images, labels = prepared.test()
    truth = labels.numpy()
    pre = predict_logits(result.pretrained.model, images).argmax(1).numpy()
    base = predict_logits(result.baseline.model, images).argmax(1).numpy()
    return paired_outcomes(truth, pre, base)[2]


def _fields(settings: list[str], parser: argparse.ArgumentParser, of: type) -> dict[str, Any]:
    """``FIELD=VALUE`` settings of the dataclass ``of``, each value a number or a list."""
    known = {f.name for f in dataclasses.fields(of)}
    option = "--finetune" if of is FinetuneConfig else "--semi"
    fields: dict[str, Any] = {}
    for setting in settings:
        name, _, value = setting.partition("=")
        if name not in known:
            parser.error(f"{option} {setting}: no field {name!r} (fields: {', '.join(known)})")
        try:
            numbers = tuple(_number(v) for v in value.split(","))
        except ValueError:
            parser.error(f"{option} {setting}: {value!r} is not a number or a list of numbers")
        fields[name] = numbers if "," in value else numbers[0]
    return fields


def _number(text: str) -> float | int:
    return float(text) if "." in text or "e" in text else int(text)


def _best_val(result: FinetuneResult) -> float:
    """Validation accuracy at the epoch whose weights were kept."""
    return result.best.val_accuracy if result.history else 0.0


def _fmt(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f}±{spread:.4f}"


if __name__ == "__main__":
    raise SystemExit(main())
