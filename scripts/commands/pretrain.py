"""``headstart pretrain``: pre-train an encoder without labels and save it as a checkpoint."""

from __future__ import annotations

import argparse

from models import defaults
from scripts.commands import _progress as progress
from scripts.commands import _training as common
from scripts.commands._launch import add_nproc_option, launch


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "pretrain",
        help="pre-train a network on the unlabeled pool and save the starting checkpoint",
        description=(
            "Build the network and pre-train it on the unlabeled pool (no labels, no test or "
            "validation image), or on --pretrain-dataset's images. With --method none the checkpoint holds the random "
            "initialisation the baseline starts from. Fine-tune it with 'headstart finetune'."
        ),
    )
    common.add_data_options(parser)
    common.add_model_options(parser)
    common.add_arch_options(parser)
    common.add_run_options(parser, seed_default=defaults.SEED)
    common.add_pretrain_budget_option(parser)
    common.add_checkpoint_options(parser, writes=True)
    add_nproc_option(parser)
    parser.set_defaults(func=run)


@common.guarded
def run(args: argparse.Namespace) -> int:
    config = common.experiment_from_args(args)
    launched = launch(args)
    if launched is not None:
        return launched

    from models.experiment import load_data, pretrained_start
    from models.nets import check_fits
    from models.stages import save_stage

    with common.training_world(config) as world:
        prepared = load_data(config)
        check_fits(config.arch_config, prepared.data.shape)  # before the plan says anything
        stages = progress.plan(config, pool=len(prepared.splits.pool), labeled=0, variants=())
        with progress.reporting(stages, config.arch, announce=world.main, command="pretrain"):
            model, report = pretrained_start(config, prepared)
        if not world.main:
            return 0  # rank 0 writes the checkpoint
    save_stage(args.out, "pretrained", model, config, prepared, report)
    losses = ", ".join(f"{k} {v[-1]:.4f}" for k, v in report.losses.items() if v) or "none"
    print(
        f"wrote {args.out}: {config.arch} pre-trained with {config.method} on "
        f"{report.num_images} images of {report.dataset} in {report.seconds:.1f} s "
        f"(final loss: {losses})"
    )
    return 0
