"""The registry of fine-tuning modes: one line per mode, importable without torch.

A mode is how a classifier learns from the labelled images once it has its starting weights:
``supervised`` from the labels alone, ``fixmatch`` from the labels and, at the same time, the
unlabeled pool (pseudo-labels it is confident of on a weak view, taught on a strong view).
Each :class:`Mode` member names the module whose ``tune`` function trains it (imported only
when the mode runs, so the command line lists the modes without torch) and says in one phrase
what it does, for model cards. :class:`SemiConfig` holds the knobs of the modes that use the
pool; the supervised recipe (:class:`models.training.FinetuneConfig`) is shared by every mode.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple, Self

from models.errors import ConfigError


class Entry(NamedTuple):
    """One registry line (a tuple, so the enum passes its fields to ``Mode.__new__``)."""

    name: str
    module: str
    """The module whose ``tune`` function trains the mode."""
    unlabeled: bool
    """Whether the mode learns from the unlabeled pool as well as from the labels."""
    summary: str
    """What the mode does, as a phrase that completes "fine-tuned with ..."."""


class Mode(StrEnum):
    """A fine-tuning mode; its value is its name, so it reads and serialises as one."""

    module: str
    unlabeled: bool
    summary: str

    def __new__(cls, *fields: Any) -> Self:
        entry = Entry(*fields)
        member = str.__new__(cls, entry.name)
        member._value_ = entry.name
        member.module, member.unlabeled, member.summary = (
            entry.module,
            entry.unlabeled,
            entry.summary,
        )
        return member

    # The order is the order every message lists them in.
    supervised = Entry(
        "supervised", "models.training", False, "the labelled images alone (supervised)"
    )
    fixmatch = Entry(
        "fixmatch",
        "models.fixmatch",
        True,
        "the labelled images and the unlabeled pool together (FixMatch: confident "
        "pseudo-labels of a weak view taught on a strong view)",
    )


DEFAULT_MODE = Mode.fixmatch
"""The mode a build fine-tunes its ``pretrained`` variant with; the baseline is always
``supervised``, so the pair answers what the unlabeled images buy."""


def check_mode(name: str) -> Mode:
    """The :class:`Mode` named ``name``; else a ``ConfigError`` listing the valid ones."""
    found = Mode.__members__.get(str(name))
    if found is None:
        raise ConfigError(f"unknown fine-tuning mode {name!r} (expected one of: {', '.join(Mode)})")
    return found


@dataclass(frozen=True)
class SemiConfig:
    """The recipe of the modes that learn from the unlabeled pool too (``fixmatch``).

    A step takes a batch of labelled images (``FinetuneConfig.batch_size``, with the shared
    augmentation) and ``ratio`` times as many pool images. Each pool image is seen twice: a
    weak view (a small shift) whose prediction, when its top class reaches ``threshold``, is
    the target for a strong view of the same image. Validation is checked every
    ``steps_per_epoch`` steps on the exponential moving average of the weights, and the best
    average is kept.
    """

    epochs: int = 10
    """Checks on validation (each after ``steps_per_epoch`` steps) at most; the learning rate
    decays over all of them (FixMatch's cosine)."""
    steps_per_epoch: int = 100
    patience: int = 4
    """Stop after this many checks without a better validation accuracy."""
    lr: float = 1e-3
    """AdamW's learning rate (the supervised recipe's rate choices are not searched here)."""
    ratio: int = 4
    """Pool images per labelled image in a step (FixMatch's mu)."""
    threshold: float = 0.95
    """Confidence a weak view's prediction needs to become a pseudo-label."""
    weight: float = 1.0
    """Weight of the pool's loss beside the labelled loss (FixMatch's lambda)."""
    ema: float = 0.99
    """Decay of the weights' moving average that is validated and kept; 0 keeps the weights."""
    weak_shift: float = 2.0
    """The weak view: a random shift of up to this many pixels, nothing else."""
    strong_shift: float = 4.0
    strong_degrees: float = 25.0
    strong_scale: float = 0.2
    strong_stroke: float = 0.5
    strong_contrast: float = 0.5
    strong_erase: float = 0.25
    """Side of the blanked square of a strong view, as a fraction of the image; a larger one
    (0.4 of the side, 7 views in 10) can blank what tells a 7 from a 9, and scored lower."""
    strong_erase_p: float = 0.5

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.steps_per_epoch < 1 or self.ratio < 1:
            raise ConfigError("semi-supervised epochs, steps per epoch and ratio must be >= 1")
        if not 0 < self.threshold <= 1:
            raise ConfigError(
                f"the pseudo-label threshold must lie in (0, 1], got {self.threshold}"
            )
        if not 0 <= self.ema < 1:
            raise ConfigError(f"the weight average's decay must lie in [0, 1), got {self.ema}")
