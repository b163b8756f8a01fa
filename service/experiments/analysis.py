"""An experiment's live results, computed from its stored exposures and feedback."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict
from typing import Any

from service.experiments import guardrails
from service.experiments.decision import Contrast, decide
from service.experiments.definition import Experiment
from service.experiments.replay import MIN_PER_ARM, SplitReplay
from service.experiments.statistics import (
    Moments,
    Sequential,
    feedback_balance,
    mean_interval,
    sample_ratio,
    wilson,
)
from service.experiments.store import ArmCounts, ExperimentStore, Observation, Period
from service.statistics import mcnemar_exact

DEFAULT_TAU = {"accuracy": 0.05}
"""Mixing scale without a minimum detectable effect: 5 accuracy points; outcomes use a quarter
of their pooled standard deviation at the test's first look."""

TRAJECTORY_POINTS = 200


def results(store: ExperimentStore, experiment: Experiment) -> dict[str, Any]:
    """Per-arm results, the comparison with the control and the decision."""
    counts = store.arm_counts(experiment.id)
    observations = store.observations(experiment.id)
    metric = experiment.metric or _metric(observations)
    shadow = experiment.mode == "shadow"
    arms_out: list[dict[str, Any]] = []
    for index, arm in enumerate(experiment.arms):
        role = "shadow" if shadow and index > 0 else "served"
        c = counts.get(experiment.arms[0].name if role == "shadow" else arm.name)
        mine = [o for o in observations if o.arm == arm.name and o.role == role]
        labelled = [o for o in mine if o.label is not None]
        correct = sum(o.label == o.predicted for o in labelled)
        outcomes = Moments()
        for o in mine:
            if o.outcome is not None and role == "served":
                outcomes.add(o.outcome)
        arms_out.append(
            {
                "name": arm.name,
                "variant": arm.variant,
                "version": arm.version,
                "weight": arm.weight,
                "role": role,
                "exposures": 0 if c is None else c.exposures,
                "units": 0 if c is None else c.units,
                "exposures_without_unit": 0 if c is None else c.without_unit,
                "feedback": len(mine),
                "labelled": len(labelled),
                "accuracy": correct / len(labelled) if labelled else None,
                "accuracy_interval": list(wilson(correct, len(labelled))) if labelled else None,
                "outcomes": outcomes.n,
                "mean_outcome": outcomes.mean if outcomes.n else None,
                "mean_outcome_interval": _list(mean_interval(outcomes)),
            }
        )
    comparison = (
        _shadow_comparison(store, experiment, observations)
        if shadow
        else _split_comparison(
            experiment,
            observations,
            metric,
            counts,
            store.periods(experiment.id),
            store.period_counts(experiment.id),
            _guardrails(store, experiment, observations),
        )
    )
    return {"metric": metric, "arms": arms_out, "comparison": comparison}


def _guardrails(
    store: ExperimentStore, experiment: Experiment, observations: list[Observation]
) -> list[guardrails.Check]:
    """Every guardrail's check, reading the routed requests once for latency and errors."""
    reads_requests = experiment.guards("latency") or experiment.guards("errors")
    routed = store.routed(experiment.id) if reads_requests else []
    latencies = [(r.arm, r.period, r.latency_ms) for r in routed if not r.failed]
    failures = [(r.arm, r.period, r.failed) for r in routed]
    return guardrails.check(experiment, latencies, observations, failures)


def _metric(observations: list[Observation]) -> str:
    if any(o.label is not None for o in observations):
        return "accuracy"
    if any(o.outcome is not None for o in observations):
        return "outcome"
    return "accuracy"


def _value(o: Observation, metric: str) -> float | None:
    if metric == "accuracy":
        return None if o.label is None else float(o.label == o.predicted)
    return o.outcome


def _tau2(experiment: Experiment, metric: str, pooled_variance: float) -> float:
    if experiment.mde is not None:
        return experiment.mde**2
    if metric in DEFAULT_TAU:
        return DEFAULT_TAU[metric] ** 2
    return 0.0625 * pooled_variance


