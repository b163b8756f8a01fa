"""The report's first step: train (or load) every run of the sweep and gather the results."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.data import SplitConfig
from models.errors import ConfigError
from models.experiment import ExperimentConfig, Prepared, load_data
from models.report.budgets import Budget
from models.report.cache import RunCache
from models.report.plan import RunSpec, plan
from models.report.sweep import Sweep, run_sweep
from models.report.tables import Results

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


@dataclass(frozen=True)
class Measured:
    """The finished sweep and everything the figures, tables and text are made from."""

    specs: list[RunSpec]
    prepared: Prepared
    cache: RunCache
    sweep: Sweep
    results: Results
    all_labels: int


def smallest_pool_class(prepared: Prepared) -> int:
    """The most labels per class every class can give: the 'all labels' budget."""
    counts = np.bincount(prepared.data.labels[prepared.splits.pool], minlength=10)
    return int(counts[: prepared.data.num_classes].min())


def measure(options: ReportOptions) -> Measured:
    """Train (or load from ``options.out``'s cache) every run the budget plans."""
    if options.seeds < 2:
        raise ConfigError(
            f"--seeds must be at least 2 for confidence intervals, got {options.seeds}"
        )
    budget = options.budget
    base = ExperimentConfig(dataset=options.dataset, split=SplitConfig(options.split_seed))
    prepared = load_data(base)
    all_labels = smallest_pool_class(prepared)
    specs = plan(budget, options.seeds, all_labels)
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
    )
    by_spec = {spec: sweep.records[sweep.keys[spec]] for spec in specs}
    results = Results(by_spec, budget, options.seeds, all_labels)
    return Measured(specs, prepared, cache, sweep, results, all_labels)
