"""Which arm answers a request: a pure function of the experiment's salt and the unit.

The same unit lands in the same arm in every worker, replica and after restarts, with
nothing shared on the request path. Without a unit the arm is drawn at random.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence

from service.experiments.definition import Arm

_SCALE = float(1 << 64)
_random = random.SystemRandom()


def unit_position(salt: str, unit: str) -> float:
    """A uniform number in [0, 1) fixed by the salt and the unit (first 64 bits of SHA-256)."""
    digest = hashlib.sha256(f"{salt}\x00{unit}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def arm_at(arms: Sequence[Arm], position: float) -> Arm:
    """The arm whose share of [0, 1), in the arms' order and sized by weight, holds ``position``."""
    total = sum(arm.weight for arm in arms)
    edge = 0.0
    for arm in arms:
        edge += arm.weight / total
        if position < edge:
            return arm
    return arms[-1]  # position within rounding of 1.0


def assign(salt: str, arms: Sequence[Arm], unit: str | None) -> Arm:
    """The unit's arm; a random one when there is no unit."""
    position = _random.random() if unit is None else unit_position(salt, unit)
    return arm_at(arms, position)