def _expected_shares(
    experiment: Experiment, periods: list[Period], by_period: dict[tuple[int, str], ArmCounts]
) -> list[float]:
    """Each arm's expected count: every period's units shared out by that period's weights
    (with one period, simply the weights)."""
    if len(periods) <= 1:
        return [arm.weight for arm in experiment.arms]
    expected = [0.0] * len(experiment.arms)
    for p in periods:
        total = sum(_srm_count(by_period.get((p.period, arm.name))) for arm in experiment.arms)
        weight_sum = sum(p.weights.get(arm.name, 0.0) for arm in experiment.arms)
        for i, arm in enumerate(experiment.arms):
            expected[i] += total * p.weights.get(arm.name, 0.0) / weight_sum
    # Nothing served yet: the current weights, which the test needs no counts to use.
    return expected if sum(expected) > 0 else [arm.weight for arm in experiment.arms]


def _split_comparison(
    experiment: Experiment,
    observations: list[Observation],
    metric: str,
    counts: Any,
    periods: list[Period],
    by_period: dict[tuple[int, str], ArmCounts],
    checks: list[guardrails.Check],
) -> dict[str, Any]:
    control = experiment.control.name
    challengers = [arm.name for arm in experiment.arms[1:]]
    replay = SplitReplay(
        control, challengers, experiment.alpha, lambda pooled: _tau2(experiment, metric, pooled)
    )
    for o in observations:
        value = _value(o, metric)
        if value is not None:
            replay.add(o.arm, value, o.period)
    alpha_each = replay.alpha_each
    contrasts_out = []
    contrasts = []
    for name in challengers:
        found = replay.tests.get(name)
        fixed = replay.fixed(name)
        entry: dict[str, Any] = {
            "arm": name,
            "against": control,
            "metric": metric,
            "alpha": alpha_each,
        }
        if found is None or fixed is None:
            entry.update(
                difference=None,
                interval=None,
                p_value=None,
                always_valid_p_value=None,
                confidence_sequence=None,
                trajectory=[],
            )
        else:
            test = found
            entry.update(
                difference=fixed.difference,
                interval=list(fixed.interval),
                p_value=fixed.p_value,
                always_valid_p_value=test.p_value,
                confidence_sequence=_list(test.interval),
                mixing_tau=math.sqrt(test.tau2),
                trajectory=_thin(replay.trajectory[name]),
            )
            contrasts.append(Contrast(name, fixed.difference, test.p_value, test.interval))
        contrasts_out.append(entry)
    srm = sample_ratio(
        [_srm_count(counts.get(arm.name)) for arm in experiment.arms],
        _expected_shares(experiment, periods, by_period),
    )
    # Feedback that carries the metric, over served exposures: an arm whose users answer
    # less often is measured on other requests than the control is.
    measured = Counter(o.arm for o in observations if _value(o, metric) is not None)
    balance = feedback_balance(
        [measured[arm.name] for arm in experiment.arms],
        [_exposures(counts.get(arm.name)) for arm in experiment.arms],
    )
    decision = decide(
        control,
        contrasts,
        alpha=experiment.alpha,
        mde=experiment.mde,
        metric=metric,
        srm_p=srm.p_value,
        srm_flagged=srm.mismatch,
        feedback_p=balance.p_value,
        feedback_flagged=balance.mismatch,
        breaches=[c.message for c in checks if c.breached],
        stopped=experiment.status == "stopped",
    )
    return {
        "control": control,
        "contrasts": contrasts_out,
        "guardrails": [c.to_json() for c in checks],
        "sample_ratio": {
            "observed": list(srm.observed),
            "expected": list(srm.expected),
            "chi2": srm.chi2,
            "p_value": srm.p_value,
            "mismatch": srm.mismatch,
            "counted": "distinct units plus requests without a unit, per arm",
        },
        "feedback_rate": {
            "feedback": list(balance.feedback),
            "exposures": list(balance.exposures),
            "rates": list(balance.rates),
            "chi2": balance.chi2,
            "p_value": balance.p_value,
            "mismatch": balance.mismatch,
            "counted": f"exposures with feedback that carries the {metric}, per arm",
        },
        "decision": asdict(decision),
    }


