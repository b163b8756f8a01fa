"""What an experiment is: its arms, mode and test settings, and how a request describes one."""

from __future__ import annotations

import json
import math
import re
import secrets
import time
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from service.repository import VERSION_PATTERN

MODES = ("split", "shadow")

Metric = Literal["accuracy", "outcome"]

NAME_PATTERN = r"^[A-Za-z0-9._-]{1,100}$"
"""What an experiment's and an arm's name may be."""
_NAME = re.compile(NAME_PATTERN)


def is_name(text: str) -> bool:
    """Whether ``text`` can be an experiment's name (so there is no need to look it up)."""
    return _NAME.fullmatch(text) is not None


@dataclass(frozen=True)
class Arm:
    name: str
    variant: str
    weight: float
    version: str | None = None
    """The variant's version this arm serves; None: whichever is the variant's default."""

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "variant": self.variant,
            "version": self.version,
            "weight": self.weight,
        }


GuardrailMetric = Literal["latency", "errors", "outcome"]


@dataclass(frozen=True)
class Guardrail:
    """What a challenger must not make worse than the control, by more than ``margin``."""

    metric: GuardrailMetric
    margin: float
    """``latency``: share of requests slower than the control's 95th percentile, over the
    control's share (0.05: 10% of the challenger's requests against the control's 5%);
    ``errors``: share of routed requests the arm failed, over the control's share (0.01: one
    point of requests); ``outcome``: the mean outcome, on its own scale, below the
    control's."""

    def to_json(self) -> dict[str, object]:
        return {"metric": self.metric, "margin": self.margin}


@dataclass(frozen=True)
class Policy:
    """What the service does on its own once the results say so (see
    :mod:`service.experiments.policy`)."""

    promote: bool
    """Promote a challenger the always-valid test calls better, with no guardrail breached."""
    rollback: bool
    """Roll back (stop, the control's variant the default) on a breached guardrail, or a
    challenger the test calls worse."""

    def to_json(self) -> dict[str, bool]:
        return {"promote": self.promote, "rollback": self.rollback}


@dataclass(frozen=True)
class Experiment:
    """A stored experiment; ``id`` is 0 until the store has written it."""

    id: int
    name: str
    model: str
    mode: str
    salt: str
    alpha: float
    mde: float | None
    status: str
    created_at: float
    stopped_at: float | None
    arms: tuple[Arm, ...]
    metric: Metric | None = "accuracy"
    """``None`` for an experiment stored before metrics were declared: its metric is read from
    its feedback (accuracy once any label came), as it was then."""
    period: int = 0
    """Which weights apply: 0 as created, one more at every ramp."""
    guardrails: tuple[Guardrail, ...] = ()
    policy: Policy | None = None
    """``None``: nothing happens until an admin acts."""

    @property
    def control(self) -> Arm:
        """The first arm: the one every other arm is compared with (and, in shadow mode, serves)."""
        return self.arms[0]

    def guards(self, metric: GuardrailMetric) -> bool:
        """Whether one of the experiment's guardrails watches ``metric``."""
        return any(g.metric == metric for g in self.guardrails)


class ArmSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    variant: str = Field(min_length=1, max_length=200)
    version: str | None = Field(default=None, pattern=f"^{VERSION_PATTERN.pattern}$")
    """A numbered version of the variant (two arms may serve two versions of one variant);
    unset, the arm serves the variant's default version."""
    weight: float = Field(default=1.0, gt=0, allow_inf_nan=False)


class GuardrailSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    metric: GuardrailMetric
    margin: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    """How much worse than the control a challenger may be before the guardrail breaches
    (default: 0.05 of requests for latency, 0.01 of requests for errors, 0 for an outcome)."""


class PolicySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    promote: bool = True
    rollback: bool = True


