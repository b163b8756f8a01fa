"""Options and plumbing shared by the training sub-commands (build, pretrain, finetune, ...).

Nothing here imports torch at module level: ``headstart --help`` and ``headstart serve``
import every command module.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from models import defaults, methods
from scripts.commands._lists import positive_ints
from scripts.commands._options import stated
from scripts.commands._progress import LOG_FORMAT
from scripts.errors import CommandError

if TYPE_CHECKING:
    from models.distributed import World
    from models.experiment import ExperimentConfig

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.]*$")


def add_data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dataset",
        default=defaults.DATASET,
        metavar="SPEC",
        help=(
            "mnist-5k, digits, idx:DIR, folder:DIR, or download:{mnist,fashion-mnist,kmnist}, "
            "each optionally followed by :CLASSES to keep only those classes, e.g. "
            f"mnist-5k:5-9 (default: {defaults.DATASET})"
        ),
    )
    add_pretrain_dataset_option(parser)
    parser.add_argument(
        "--split-seed",
        type=int,
        default=defaults.SPLIT_SEED,
        help=f"seed of the test/validation/pool split (default: {defaults.SPLIT_SEED})",
    )


def add_pretrain_dataset_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pretrain-dataset",
        default=None,
        metavar="SPEC",
        help=(
            "pre-train on this data set's images instead of the target's unlabeled pool (any "
            "--dataset spec; brought to the target's size, channels, polarity and framing; "
            "the target's test and validation images are always left out). The 'supervised' "
            "method needs it and trains on its labels (default: the target's own pool)"
        ),
    )


def add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--arch",
        choices=defaults.ARCHS,
        default=defaults.ARCH,
        help=f"network (default: {defaults.ARCH})",
    )
    default_methods = ", ".join(f"{a}: {m}" for a, m in methods.DEFAULT_METHOD.items())
    parser.add_argument(
        "--method",
        default=None,
        metavar="METHOD",
        help=f"pre-training, one of {methods.pairs()} (default: per arch, {default_methods})",
    )


_sizes = positive_ints("sizes", "sizes must be positive")


def add_arch_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("architecture sizes (defaults in models/nets.py)")
    group.add_argument(
        "--hidden", type=_sizes, default=None, metavar="N,N,...", help="mlp hidden layer widths"
    )
    group.add_argument(
        "--activation", choices=("sigmoid", "relu", "tanh"), default=None, help="mlp activation"
    )
    group.add_argument(
        "--channels", type=_sizes, default=None, metavar="N,N,...", help="cnn conv channels"
    )
    group.add_argument("--dense", type=int, default=None, metavar="N", help="cnn embedding width")


def add_run_options(parser: argparse.ArgumentParser, *, seed_default: int | None) -> None:
    shown = "the checkpoint's" if seed_default is None else str(seed_default)
    parser.add_argument(
        "--seed",
        type=int,
        default=seed_default,
        help=f"seed of the labeled draw, initialisation and training (default: {shown})",
    )
    add_device_option(parser)
    parser.add_argument(
        "--quick", action="store_true", help="shrink every budget to a smoke test's"
    )


def add_device_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="where to train; auto takes a GPU when there is one (default: auto)",
    )


def add_labels_option(parser: argparse.ArgumentParser, default: int | None) -> None:
    shown = "the checkpoint's" if default is None else str(default)
    parser.add_argument(
        "--labels-per-class",
        type=int,
        default=default,
        metavar="K",
        help=f"labeled training images per class, drawn from the pool (default: {shown})",
    )


def add_checkpoint_options(
    parser: argparse.ArgumentParser, *, reads: str | None = None, writes: bool = False
) -> None:
    """``--checkpoint FILE`` (described by ``reads``) and/or ``--out FILE``, both required."""
    if reads is not None:
        parser.add_argument(
            "--checkpoint", type=Path, required=True, metavar="FILE", help=f"a {reads} checkpoint"
        )
    if writes:
        parser.add_argument(
            "--out",
            type=Path,
            required=True,
            metavar="FILE",
            help="checkpoint to write (.safetensors)",
        )


def add_pretrain_budget_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pretrain-epochs",
        type=int,
        default=None,
        metavar="N",
        help="pre-training epochs (per layer for the greedy methods) "
        + stated("the method's, registered in models/methods.py"),
    )


def add_finetune_budget_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-epochs",
        type=int,
        default=None,
        metavar="N",
        help="most fine-tuning epochs, early stopping on validation loss "
        + stated("the recipe's, in models/training.py"),
    )


def add_mode_option(parser: argparse.ArgumentParser, default: str) -> None:
    from models.modes import Mode

    parser.add_argument(
        "--mode",
        choices=list(Mode),
        default=None,
        help="how the pretrained variant is fine-tuned: supervised (the labels alone) or "
        "fixmatch (the labels and the unlabeled pool together); the baseline is always "
        "supervised " + stated(default),
    )


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name) or len(name) > 64:
        raise CommandError(
            f"--name {name!r} is not a valid model name (lower-case letters, digits, '_' and "
            "'.', starting with a letter or digit; no '-')"
        )
    return name


def experiment_from_args(args: argparse.Namespace) -> ExperimentConfig:
    """Build the experiment config the data/model/run options describe."""
    from models.data import SplitConfig
    from models.experiment import ExperimentConfig, build_recipe
    from models.nets import CNNConfig, MLPConfig

    method = args.method or methods.DEFAULT_METHOD[args.arch]
    mlp = {"hidden": args.hidden, "activation": args.activation}
    cnn = {"channels": args.channels, "dense": args.dense}
    config = build_recipe(
        ExperimentConfig(
            dataset=args.dataset,
            pretrain_dataset=args.pretrain_dataset,
            arch=args.arch,
            method=method,
            mlp=MLPConfig(**{k: v for k, v in mlp.items() if v is not None}),
            cnn=CNNConfig(**{k: v for k, v in cnn.items() if v is not None}),
            labels_per_class=(
                defaults.LABELS_PER_CLASS
                if getattr(args, "labels_per_class", None) is None
                else args.labels_per_class
            ),
            seed=args.seed,
            split=SplitConfig(split_seed=args.split_seed),
            device=args.device,
        )
    )
    return apply_budgets(config, args) if not args.quick else apply_budgets(config.quick(), args)


def apply_budgets(config: ExperimentConfig, args: argparse.Namespace) -> ExperimentConfig:
    from dataclasses import replace

    if getattr(args, "pretrain_epochs", None) is not None:
        config = replace(config, pretrain=replace(config.pretrain, epochs=args.pretrain_epochs))
    if getattr(args, "max_epochs", None) is not None:
        config = replace(config, finetune=replace(config.finetune, max_epochs=args.max_epochs))
    if getattr(args, "mode", None) is not None:
        config = replace(config, mode=args.mode)
    return config


def configure_logging() -> None:
    """One log line per epoch on stderr, unless the host application set up logging."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, stream=sys.stderr)
    elif root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)


