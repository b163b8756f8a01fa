"""The runs of a report: one fine-tuned variant each, paired with its baseline by seed."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from typing import Any

from models.data import SplitConfig
from models.experiment import ExperimentConfig
from models.methods import Method
from models.modes import Mode, SemiConfig
from models.nets import CNNConfig, MLPConfig
from models.pretraining import PretrainConfig
from models.report.budgets import ALL, HISTORICAL_OPTIMIZER, MAIN_OPTIMIZER, OPTIMIZERS, Budget
from models.training import NO_AUGMENTATION, FinetuneConfig

CACHE_FORMAT = "headstart-report-run/1"
STUDIES = ("labels", "depth", "optimizer", "historical")


@dataclass(frozen=True, order=True)
class RunSpec:
    """One variant to train: architecture, depth, pre-training, optimiser, labels and seed."""

    arch: str
    depth: int
    """Hidden layers of an MLP; conv blocks of a CNN."""
    method: Method
    seed: int
    optimizer: str
    labels_per_class: int
    init: str = "sound"
    """``sound`` (Glorot/He, as built) or ``naive``: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), the
    pre-2010 default, for the historical setting only."""
    dataset: str = ""
    """The target data set; "" is the report's."""
    pretrain_dataset: str = ""
    """The data set pre-training sees; "" is the target's own unlabeled pool."""
    mode: Mode = Mode.supervised
    """How the run is fine-tuned (:mod:`models.modes`): ``fixmatch`` learns from the
    unlabeled pool too, from whatever start ``method`` gives it."""
    augment: bool = False
    """Fine-tune with the build's augmentation (``FinetuneConfig``'s defaults) instead of
    none, as the 2 x 2 panel does for all its cells."""

    @property
    def variant(self) -> str:
        return "baseline" if self.method == "none" else "pretrained"

    @property
    def name(self) -> str:
        naive = "-naive" if self.init == "naive" else ""
        target = f"-on-{self.dataset}" if self.dataset else ""
        source = f"-from-{self.pretrain_dataset}" if self.pretrain_dataset else ""
        mode = "" if self.mode is Mode.supervised else f"-{self.mode}"
        augmented = "-aug" if self.augment else ""
        return (
            f"{self.arch}{self.depth}-{self.method}{source}{mode}-{self.optimizer}{augmented}"
            f"-{self.labels_per_class}pc-seed{self.seed}{naive}{target}"
        )

    def baseline(self) -> RunSpec:
        """The run this one is compared with: same everything (the augmentation too), no
        pre-training, fine-tuned on the labels alone."""
        return replace(self, method=Method.none, pretrain_dataset="", mode=Mode.supervised)


def experiment(spec: RunSpec, budget: Budget, dataset: str, split_seed: int) -> ExperimentConfig:
    """The core experiment config that trains ``spec`` under ``budget``."""
    # No augmentation, as in the pre-training literature: pre-training is the only prior.
    # The 2 x 2 panel keeps FinetuneConfig's augmentation, as the served pair does.
    plain = {} if spec.augment else NO_AUGMENTATION
    recipe: dict[str, Any] = {**plain, **OPTIMIZERS[spec.optimizer]}
    finetune = FinetuneConfig(
        batch_size=budget.batch_size,
        max_epochs=budget.max_epochs,
        patience=budget.patience,
        min_steps_per_epoch=budget.min_steps_per_epoch,
        **recipe,
    )
    pretrain = PretrainConfig(epochs=budget.pretrain_epochs) if spec.method != "none" else None
    return ExperimentConfig(
        dataset=spec.dataset or dataset,
        pretrain_dataset=spec.pretrain_dataset or None,
        arch=spec.arch,
        method=spec.method,
        mlp=MLPConfig(hidden=(budget.mlp_width,) * spec.depth, activation="sigmoid"),
        cnn=CNNConfig(channels=budget.cnn_channels, dense=budget.cnn_dense),
        labels_per_class=spec.labels_per_class,
        seed=spec.seed,
        split=SplitConfig(split_seed=split_seed),
        pretrain=pretrain or PretrainConfig(),
        finetune=finetune,
        mode=spec.mode,
        semi=budget.semi if spec.mode.unlabeled else SemiConfig(),
    )


