"""Paired comparisons of the sweep's runs, and the tables the report prints from them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from models.methods import Method
from models.report.budgets import HISTORICAL_OPTIMIZER, MAIN_OPTIMIZER, OPTIMIZERS, Budget
from models.report.plan import RunSpec, resolve_labels
from models.report.stats import Interval, Paired, paired_test, t_interval


@dataclass(frozen=True)
class Comparison:
    """Pre-trained against baseline for one setting, over the same seeds."""

    arch: str
    depth: int
    method: Method
    optimizer: str
    labels_per_class: int
    pretrained: Interval
    baseline: Interval
    test: Paired
    init: str = "sound"


@dataclass
class Table:
    """A titled table of preformatted cells; markdown and HTML render the same strings."""

    name: str
    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    note: str = ""


class Results:
    """The sweep's test accuracies by run, and the paired comparisons the report makes."""

    def __init__(
        self, records: dict[RunSpec, dict[str, Any]], budget: Budget, seeds: int, all_labels: int
    ) -> None:
        self.records, self.budget, self.seeds, self.all_labels = records, budget, seeds, all_labels

    def accuracy(self, spec: RunSpec) -> float:
        return float(self.records[spec]["test_accuracy"])

    def compare(self, spec: RunSpec) -> Comparison:
        """``spec`` (any seed) against its baseline, paired over every seed."""
        treated = [self.accuracy(replace(spec, seed=s)) for s in range(self.seeds)]
        control = [self.accuracy(replace(spec.baseline(), seed=s)) for s in range(self.seeds)]
        return Comparison(
            spec.arch,
            spec.depth,
            spec.method,
            spec.optimizer,
            spec.labels_per_class,
            t_interval(treated),
            t_interval(control),
            paired_test(treated, control),
            spec.init,
        )

    def labels(self) -> list[int]:
        return sorted({resolve_labels(k, self.all_labels) for k in self.budget.labels})

    def main_depth(self, arch: str) -> int:
        return self.budget.mlp_depth if arch == "mlp" else len(self.budget.cnn_channels)

    def main_run(self, arch: str, method: Method, seed: int, labels: int) -> RunSpec:
        """The main study's run (main depth and optimiser) of these settings."""
        return RunSpec(arch, self.main_depth(arch), method, seed, MAIN_OPTIMIZER, labels)

    def showcase(self, arch: str, method: Method) -> RunSpec:
        """The run whose weights and embeddings the figures show: seed 0, first budget."""
        k = resolve_labels(self.budget.showcase_labels, self.all_labels)
        return self.main_run(arch, method, 0, k)

    def methods(self, arch: str) -> tuple[Method, ...]:
        methods = self.budget.mlp_methods if arch == "mlp" else self.budget.cnn_methods
        return tuple(m for m in methods if m != "none")

    def label_study(self) -> list[Comparison]:
        return [
            self.compare(self.main_run(arch, method, 0, k))
            for arch in ("mlp", "cnn")
            for method in self.methods(arch)
            for k in self.labels()
        ]

    def depth_study(self) -> list[Comparison]:
        k = resolve_labels(self.budget.depth_labels, self.all_labels)
        return [
            self.compare(RunSpec("mlp", depth, method, 0, MAIN_OPTIMIZER, k))
            for method in self.budget.depth_methods
            for depth in self.budget.depths
        ]

    def historical_study(self) -> list[Comparison]:
        k = resolve_labels(self.budget.optimizer_labels, self.all_labels)
        depth, sgd = self.budget.historical_depth, HISTORICAL_OPTIMIZER
        return [
            self.compare(RunSpec("mlp", depth, method, 0, sgd, k, init=init))
            for init in ("naive", "sound")
            for method in self.budget.depth_methods
        ]

    def optimizer_study(self) -> list[Comparison]:
        k = resolve_labels(self.budget.optimizer_labels, self.all_labels)
        method = self.budget.optimizer_method
        return [
            self.compare(RunSpec("mlp", self.budget.mlp_depth, method, 0, name, k))
            for name in self.budget.optimizers
        ]


