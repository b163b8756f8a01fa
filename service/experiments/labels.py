"""A feedback label, checked against the classes of the model its experiment splits."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from service.errors import ServiceError
from service.experiments.definition import Experiment

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


class LabelChecker:
    """Checks labels against the classes of the arm that served each request, looking each
    arm up once: ``definition`` finds an experiment, ``classes`` a variant's class names (and
    raises a service error when that variant is not served)."""

    def __init__(
        self,
        definition: Callable[[str], Experiment | None],
        classes: Callable[[str, str], Sequence[str]],
    ) -> None:
        self.definition = definition
        self.classes = classes
        self._found: dict[tuple[str, str], tuple[str, Sequence[str]] | InvalidLabel] = {}

    def check(self, experiment: str, arm: str, label: int | str) -> str:
        """The class ``label`` names for ``arm`` of ``experiment``; ``InvalidLabel`` says why not."""
        key = (experiment, arm)
        if key not in self._found:
            self._found[key] = self._look_up(experiment, arm)
        found = self._found[key]
        if isinstance(found, InvalidLabel):
            raise found
        model, names = found
        return normalise(label, names, model)

    def _look_up(self, experiment: str, arm: str) -> tuple[str, Sequence[str]] | InvalidLabel:
        stored = self.definition(experiment)
        variant = next((a.variant for a in stored.arms if a.name == arm), None) if stored else None
        if stored is None or variant is None:
            return InvalidLabel(f"experiment {experiment!r} no longer has an arm {arm!r}")
        try:
            return stored.model, self.classes(stored.model, variant)
        except ServiceError as exc:
            return InvalidLabel(f"the classes of the arm's variant are unknown: {exc}")
