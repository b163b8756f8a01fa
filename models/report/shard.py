"""Deterministic slices of a report's sweep, so that separate processes or machines share it.

Every shard computes the same plan and takes its own runs. Runs that reuse one pre-trained
encoder (same data, architecture, method, pre-training budget and seed) stay in one shard, so
each encoder is trained once and written by one process; such groups are dealt round-robin
in plan order. The shards write into one cache folder (each file is written atomically), and a
final ``headstart report`` without ``--shard`` finds every run there and assembles the report.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from models.errors import ConfigError
from models.report.cache import RunCache
from models.report.measure import ReportOptions, plan_report
from models.report.plan import RunSpec, experiment
from models.report.sweep import run_sweep

log = logging.getLogger(__name__)

_PATTERN = re.compile(r"^(\d+)/(\d+)$")


@dataclass(frozen=True)
class Shard:
    """Slice ``index`` (from 0) of ``count``."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ConfigError(
                f"shard {self.index}/{self.count}: the index must lie in 0..count-1 "
                "(e.g. 0/4 to 3/4 for four shards)"
            )

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"i/n"``, as ``--shard`` takes it."""
        match = _PATTERN.match(text.strip())
        if match is None:
            raise ConfigError(f"--shard {text!r}: expected INDEX/COUNT such as 0/4")
        return cls(int(match[1]), int(match[2]))

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def select(specs: list[RunSpec], shard: Shard, encoder: Callable[[RunSpec], str]) -> list[RunSpec]:
    """The runs of ``specs`` that ``shard`` trains; ``encoder(spec)`` keys the encoder it uses."""
    groups: dict[str, int] = {}
    for spec in specs:
        groups.setdefault(encoder(spec), len(groups))
    return [spec for spec in specs if groups[encoder(spec)] % shard.count == shard.index]


@dataclass(frozen=True)
class ShardRun:
    """What one shard did."""

    shard: Shard
    runs: int
    total: int
    trained: int
    cached: int
    seconds: float


def train_shard(options: ReportOptions, shard: Shard) -> ShardRun:
    """Train ``shard``'s slice of the sweep ``options`` describe into ``options.out/cache``."""
    began = time.perf_counter()
    budget = options.budget
    planned = plan_report(options)
    specs = planned.specs

    def encoder(spec: RunSpec) -> str:
        if spec.method == "none":
            return spec.name  # nothing shared: any shard may train it
        config = experiment(spec, budget, options.dataset, options.split_seed)
        return f"{spec.method}-{config.pretrain_key()}"

    mine = select(specs, shard, encoder)
    options.out.mkdir(parents=True, exist_ok=True)
    log.info("report shard %s: %d of %d runs", shard, len(mine), len(specs))
    sweep = run_sweep(
        mine,
        budget,
        planned.prepared,
        RunCache(options.out / "cache"),
        dataset=options.dataset,
        split_seed=options.split_seed,
        device=options.device,
        all_labels=planned.all_labels,
        targets=planned.targets,
    )
    return ShardRun(
        shard, len(mine), len(specs), sweep.trained, sweep.cached, time.perf_counter() - began
    )
