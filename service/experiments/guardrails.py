"""Guardrails: what no challenger may make worse than the control, each with its own
always-valid test, read at any time like the primary metric's.

- ``latency``: the share of a challenger's requests slower than the control's 95th percentile
  against the control's own share. The percentile is fixed from the control's first
  :data:`CALIBRATION` requests, and only the requests that came after them are compared, so
  the threshold never depends on the data it judges. Under "no difference" both shares are
  about 5%; the guardrail breaches when the confidence sequence on the challenger's share
  minus the control's lies wholly above ``margin``.
- ``outcome``: the mean outcome sent as feedback, when the experiment's metric is accuracy;
  it breaches when the confidence sequence on the challenger's mean minus the control's lies
  wholly below ``-margin``.
- ``errors``: the share of a challenger's routed requests that it failed (anything but a
  client's mistake: a model error, a deadline, a version that is not served) against the
  control's share; it breaches when the confidence sequence on the difference lies wholly
  above ``margin``.

Each is the same mixture sequential test as the metric's (:class:`SplitReplay`: within
periods of weights, at level alpha over the number of challengers), so a guardrail breaches
a healthy challenger with probability at most alpha, however often it is looked at.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from service.experiments.definition import Experiment, Guardrail
from service.experiments.replay import SplitReplay
from service.experiments.store import Observation

CALIBRATION = 100
"""Control requests whose 95th percentile latency is the threshold every later one is held to."""

_SHARE_TAU = 0.05
"""Mixing scale of the latency test when its margin is 0: five points of requests."""


@dataclass(frozen=True)
class Check:
    """One guardrail for one challenger, as it stands."""

    guardrail: Guardrail
    arm: str
    difference: float | None
    """The challenger's share (or mean) minus the control's; None before the test looks."""
    confidence_sequence: tuple[float, float] | None
    always_valid_p_value: float | None
    breached: bool
    threshold_ms: float | None = None
    """``latency`` only: the control's 95th percentile, once it is set."""

    def to_json(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "metric": self.guardrail.metric,
            "margin": self.guardrail.margin,
            "arm": self.arm,
            "difference": self.difference,
            "confidence_sequence": None
            if self.confidence_sequence is None
            else list(self.confidence_sequence),
            "always_valid_p_value": self.always_valid_p_value,
            "breached": self.breached,
        }
        if self.guardrail.metric == "latency":
            found["threshold_ms"] = self.threshold_ms
        return found

    @property
    def message(self) -> str:
        """The breach in words, for the decision."""
        interval = self.confidence_sequence or (math.nan, math.nan)
        if self.guardrail.metric == "errors":
            return (
                f"arm {self.arm} breaches the errors guardrail: its share of failed requests "
                f"is above the control's by {interval[0]:.3g} to {interval[1]:.3g} "
                f"(always-valid), more than the margin {self.guardrail.margin:g}"
            )
        if self.guardrail.metric == "latency":
            return (
                f"arm {self.arm} breaches the latency guardrail: its share of requests slower "
                f"than the control's 95th percentile ({self.threshold_ms:.3g} ms) is above the "
                f"control's by {interval[0]:.3g} to {interval[1]:.3g} (always-valid), more than "
                f"the margin {self.guardrail.margin:g}"
            )
        return (
            f"arm {self.arm} breaches the outcome guardrail: its mean outcome is below the "
            f"control's by {-interval[1]:.3g} to {-interval[0]:.3g} (always-valid), more than "
            f"the margin {self.guardrail.margin:g}"
        )


def check(
    experiment: Experiment,
    latencies: Sequence[tuple[str, int, float]],
    observations: Sequence[Observation],
    failures: Sequence[tuple[str, int, bool]] = (),
) -> list[Check]:
    """Every guardrail of ``experiment`` for every challenger, in the order they were declared."""
    found: list[Check] = []
    for guardrail in experiment.guardrails:
        if guardrail.metric == "latency":
            found += _latency(experiment, guardrail, latencies)
        elif guardrail.metric == "errors":
            found += _errors(experiment, guardrail, failures)
        else:
            found += _outcome(experiment, guardrail, observations)
    return found


def _errors(
    experiment: Experiment, guardrail: Guardrail, failures: Sequence[tuple[str, int, bool]]
) -> list[Check]:
    replay = _replay(experiment, guardrail, _SHARE_TAU, shares=True)
    for arm, period, failed in failures:
        replay.add(arm, float(failed), period)
    return [_judge(replay, guardrail, arm.name, above=True) for arm in experiment.arms[1:]]


def _latency(
    experiment: Experiment, guardrail: Guardrail, latencies: Sequence[tuple[str, int, float]]
) -> list[Check]:
    control = experiment.control.name
    calibration: list[float] = []
    start = len(latencies)
    for i, (arm, _, ms) in enumerate(latencies):
        if arm == control:
            calibration.append(ms)
            if len(calibration) == CALIBRATION:
                start = i + 1
                break
    threshold = _percentile_95(calibration) if len(calibration) == CALIBRATION else None
    replay = _replay(experiment, guardrail, _SHARE_TAU)
    if threshold is not None:
        for arm, period, ms in latencies[start:]:
            replay.add(arm, float(ms > threshold), period)
    return [
        _judge(replay, guardrail, arm.name, above=True, threshold_ms=threshold)
        for arm in experiment.arms[1:]
    ]


def _outcome(
    experiment: Experiment, guardrail: Guardrail, observations: Sequence[Observation]
) -> list[Check]:
    replay = _replay(experiment, guardrail, None)
    for o in observations:
        if o.outcome is not None and o.role == "served":
            replay.add(o.arm, float(o.outcome), o.period)
    return [_judge(replay, guardrail, arm.name, above=False) for arm in experiment.arms[1:]]


def _replay(
    experiment: Experiment, guardrail: Guardrail, tau: float | None, *, shares: bool = False
) -> SplitReplay:
    """The sequential test, mixing at the margin's scale (or ``tau``; an outcome without a
    margin mixes at a quarter of its pooled standard deviation, as the metric does)."""

    def tau2(pooled_variance: float) -> float:
        if guardrail.margin > 0:
            return guardrail.margin**2
        return tau**2 if tau is not None else 0.0625 * pooled_variance

    challengers = [arm.name for arm in experiment.arms[1:]]
    return SplitReplay(experiment.control.name, challengers, experiment.alpha, tau2, shares=shares)


def _judge(
    replay: SplitReplay,
    guardrail: Guardrail,
    arm: str,
    *,
    above: bool,
    threshold_ms: float | None = None,
) -> Check:
    test = replay.tests.get(arm)
    estimate = replay.estimate(arm) if test is not None else None
    interval = None if test is None else test.interval
    breached = False
    if interval is not None:
        low, high = interval
        breached = low > guardrail.margin if above else high < -guardrail.margin
    return Check(
        guardrail,
        arm,
        None if estimate is None else estimate[0],
        interval,
        None if test is None else test.p_value,
        breached,
        threshold_ms,
    )


def _percentile_95(values: Sequence[float]) -> float:
    """The nearest-rank 95th percentile: a latency some request actually had."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]
