"""``headstart evaluate``: test-split metrics of a fine-tuned checkpoint."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from scripts.commands import _training as common


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="measure a fine-tuned checkpoint on the held-out test split",
        description="Accuracy, NLL and per-class accuracy on the test split no step trained on.",
    )
    parser.add_argument(
        "--checkpoint", type=Path, required=True, metavar="FILE", help="a finetune checkpoint"
    )
    parser.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="auto", help="(default: auto)"
    )
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
    parser.set_defaults(func=run)


@common.guarded
def run(args: argparse.Namespace) -> int:
    from models.experiment import load_data
    from models.stages import open_stage, report_of, test_metrics

    checkpoint, config = open_stage(args.checkpoint, args.device, "finetuned")
    metrics = test_metrics(checkpoint.model, load_data(config))
    if args.json:
        print(json.dumps(metrics.as_dict()))
        return 0
    method = report_of(checkpoint).method
    print(
        common.summary_table(
            [
                {
                    "variant": "baseline" if method == "none" else "pretrained",
                    "method": method,
                    "labels_per_class": config.labels_per_class,
                    "accuracy": metrics.accuracy,
                    "nll": metrics.nll,
                }
            ]
        )
    )
    names = checkpoint.class_names
    per_class = "  ".join(
        f"{n}:{a:.3f}" for n, a in zip(names, metrics.per_class_accuracy, strict=True)
    )
    print(f"per-class accuracy ({metrics.num_examples} test images): {per_class}")
    return 0