class ExperimentSpec(BaseModel):
    """The body of ``POST /v1/experiments``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    model: str = Field(min_length=1, max_length=200)
    mode: Literal["split", "shadow"] = "split"
    arms: list[ArmSpec] = Field(min_length=2, max_length=16)
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    """Significance level of the tests and the decision."""
    minimum_detectable_effect: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    """Smallest difference worth finding, on the metric's own scale (accuracy: 0.02 = 2 points)."""
    metric: Metric = "accuracy"
    """What the arms are compared on: ``accuracy`` (labels against predictions) or
    ``outcome`` (the mean of the numbers sent as feedback). Declared, never inferred from
    which feedback arrived, so a stray label cannot change what an experiment measures."""
    guardrails: list[GuardrailSpec] = Field(default_factory=list, max_length=3)
    """What no challenger may make worse, each with its own always-valid test: ``latency``
    (the share of requests slower than the control's 95th percentile), ``errors`` (the share
    of routed requests the arm failed) and, with accuracy as the metric, ``outcome`` (the
    mean of the numbers sent as feedback)."""

    policy: PolicySpec | None = None
    """Act on the results without an admin: ``{"promote": true, "rollback": true}`` promotes a
    winning challenger and rolls back a harmful one (split mode); unset, nothing happens
    until an admin acts."""

    @model_validator(mode="after")
    def _distinct_arms(self) -> ExperimentSpec:
        names = [arm.name for arm in self.arms]
        if len(set(names)) != len(names):
            raise ValueError(f"arm names must be distinct, got {names}")
        if not math.isfinite(sum(arm.weight for arm in self.arms)):
            # Each arm's share is its weight over the sum: an infinite sum gives every
            # unit to the last arm, and the sample-ratio check has no ratio to test.
            raise ValueError(
                "the arms' weights must have a finite sum; weights are relative, so scale "
                "them down (1 and 3 split as 1e300 and 3e300 would)"
            )
        if self.mode == "shadow" and self.metric != "accuracy":
            raise ValueError(
                "shadow mode compares the two arms' predictions on the same input: its metric "
                "is accuracy (an outcome follows the answer the client saw, the first arm's)"
            )
        metrics = [g.metric for g in self.guardrails]
        if len(set(metrics)) != len(metrics):
            raise ValueError(f"one guardrail per metric, got {metrics}")
        if self.guardrails and self.mode == "shadow":
            raise ValueError(
                "a shadow experiment serves every request from its first arm: there is nothing "
                "for a guardrail to protect (guardrails are for split mode)"
            )
        if self.policy is not None and self.mode == "shadow":
            raise ValueError(
                "a shadow experiment's challenger answers no request: there is nothing to "
                "promote or roll back automatically (the policy is for split mode)"
            )
        if "outcome" in metrics and self.metric == "outcome":
            raise ValueError(
                "the outcome is this experiment's metric already; an outcome guardrail is for "
                "experiments that compare accuracy"
            )
        if self.mode == "shadow" and len(self.arms) != 2:
            raise ValueError(
                "shadow mode takes exactly two arms: the first answers, the second runs in shadow"
            )
        return self

    def to_experiment(self) -> Experiment:
        return Experiment(
            id=0,
            name=self.name,
            model=self.model,
            mode=self.mode,
            salt=secrets.token_hex(16),
            alpha=self.alpha,
            mde=self.minimum_detectable_effect,
            metric=self.metric,
            status="running",
            created_at=time.time(),
            stopped_at=None,
            arms=tuple(Arm(a.name, a.variant, a.weight, a.version) for a in self.arms),
            guardrails=tuple(
                Guardrail(g.metric, _DEFAULT_MARGIN[g.metric] if g.margin is None else g.margin)
                for g in self.guardrails
            ),
            policy=None
            if self.policy is None
            else Policy(self.policy.promote, self.policy.rollback),
        )


_DEFAULT_MARGIN: dict[str, float] = {"latency": 0.05, "errors": 0.01, "outcome": 0.0}


def guardrails_from_json(text: str | None) -> tuple[Guardrail, ...]:
    """The guardrails as stored; none for an experiment stored before they existed."""
    if text is None:
        return ()
    return tuple(Guardrail(g["metric"], float(g["margin"])) for g in json.loads(text))


def policy_from_json(text: str | None) -> Policy | None:
    """The policy as stored; none for an experiment stored without one."""
    if text is None:
        return None
    found = json.loads(text)
    return None if found is None else Policy(bool(found["promote"]), bool(found["rollback"]))


class RampSpec(BaseModel):
    """The body of ``PATCH /v1/experiments/{name}``: every arm's new weight."""

    model_config = ConfigDict(extra="forbid")

    weights: dict[str, float] = Field(max_length=16)
    """Each arm by name, with its weight from now on (> 0; weights are relative)."""

    def checked(self, experiment: Experiment) -> dict[str, float]:
        """The weights, once they name exactly the experiment's arms; ``ValueError`` says why."""
        names = [arm.name for arm in experiment.arms]
        if experiment.mode == "shadow":
            raise ValueError(
                "a shadow experiment has no weights: its first arm answers every request"
            )
        if set(self.weights) != set(names):
            missing = [n for n in names if n not in self.weights]
            extra = [n for n in self.weights if n not in names]
            raise ValueError(
                f"give a weight for every arm and no other: arms {names}"
                + (f", missing {missing}" if missing else "")
                + (f", unknown {extra}" if extra else "")
            )
        for arm, weight in self.weights.items():
            if not (math.isfinite(weight) and weight > 0):
                raise ValueError(f"arm {arm!r}: a weight is a finite number above 0, got {weight}")
        if not math.isfinite(sum(self.weights.values())):
            raise ValueError("the weights must have a finite sum; scale them down")
        return {name: float(self.weights[name]) for name in names}
