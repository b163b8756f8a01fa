"""Training progress for the command line: the plan up front, then stage-numbered lines.

The stages are computed from the experiment's configuration (:func:`plan`); the progress
itself comes from the per-epoch log lines the training code already writes (``<stage> epoch
N[/M] ...`` under the ``models`` logger), so no training loop knows about this module. A
stage the plan did not foresee (a new fine-tuning mode, say) is numbered as it appears and
the total grows with it, rather than being dropped.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from models.experiment import ExperimentConfig

LAYERWISE = ("rbm", "dae")
"""The greedy methods: one pre-training stage per hidden layer (``models.pretraining``)."""

IMAGES_PER_SECOND = {"mlp": 40_000.0, "cnn": 1_500.0}
"""Images a training step takes per second (forward and backward) on two quiet CPU cores, by
architecture: rough rates for the estimate only; load, threads and a GPU change them a lot."""

SECONDS_PER_EPOCH = 0.3
"""What an epoch costs besides its images: validation, the probe, setting up."""

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
"""The command line's log format (``scripts.commands._training.configure_logging``)."""

HEARTBEAT_SECONDS = 300.0
"""Off a terminal, a long stage still shows its latest epoch this often, so a log never
goes quiet for a whole stage."""

# "<stage> epoch N[/M] ...": a stage's name never holds a colon, a remark about it does
# ("pretrained lr 0.001: early stop at epoch 7 (best 4)").
_EPOCH = re.compile(
    r"^(?P<stage>[^:\s][^:]*?) epoch (?P<epoch>\d+)(?:/(?P<total>\d+))?(?P<rest>(?: .*)?)$"
)


@dataclass(frozen=True)
class Stage:
    """One stage of a run: what it is called, its most epochs, and its images per epoch."""

    name: str
    epochs: int
    images: int

    def describe(self) -> str:
        return f"{self.name} {self.epochs} epoch{'s' if self.epochs != 1 else ''}"


def plan(
    config: ExperimentConfig,
    *,
    pool: int,
    labeled: int,
    pretraining: bool = True,
    variants: tuple[str, ...] = ("pretrained", "baseline"),
) -> list[Stage]:
    """The stages ``config`` trains: pre-training (a stage per layer for the greedy methods),
    then each of ``variants``' fine-tuning (a stage per learning rate tried). ``pool`` and
    ``labeled`` are the number of unlabeled and labelled training images."""
    stages: list[Stage] = []
    method = config.method
    if pretraining and method.module is not None:
        layers = len(config.mlp.hidden) if config.arch == "mlp" and method in LAYERWISE else 1
        views = 2 if config.arch == "cnn" else 1  # the CNN methods see two views or a decoder
        for layer in range(layers):
            suffix = str(layer) if method in LAYERWISE else ""
            stages.append(Stage(f"pretrain {method}{suffix}", config.pretrain.epochs, pool * views))
    tune = config.finetune
    per_epoch = max(labeled, tune.min_steps_per_epoch * tune.batch_size)
    for variant in variants:
        mode = getattr(config, "mode", None) if variant == "pretrained" else None
        semi = getattr(config, "semi", None)
        if mode is not None and getattr(mode, "unlabeled", False) and semi is not None:
            images = semi.steps_per_epoch * tune.batch_size * (1 + 2 * semi.ratio)
            stages.append(Stage(f"{variant} {mode}", semi.epochs, images))
            continue
        rates = tune.lr_choices or (tune.lr,)
        for lr in rates:
            name = f"{variant} lr {lr:g}" if tune.lr_choices else variant
            stages.append(Stage(name, tune.max_epochs, per_epoch))
    return stages