def run_key(config: ExperimentConfig, init: str = "sound") -> str:
    """Hash of everything that shapes a run's result (not the device it ran on)."""
    shaping = config.to_dict()
    shaping["init"] = init
    shaping.pop("device", None)
    if shaping.get("pretrain_dataset") is None:  # absent: keys of older caches stay valid
        shaping.pop("pretrain_dataset", None)
    if shaping.get("mode") == Mode.supervised:  # nor do supervised runs' keys name a mode
        shaping.pop("mode", None)
        shaping.pop("semi", None)
    shaping["arch_config"] = shaping.pop(config.arch)
    shaping.pop("cnn" if config.arch == "mlp" else "mlp")
    shaping["format"] = CACHE_FORMAT
    return hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()[:24]


def studies_of(
    spec: RunSpec, budget: Budget, all_labels: int, pretrain_dataset: str = ""
) -> tuple[str, ...]:
    """The studies (tables and figures) of the main sweep that use ``spec``, whose pre-trained
    runs pre-train on ``pretrain_dataset`` ("" for the pool); the transfer panel's runs are
    told apart by :mod:`models.report.transfer`, the 2 x 2 panel's by
    :mod:`models.report.semi`."""
    if spec.augment or spec.mode is not Mode.supervised:
        return ()
    if spec.dataset or (spec.method != "none" and spec.pretrain_dataset != pretrain_dataset):
        return ()
    historical = (
        spec.arch == "mlp"
        and spec.depth == budget.historical_depth
        and spec.optimizer == HISTORICAL_OPTIMIZER
        and spec.method in (Method.none, *budget.depth_methods)
        and spec.labels_per_class == resolve_labels(budget.optimizer_labels, all_labels)
    )
    if spec.init == "naive":
        return ("historical",) if historical else ()
    found: list[str] = ["historical"] if historical else []
    main_depth = budget.mlp_depth if spec.arch == "mlp" else len(budget.cnn_channels)
    methods = budget.mlp_methods if spec.arch == "mlp" else budget.cnn_methods
    labels = {resolve_labels(k, all_labels) for k in budget.labels}
    if (
        spec.optimizer == MAIN_OPTIMIZER
        and spec.depth == main_depth
        and spec.method in methods
        and spec.labels_per_class in labels
    ):
        found.append("labels")
    if (
        spec.arch == "mlp"
        and spec.optimizer == MAIN_OPTIMIZER
        and spec.depth in budget.depths
        and spec.method in (Method.none, *budget.depth_methods)
        and spec.labels_per_class == resolve_labels(budget.depth_labels, all_labels)
    ):
        found.append("depth")
    if (
        spec.arch == "mlp"
        and spec.depth == budget.mlp_depth
        and spec.optimizer in budget.optimizers
        and spec.method in (Method.none, budget.optimizer_method)
        and spec.labels_per_class == resolve_labels(budget.optimizer_labels, all_labels)
    ):
        found.append("optimizer")
    return tuple(found)


def resolve_labels(labels_per_class: int, all_labels: int) -> int:
    return all_labels if labels_per_class == ALL else min(labels_per_class, all_labels)


def plan(budget: Budget, seeds: int, all_labels: int, pretrain_dataset: str = "") -> list[RunSpec]:
    """Every run of the main sweep once, ordered so each pre-training's label budgets run
    together; the pre-trained runs pre-train on ``pretrain_dataset`` ("" for the pool)."""
    runs: set[RunSpec] = set()
    for seed in range(seeds):
        for k in budget.labels:
            labels = resolve_labels(k, all_labels)
            for method in budget.mlp_methods:
                runs.add(RunSpec("mlp", budget.mlp_depth, method, seed, MAIN_OPTIMIZER, labels))
            for method in budget.cnn_methods:
                depth = len(budget.cnn_channels)
                runs.add(RunSpec("cnn", depth, method, seed, MAIN_OPTIMIZER, labels))
        depth_labels = resolve_labels(budget.depth_labels, all_labels)
        for depth in budget.depths:
            for method in (Method.none, *budget.depth_methods):
                runs.add(RunSpec("mlp", depth, method, seed, MAIN_OPTIMIZER, depth_labels))
        opt_labels = resolve_labels(budget.optimizer_labels, all_labels)
        for optimizer in budget.optimizers:
            for method in (Method.none, budget.optimizer_method):
                runs.add(RunSpec("mlp", budget.mlp_depth, method, seed, optimizer, opt_labels))
        for method in (Method.none, *budget.depth_methods):
            depth, sgd = budget.historical_depth, HISTORICAL_OPTIMIZER
            for init in ("naive", "sound"):
                runs.add(RunSpec("mlp", depth, method, seed, sgd, opt_labels, init=init))
    if pretrain_dataset:
        runs = {r if r.method == "none" else replace(r, pretrain_dataset=pretrain_dataset)
                for r in runs}  # fmt: skip
    return sorted(runs)