def pct(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:.2f}"


def pp_interval(interval: Interval) -> str:
    if math.isnan(interval.low):
        return "n/a"
    return f"[{100 * interval.low:+.2f}, {100 * interval.high:+.2f}]"


def p_value(p: float) -> str:
    if math.isnan(p):
        return "n/a"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def gain(comparison: Comparison) -> str:
    return f"{100 * comparison.test.diff.mean:+.2f}"


GAIN_COLUMNS = ["Pre-trained acc %", "Baseline acc %", "Gain (pp)", "95% CI (pp)", "p (paired t)"]


def _gain_cells(c: Comparison) -> list[str]:
    return [
        pct(c.pretrained.mean),
        pct(c.baseline.mean),
        gain(c),
        pp_interval(c.test.diff),
        p_value(c.test.p),
    ]


def label_table(results: Results) -> Table:
    table = Table(
        "labels",
        "Gain over the paired baseline by label budget",
        ["Arch", "Hidden/conv layers", "Pre-training", "Labels/class", "Seeds", *GAIN_COLUMNS],
        note=(
            "Mean test accuracy over seeds; gain = pre-trained minus baseline of the same seed, "
            "with its 95% t-interval and the paired t-test's two-sided p-value."
        ),
    )
    for c in results.label_study():
        head = [c.arch, str(c.depth), c.method, str(c.labels_per_class), str(c.test.diff.n)]
        table.rows.append(head + _gain_cells(c))
    return table


def depth_table(results: Results) -> Table:
    table = Table(
        "depth",
        f"Depth: MLP with 1 to {max(results.budget.depths)} hidden layers",
        ["Hidden layers", "Pre-training", "Labels/class", "Seeds", *GAIN_COLUMNS],
    )
    for c in results.depth_study():
        head = [str(c.depth), c.method, str(c.labels_per_class), str(c.test.diff.n)]
        table.rows.append(head + _gain_cells(c))
    return table


def optimizer_table(results: Results) -> Table:
    table = Table(
        "optimizer",
        "Optimisers: does a better optimiser replace pre-training?",
        ["Optimiser", "Learning rate", "Pre-training", "Labels/class", "Seeds", *GAIN_COLUMNS],
        note="Both variants of a row are fine-tuned with that row's optimiser and seed.",
    )
    for c in results.optimizer_study():
        lr = OPTIMIZERS[c.optimizer]["lr"]
        head = [c.optimizer, f"{lr:g}", c.method, str(c.labels_per_class), str(c.test.diff.n)]
        table.rows.append(head + _gain_cells(c))
    return table


def historical_table(results: Results) -> Table:
    budget = results.budget
    lr = OPTIMIZERS[HISTORICAL_OPTIMIZER]["lr"]
    table = Table(
        "historical",
        "Historical setting (deliberately dated, not our baseline)",
        [
            "Hidden layers",
            "Init",
            "Optimiser",
            "Pre-training",
            "Labels/class",
            "Seeds",
            *GAIN_COLUMNS,
        ],
        note=(
            f"A {budget.historical_depth}-hidden-layer sigmoid MLP fine-tuned with plain SGD "
            f"(lr {lr:g}, no momentum) within the shared budget of at most {budget.max_epochs} "
            "epochs, so a baseline at 10% has not left its starting plateau in that time. "
            "'naive' starts every layer pre-training does not fill "
            "from U(-1/sqrt(fan_in), 1/sqrt(fan_in)), the pre-2010 default: the setting in "
            "which pre-training's famous effect was first seen. 'glorot' is the same net and "
            "optimiser with the sound initialisation our baselines use."
        ),
    )
    for c in results.historical_study():
        init = "naive" if c.init == "naive" else "glorot"
        head = [str(c.depth), init, c.optimizer, c.method, str(c.labels_per_class)]
        table.rows.append([*head, str(c.test.diff.n), *_gain_cells(c)])
    return table
