"""A feedback label, checked against the classes of the model its experiment splits."""

from __future__ import annotations

from collections.abc import Sequence

SHOWN = 12
"""Class names listed in a refusal at most; the rest are counted."""


class InvalidLabel(ValueError):
    """A label that names none of the model's classes; the message says why and what would."""


def normalise(label: int | str, classes: Sequence[str], model: str) -> str:
    """The class ``label`` names: a class name as it is, or a class index (an integer) as the
    name at that index, so that a label and a prediction compare by name whatever was sent."""
    if isinstance(label, int):
        if 0 <= label < len(classes):
            return classes[label]
        raise InvalidLabel(
            f"label {label} is not a class index of model {model!r} (0 to {len(classes) - 1})"
        )
    if label in classes:
        return label
    listed = ", ".join(repr(name) for name in classes[:SHOWN])
    more = f" and {len(classes) - SHOWN} more" if len(classes) > SHOWN else ""
    shown = label if len(label) <= 40 else f"{label[:40]}…"
    raise InvalidLabel(
        f"label {shown!r} is not a class of model {model!r}: {listed}{more}, "
        "or a class index written as a number"
    )
