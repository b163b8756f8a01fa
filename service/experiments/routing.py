"""Route a request through an experiment: find it, pick the arm, and describe what was served."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from service.errors import ExperimentNotFound, ExperimentStopped, ValidationFailed
from service.experiments.assignment import assign
from service.experiments.definition import Arm, Experiment, is_name
from service.experiments.store import ExperimentStore, Exposure

MAX_UNIT = 256


@dataclass(frozen=True)
class Route:
    """The experiment a request asked for and the arm that answers it."""

    experiment: Experiment
    arm: Arm
    unit: str | None

    @property
    def shadow(self) -> Arm | None:
        """The arm that runs unseen on the same input (shadow mode only)."""
        return self.experiment.arms[1] if self.experiment.mode == "shadow" else None

    def describe(self) -> dict[str, str]:
        """What the response says about its arm."""
        return {
            "name": self.experiment.name,
            "arm": self.arm.name,
            "variant": self.arm.variant,
            "assignment": "random" if self.unit is None else "unit",
        }

    def exposure(
        self,
        arm: Arm,
        role: str,
        request_id: str,
        prediction: tuple[str, float],
        latency_ms: float,
        divergence: float | None = None,
    ) -> Exposure:
        return Exposure(
            experiment_id=self.experiment.id,
            arm=arm.name,
            role=role,
            unit=self.unit,
            request_id=request_id,
            predicted=prediction[0],
            probability=prediction[1],
            latency_ms=latency_ms,
            divergence=divergence,
            period=self.experiment.period,
        )


def resolve(store: ExperimentStore, name: str, model: str, unit: str | None) -> Route:
    """The route for ``unit``: 404 for an unknown experiment, 409 for a stopped one, 422 for
    a name no experiment can have or a unit that cannot be stored (both checked before the
    database sees them)."""
    if not is_name(name):
        raise ValidationFailed(
            f"experiment: {name[:120]!r} cannot name an experiment: names are 1 to 100 of "
            "the characters A-Z a-z 0-9 . _ -",
            field="experiment",
        )
    check_unit(unit)
    experiment = store.definition(name)
    if experiment is None:
        raise ExperimentNotFound(
            f"no experiment named {name!r}; create it with POST /v1/experiments, or send the "
            "request without ?experiment= to choose the variant yourself",
            experiment=name,
        )
    if experiment.status != "running":
        raise stopped(experiment)
    if experiment.model != model:
        raise ValidationFailed(
            f"experiment {name!r} splits model {experiment.model!r}, not {model!r}",
            field="experiment",
        )
    arm = (
        experiment.control
        if experiment.mode == "shadow"
        else assign(experiment.salt, experiment.arms, unit)
    )
    return Route(experiment, arm, unit)


def check_unit(unit: str | None) -> None:
    """422 for a unit that is empty, too long, or holds a NUL (which PostgreSQL cannot store)."""
    if unit is None:
        return
    if not 0 < len(unit) <= MAX_UNIT:
        raise ValidationFailed(
            f"the experiment unit must be 1 to {MAX_UNIT} characters, got {len(unit)}",
            field="unit",
        )
    if "\x00" in unit:
        raise ValidationFailed(
            "the experiment unit holds a NUL character; send printable text", field="unit"
        )


def stopped(experiment: Experiment) -> ExperimentStopped:
    """The 409 for a request routed to a stopped experiment."""
    at = ""
    if experiment.stopped_at is not None:
        at = time.strftime(" at %Y-%m-%dT%H:%M:%SZ", time.gmtime(experiment.stopped_at))
    return ExperimentStopped(
        f"experiment {experiment.name!r} was stopped{at}; it routes no more requests "
        "(its feedback is still accepted)",
        experiment=experiment.name,
    )


def record_served(store: ExperimentStore, route: Route, exposure: Exposure) -> None:
    """Store the served exposure; 409 if the experiment was stopped meanwhile (nothing stored)."""
    if not store.record_exposures([exposure]):
        store.forget(route.experiment.name)
        refreshed = store.get(route.experiment.name) or route.experiment
        raise stopped(refreshed)


def top_prediction(answer: dict[str, Any]) -> tuple[str, float]:
    """The predicted class and its probability of a one-image classify answer.

    An embed answer has none, and neither has a blank image (no ink to classify): both are
    recorded as no class, which labelled feedback counts as wrong.
    """
    predictions = answer.get("predictions")
    if not predictions or predictions[0].get("blank"):
        return ("", 0.0)
    first = predictions[0]
    return (str(first["label"]), float(first["probability"]))