def estimate_seconds(stages: list[Stage], arch: str) -> float:
    """Seconds ``stages`` would take if each ran all its epochs, at the rough rate for ``arch``."""
    rate = IMAGES_PER_SECOND.get(arch, min(IMAGES_PER_SECOND.values()))
    return sum(s.epochs * (s.images / rate + SECONDS_PER_EPOCH) for s in stages)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(seconds, 1):.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def plan_line(stages: list[Stage], arch: str) -> str:
    """One line: every stage with its epochs, and a rough estimate of the whole."""
    if not stages:
        return "plan: no training stage"
    parts = "; ".join(f"{i} {s.describe()}" for i, s in enumerate(stages, 1))
    bound = estimate_seconds(stages, arch)
    early = any(not s.name.startswith("pretrain ") for s in stages)
    return (
        f"plan: {len(stages)} stage{'s' if len(stages) != 1 else ''}: {parts}; rough estimate: "
        f"up to {_duration(bound)} on two CPU cores"
        + (", less as early stopping ends fine-tuning sooner" if early else "")
    )


def _record(name: str, message: str) -> logging.LogRecord:
    return logging.LogRecord(name, logging.INFO, __file__, 0, message, None, None)


class ProgressHandler(logging.Handler):
    """Rewrites the training code's epoch lines as ``stage i/N <stage> epoch e/E ...``.

    With ``per_epoch`` (a terminal) every epoch gets its line; otherwise (a log file, CI)
    each stage gets one, its last epoch's with the stage's time, when it ends (and one every
    :data:`HEARTBEAT_SECONDS` while a long stage runs). Every other record passes through.
    """

    def __init__(
        self,
        stages: list[Stage],
        stream: TextIO,
        *,
        per_epoch: bool,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.planned = stages
        self.total = len(stages)
        self.stream = stream
        self.per_epoch = per_epoch
        self.clock = clock
        self.seen: list[str] = []
        self.pending: logging.LogRecord | None = None
        self.began = self.last = self.written = clock()

    def _number(self, name: str) -> int:
        if name not in self.seen:
            self.seen.append(name)
            self.total = max(self.total, len(self.seen))
            self.began = self.last  # the stage began when the one before it ended
        return self.seen.index(name) + 1

    def emit(self, record: logging.LogRecord) -> None:
        try:
            match = _EPOCH.match(record.getMessage())
            if match is None:
                self.flush_stage()
                self._write(record)
                return
            name = match["stage"]
            if self.seen and name != self.seen[-1]:
                self.flush_stage()
            index = self._number(name)
            planned = self.planned[index - 1].epochs if index <= len(self.planned) else None
            total = match["total"] or planned
            epochs = f"{match['epoch']}/{total}" if total else match["epoch"]
            now = self.last = self.clock()
            took = "" if self.per_epoch else f" ({now - self.began:.0f} s)"
            line = f"stage {index}/{self.total} {name} epoch {epochs}{match['rest']}{took}"
            self.pending = logging.makeLogRecord({**record.__dict__, "msg": line, "args": None})
            if self.per_epoch or now - self.written >= HEARTBEAT_SECONDS:
                self.flush_stage()
        except Exception:  # noqa: BLE001 -- logging's own contract: report, never raise
            self.handleError(record)

    def flush_stage(self) -> None:
        """Write the stage line held back for a non-terminal, if any."""
        if self.pending is not None:
            pending, self.pending = self.pending, None
            self._write(pending)

    def _write(self, record: logging.LogRecord) -> None:
        self.stream.write(self.format(record) + "\n")
        self.stream.flush()
        self.written = self.clock()


@contextmanager
def reporting(
    stages: list[Stage],
    arch: str,
    *,
    announce: bool = True,
    stream: TextIO | None = None,
    command: str = "build",
) -> Iterator[ProgressHandler]:
    """Say the plan (when ``announce``), then send the ``models`` loggers' records through a
    :class:`ProgressHandler` while inside, to ``stream`` (standard error)."""
    out = stream or sys.stderr
    handler = ProgressHandler(stages, out, per_epoch=out.isatty())
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    if announce:
        handler.handle(_record(f"headstart.{command}", plan_line(stages, arch)))
    logger = logging.getLogger("models")
    propagates = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield handler
    finally:
        handler.flush_stage()
        logger.removeHandler(handler)
        logger.propagate = propagates
