"""The label-budget study: pre-trained vs baseline over seeds x label budgets (README figures).

    python -m models.label_study --arch mlp --method rbm --labels 10 100 --seeds 0 1 2

Prints one JSON line per run and a summary table (mean and spread of the test accuracy gap).
Pre-training is cached per seed, so extra label budgets cost only fine-tuning.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from models import defaults, methods
from models.experiment import ExperimentConfig, load_data, run_experiment
from models.training import FinetuneResult


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
    parser.add_argument("--lr", type=float, default=None, help="fine-tuning learning rate")
    args = parser.parse_args(argv)
    method = args.method or methods.DEFAULT_METHOD[args.arch]
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    base = ExperimentConfig(dataset=args.dataset, arch=args.arch, method=method, device=args.device)
    if args.quick:
        base = base.quick()
    if args.lr is not None:
        base = replace(base, finetune=replace(base.finetune, lr=args.lr))
    prepared = load_data(base)
    rows: dict[int, list[tuple[float, float]]] = {k: [] for k in args.labels}
    with tempfile.TemporaryDirectory() as scratch:
        cache = args.cache_dir or Path(scratch)
        for seed in args.seeds:
            for k in args.labels:
                config = replace(base, labels_per_class=k, seed=seed)
                began = time.perf_counter()
                result = run_experiment(config, prepared=prepared, cache_dir=cache)
                pre, bl = result.pretrained, result.baseline
                rows[k].append((pre.test.accuracy, bl.test.accuracy))
                line = {
                    "arch": args.arch,
                    "method": method,
                    "labels_per_class": k,
                    "seed": seed,
                    "pretrained_acc": round(pre.test.accuracy, 4),
                    "baseline_acc": round(bl.test.accuracy, 4),
                    "pretrained_nll": round(pre.test.nll, 4),
                    "baseline_nll": round(bl.test.nll, 4),
                    "pretrained_val_acc": round(_best_val(pre.finetune), 4),
                    "baseline_val_acc": round(_best_val(bl.finetune), 4),
                    "pretrain_s": round(result.pretraining.seconds, 1),
                    "total_s": round(time.perf_counter() - began, 1),
                    "drift_pretrained": {n: round(v, 3) for n, v in pre.finetune.drift.items()},
                    "drift_baseline": {n: round(v, 3) for n, v in bl.finetune.drift.items()},
                }
                print(json.dumps(line), flush=True)
    print(f"\n{args.arch}/{method} on {args.dataset}, seeds {args.seeds}")
    print("labels/class  pretrained      baseline        gap (mean, min..max)")
    for k, pairs in rows.items():
        pre_acc = [p for p, _ in pairs]
        base_acc = [b for _, b in pairs]
        gaps = [p - b for p, b in pairs]
        print(
            f"{k:<12}  {_fmt(pre_acc)}  {_fmt(base_acc)}  "
            f"{statistics.mean(gaps):+.4f} ({min(gaps):+.4f}..{max(gaps):+.4f})"
        )
    return 0


def _best_val(result: FinetuneResult) -> float:
    """Validation accuracy at the epoch whose weights were kept."""
    return result.history[result.best_epoch - 1].val_accuracy if result.history else 0.0


def _fmt(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f}±{spread:.4f}"


if __name__ == "__main__":
    raise SystemExit(main())
