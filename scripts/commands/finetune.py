"""``headstart finetune``: fine-tune a ``pretrain`` checkpoint on the labeled draw."""

from __future__ import annotations

import argparse
import dataclasses

from scripts.commands import _training as common
from scripts.commands._launch import add_nproc_option, launch


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "finetune",
        help="fine-tune a pre-trained (or random-init) checkpoint with labels",
        description=(
            "Fine-tune the checkpoint 'headstart pretrain' wrote, with the one recipe both "
            "variants share, early-stopping on the validation split. The data set, split and "
            "architecture come from the checkpoint."
        ),
    )
    common.add_checkpoint_options(parser, reads="pretrain", writes=True)
    common.add_labels_option(parser, None)
    common.add_run_options(parser, seed_default=None)
    common.add_finetune_budget_option(parser)
    common.add_mode_option(parser, "the checkpoint's, fixmatch from headstart pretrain")
    add_nproc_option(parser)
    parser.set_defaults(func=run)


@common.guarded
def run(args: argparse.Namespace) -> int:
    from models.experiment import load_data, train_variant
    from models.modes import Mode
    from models.stages import open_stage, report_of, save_stage

    launched = launch(args)
    if launched is not None:
        return launched
    checkpoint, config = open_stage(args.checkpoint, args.device, "pretrained")
    if args.labels_per_class is not None:
        config = dataclasses.replace(config, labels_per_class=args.labels_per_class)
    if args.seed is not None:
        config = dataclasses.replace(config, seed=args.seed)
    if args.quick:  # the pre-training budget is history by now; only fine-tuning shrinks
        quick = config.quick()
        config = dataclasses.replace(config, finetune=quick.finetune, semi=quick.semi)
    config = common.apply_budgets(config, args)
    report = report_of(checkpoint)
    variant = "baseline" if report.method == "none" else "pretrained"
    with common.training_world(config) as world:
        prepared = load_data(config)
        result = train_variant(
            checkpoint.model,
            config,
            prepared,
            variant=variant,
            method=report.method,
            mode=config.mode if variant == "pretrained" else Mode.supervised,
        )
        if not world.main:
            return 0  # rank 0 writes the checkpoint
    save_stage(
        args.out, "finetuned", result.model, config, prepared, report, result.finetune, result.mode
    )
    drift = ", ".join(f"{k} {v:.3f}" for k, v in result.finetune.drift.items())
    print(
        f"wrote {args.out}: {variant} ({report.method}, {result.mode} fine-tuning), "
        f"{config.labels_per_class} labels/class, "
        f"best epoch {result.finetune.best_epoch}/{len(result.finetune.history)}, "
        f"test accuracy {result.test.accuracy:.4f}; weight drift: {drift}"
    )
    return 0