TRAINING_PACKAGES = frozenset(
    {
        "torch",
        "onnx",
        "onnxscript",
        "mlxtend",
        "sklearn",
        "matplotlib",
        "safetensors",
        "tqdm",
        "scipy",
    }
)
"""What the ``train`` extra adds to the serving install."""


def guarded(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn the offline side's user errors into one-line ``CommandError``s."""

    @functools.wraps(func)
    def wrapper(args: argparse.Namespace) -> int:
        from models.errors import ModelsError

        configure_logging()
        try:
            return func(args)
        except ModelsError as exc:
            raise CommandError(str(exc)) from None
        except ModuleNotFoundError as exc:
            if exc.name not in TRAINING_PACKAGES:
                raise
            # The serving install (what `make serve` makes) has no training stack.
            raise CommandError(
                f"training needs {exc.name}, which this environment lacks: install the train "
                "extra, e.g. .venv/bin/pip install -e '.[train]'"
            ) from None

    return wrapper


def default_repository() -> Path:
    from service.settings import Settings

    return Settings().model_repository


def summary_table(rows: list[dict[str, Any]]) -> str:
    """Aligned rows of ``variant, method, labels, test accuracy, NLL``."""
    table = [("VARIANT", "METHOD", "LABELS/CLASS", "TEST ACC", "TEST NLL")]
    table += [
        (
            r["variant"],
            r["method"],
            str(r["labels_per_class"]),
            f"{r['accuracy']:.4f}",
            f"{r['nll']:.4f}",
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in table
    )


@contextlib.contextmanager
def training_world(config: ExperimentConfig) -> Iterator[World]:
    """Join the torchrun process group (if this is one of its workers) for the training.

    Ranks other than 0 log warnings only and show no progress bar; the group is left when the
    training is done, so rank 0 exports alone.
    """
    from models import distributed
    from models.device import resolve_device

    world = distributed.init_from_env(resolve_device(config.device))
    if not world.main:
        logging.getLogger("models").setLevel(logging.WARNING)
    try:
        yield world
    finally:
        distributed.shutdown()
