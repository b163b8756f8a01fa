"""``headstart build``: pre-train, fine-tune, train the baseline, evaluate and export both."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from models import defaults
from scripts.commands import _progress as progress
from scripts.commands import _training as common
from scripts.commands._launch import add_nproc_option, launch
from scripts.commands._options import add_repository_option
from scripts.errors import CommandError

if TYPE_CHECKING:
    from models.placement import Placement
    from models.pretraining import PretrainReport


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "build",
        help="train both variants of a model and export them to the model repository",
        description=(
            "Pre-train an encoder without labels, fine-tune it, train the same network from "
            "random weights with the same recipe, evaluate both on the held-out test split, "
            "and export both to <repository>/<name>/{pretrained,baseline}: as the next version "
            "of each variant already there (served once promoted, or asked for by number), "
            "or in place of every version with --replace."
        ),
    )
    common.add_data_options(parser)
    common.add_model_options(parser)
    common.add_arch_options(parser)
    common.add_labels_option(parser, defaults.LABELS_PER_CLASS)
    common.add_run_options(parser, seed_default=defaults.SEED)
    common.add_pretrain_budget_option(parser)
    common.add_finetune_budget_option(parser)
    common.add_mode_option(parser, "fixmatch")
    parser.add_argument(
        "--name",
        default=defaults.NAME,
        help=f"model name in the repository, no '-' (default: {defaults.NAME})",
    )
    add_repository_option(parser)
    add_nproc_option(parser)
    placing = parser.add_mutually_exclusive_group()
    placing.add_argument(
        "--replace",
        action="store_true",
        help="replace every version of both variants with the new build (version 1)",
    )
    placing.add_argument(
        "--make-default",
        action="store_true",
        help="make the new version each variant's default at once, rather than trying it "
        "with ?version= or an experiment's arm and promoting it (default: the default "
        "version stays)",
    )
    parser.add_argument(
        "--if-missing",
        action="store_true",
        help="do nothing when the repository already holds both usable variants of --name",
    )
    parser.set_defaults(func=run)


@common.guarded
def run(args: argparse.Namespace) -> int:
    name = common.check_name(args.name)
    repository = args.model_repository or common.default_repository()
    if (
        args.quick
        and args.model_repository is None
        and "HEADSTART_MODEL_REPOSITORY" not in os.environ
    ):
        # A smoke test must not quietly replace the served models with untrained ones.
        raise CommandError(
            f"--quick builds models far from trained: give --model-repository DIR (e.g. "
            f"/tmp/quick) so they do not replace the ones in {repository}/"
        )
    if args.if_missing and _complete(repository, name):
        print(f"{repository}/{name} already holds both variants; nothing to build")
        return 0
    # A folder that cannot take the next version is said before training, not after.
    placements = _placements(repository / name, args)
    config = common.experiment_from_args(args)
    launched = launch(args)
    if launched is not None:
        return launched
    began = time.perf_counter()

    from models.experiment import load_data, run_experiment
    from models.nets import check_fits
    from models.stages import export_trained

    with common.training_world(config) as world:
        prepared = load_data(config)
        check_fits(config.arch_config, prepared.data.shape)  # before the plan says anything
        stages = progress.plan(
            config,
            pool=len(prepared.splits.pool),
            labeled=config.labels_per_class * prepared.data.num_classes,
        )
        with progress.reporting(stages, config.arch, announce=world.main):
            result = run_experiment(config, prepared=prepared)
        if not world.main:
            return 0  # rank 0 evaluates, exports and reports; the others are done
    rows = []
    for trained, report in (
        (result.pretrained, result.pretraining),
        (result.baseline, _no_pretraining()),
    ):
        target, manifest, parity = export_trained(
            trained.model,
            config,
            prepared,
            report,
            repository=repository,
            name=name,
            metrics=trained.test,
            finetune={
                "best_epoch": trained.finetune.best_epoch,
                "epochs_run": len(trained.finetune.history),
                "drift": trained.finetune.drift,
                "lr": trained.finetune.lr,
                "tried": {f"{lr:g}": acc for lr, acc in trained.finetune.tried.items()},
            },
            mode=trained.mode,
            replace=args.replace,
            make_default=args.make_default,
        )
        print(
            f"exported {target} as version {manifest.version} (ONNX Runtime vs torch on "
            f"{parity.num_images} test images: max |dp| {parity.probabilities:.2e})"
        )
        placed = placements.get(manifest.variant)
        if placed is not None and placed.default != manifest.version:
            print(
                f"  {manifest.variant}: version {placed.default} stays the default; try version "
                f"{manifest.version} with ?version={manifest.version} or an experiment's arm, "
                "then promote it (or build with --make-default)"
            )
        rows.append(
            {
                "variant": manifest.variant,
                "method": manifest.pretraining.method,
                "labels_per_class": config.labels_per_class,
                "accuracy": trained.test.accuracy,
                "nll": trained.test.nll,
            }
        )
    print(common.summary_table(rows))
    print(f"built {name} in {time.perf_counter() - began:.1f} s")
    return 0


def _placements(model_dir: Path, args: argparse.Namespace) -> dict[str, Placement]:
    """Where each variant's new version will go (none with ``--replace``: each is version 1)."""
    if args.replace:
        return {}
    from models.placement import plan
    from service.manifest import VARIANTS

    return {
        variant: plan(model_dir / variant, replace=False, make_default=args.make_default)
        for variant in VARIANTS
    }


def _complete(repository: Path, name: str) -> bool:
    """Whether ``repository/name`` holds both variants, verified."""
    from service.repository import scan_repository

    variants = scan_repository(repository).models().get(name, {})
    return all(v in variants for v in ("pretrained", "baseline"))


def _no_pretraining() -> PretrainReport:
    from models.methods import Method
    from models.pretraining import PretrainReport

    return PretrainReport(method=Method.none)