def _exposures(c: Any) -> int:
    return 0 if c is None else int(c.exposures)


def _srm_count(c: Any) -> int:
    """Units (and unit-less requests) assigned to the arm: answered or failed."""
    return 0 if c is None else int(c.assigned_units + c.assigned_without_unit)


def _shadow_comparison(
    store: ExperimentStore, experiment: Experiment, observations: list[Observation]
) -> dict[str, Any]:
    control, challenger = experiment.arms[0].name, experiment.arms[1].name
    pairs = store.shadow_pairs(experiment.id)
    agreement = sum(p.served == p.shadow for p in pairs) / len(pairs) if pairs else None
    divergences = [p.divergence for p in pairs if p.divergence is not None]
    # Labelled pairs: the label is about the input, so it judges both predictions.
    by_request: dict[str, dict[str, Observation]] = {}
    for o in observations:
        if o.label is not None:
            by_request.setdefault(o.request_id, {})[o.role] = o
    diffs = Moments()
    test: Sequential | None = None
    trajectory: list[list[float]] = []
    only_control = only_challenger = 0
    for roles in by_request.values():
        if "served" not in roles or "shadow" not in roles:
            continue
        right_a = roles["served"].label == roles["served"].predicted
        right_b = roles["shadow"].label == roles["shadow"].predicted
        only_control += right_a and not right_b
        only_challenger += right_b and not right_a
        diffs.add(float(right_b) - float(right_a))
        if diffs.n >= MIN_PER_ARM and diffs.variance > 0:
            if test is None:
                test = Sequential(experiment.alpha, _tau2(experiment, "accuracy", 0.0))
            test.update(diffs.mean, diffs.variance / diffs.n)
            trajectory.append(
                [diffs.n, test.p_value, mcnemar_exact(only_control, only_challenger).p_value]
            )
    mcnemar = mcnemar_exact(only_control, only_challenger)
    contrasts = (
        [] if test is None else [Contrast(challenger, diffs.mean, test.p_value, test.interval)]
    )
    decision = decide(
        control,
        contrasts,
        alpha=experiment.alpha,
        mde=experiment.mde,
        metric="accuracy",
        srm_p=None,
        srm_flagged=False,
        stopped=experiment.status == "stopped",
    )
    return {
        "control": control,
        "paired": {
            "pairs": len(pairs),
            "agreement": agreement,
            "mean_divergence": sum(divergences) / len(divergences) if divergences else None,
            "divergence": "Jensen-Shannon, bits",
            "labelled_pairs": diffs.n,
            "only_control_correct": only_control,
            "only_challenger_correct": only_challenger,
            "mcnemar_p_value": mcnemar.p_value,
        },
        "contrasts": [
            {
                "arm": challenger,
                "against": control,
                "metric": "accuracy",
                "alpha": experiment.alpha,
                "difference": diffs.mean if diffs.n else None,
                "p_value": mcnemar.p_value,
                "always_valid_p_value": None if test is None else test.p_value,
                "confidence_sequence": None if test is None else _list(test.interval),
                "trajectory": _thin(trajectory),
            }
        ],
        "guardrails": [],
        "sample_ratio": None,
        "feedback_rate": None,
        "decision": asdict(decision),
    }


def _list(pair: tuple[float, float] | None) -> list[float] | None:
    return None if pair is None else [pair[0], pair[1]]


def _thin(points: list[list[float]]) -> list[list[float]]:
    """At most TRAJECTORY_POINTS points, evenly spaced, always with the last one."""
    if len(points) <= TRAJECTORY_POINTS:
        return points
    step = len(points) / TRAJECTORY_POINTS
    picked = [points[int(i * step)] for i in range(TRAJECTORY_POINTS - 1)]
    return [*picked, points[-1]]
