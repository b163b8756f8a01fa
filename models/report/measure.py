"""The report's first step: train (or load) every run of the sweep and gather the results."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from models.data import SplitConfig
from models.errors import ConfigError
from models.experiment import ExperimentConfig, Prepared, load_data
from models.report.budgets import Budget
from models.report.cache import RunCache
from models.report.plan import RunSpec, plan
from models.report.semi import SemiPanel, SemiStudy
from models.report.semi import study as semi_study
from models.report.sweep import Sweep, run_sweep
from models.report.tables import Results
from models.report.transfer import Panel, TransferComparison, settings, study

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReportOptions:
    """What ``headstart report`` was asked for."""

    out: Path
    budget: Budget
    dataset: str
    seeds: int
    split_seed: int = 0
    device: str = "auto"
    command: str = "headstart report"
    pretrain_dataset: str | None = None
    """What the main sweep's pre-trained runs pre-train on; ``None``: each target's pool."""


@dataclass(frozen=True)
class Planned:
    """The data and the runs of a report: the main sweep's, the transfer panel's and the
    2 x 2 panel's."""

    prepared: Prepared
    targets: dict[str, Prepared]
    """The transfer panel's other targets, by spec."""
    all_labels: int
    panel: Panel
    main: list[RunSpec]
    transfer: list[RunSpec]
    semi_panel: SemiPanel
    semi: list[RunSpec]

    @property
    def specs(self) -> list[RunSpec]:
        """Every run once (the panel shares its runs on the report's data set with the sweep),
        each target's and source's runs together so each encoder's label budgets run in a row."""
        return sorted(
            {*self.main, *self.transfer, *self.semi},
            key=lambda s: (s.dataset, s.pretrain_dataset, s),
        )


@dataclass(frozen=True)
class Measured:
    """The finished sweep and everything the figures, tables and text are made from."""

    specs: list[RunSpec]
    prepared: Prepared
    cache: RunCache
    sweep: Sweep
    results: Results
    all_labels: int
    panel: Panel
    transfer_specs: list[RunSpec]
    main_keys: dict[RunSpec, str]
    """The cache key of each main-study run, by its setting alone (as ``results`` has it)."""
    semi_panel: SemiPanel
    semi_specs: list[RunSpec]

    def transfer_study(self) -> list[TransferComparison]:
        records = {s: self.sweep.records[self.sweep.keys[s]] for s in self.transfer_specs}
        return study(self.panel, records, self.cache, self.sweep.keys, self.results.seeds)

    def semi_study(self) -> SemiStudy:
        records = {s: self.sweep.records[self.sweep.keys[s]] for s in self.semi_specs}
        return semi_study(self.semi_panel, records, self.cache, self.sweep.keys)


def smallest_pool_class(prepared: Prepared) -> int:
    """The most labels per class every class can give: the 'all labels' budget."""
    counts = np.bincount(prepared.data.labels[prepared.splits.pool], minlength=10)
    return int(counts[: prepared.data.num_classes].min())


def plan_report(options: ReportOptions) -> Planned:
    """Load the report's data set and the panel's other targets, and plan every run."""
    if options.seeds < 2:
        raise ConfigError(
            f"--seeds must be at least 2 for confidence intervals, got {options.seeds}"
        )
    budget = options.budget
    base = ExperimentConfig(dataset=options.dataset, split=SplitConfig(options.split_seed))
    prepared = load_data(base)
    all_labels = smallest_pool_class(prepared)
    found = settings(options.dataset, prepared.data.num_classes)
    targets = {s.target: load_data(replace(base, dataset=s.target)) for s in found if s.target}
    panel_labels = {t: smallest_pool_class(p) for t, p in targets.items()} | {"": all_labels}
    panel = Panel(budget, found, panel_labels)
    main = plan(budget, options.seeds, all_labels, options.pretrain_dataset or "")
    semi = SemiPanel(budget, all_labels, options.seeds)
    return Planned(
        prepared, targets, all_labels, panel, main, panel.plan(options.seeds), semi, semi.plan()
    )


def measure(options: ReportOptions) -> Measured:
    """Train (or load from ``options.out``'s cache) every run the budget plans."""
    budget = options.budget
    planned = plan_report(options)
    prepared, all_labels, specs = planned.prepared, planned.all_labels, planned.specs
    options.out.mkdir(parents=True, exist_ok=True)
    cache = RunCache(options.out / "cache")
    log.info(
        "report: %d runs (%s budget, %d seeds) on %s; expect %s",
        len(specs), budget.name, options.seeds, options.dataset, budget.expected,
    )  # fmt: skip
    sweep = run_sweep(
        specs,
        budget,
        prepared,
        cache,
        dataset=options.dataset,
        split_seed=options.split_seed,
        device=options.device,
        all_labels=all_labels,
        targets=planned.targets,
    )
    # The main studies look their runs up by setting alone, whatever they pre-trained on.
    main_keys = {replace(spec, pretrain_dataset=""): sweep.keys[spec] for spec in planned.main}
    by_spec = {spec: sweep.records[key] for spec, key in main_keys.items()}
    results = Results(by_spec, budget, options.seeds, all_labels)
    return Measured(
        specs,
        prepared,
        cache,
        sweep,
        results,
        all_labels,
        planned.panel,
        planned.transfer,
        main_keys,
        planned.semi_panel,
        planned.semi,
    )
