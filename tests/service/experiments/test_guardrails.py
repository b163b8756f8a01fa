"""Guardrails: declared with the experiment, stored, tested sequentially, and ahead of any
winner in the decision."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from service.experiments import guardrails
from service.experiments.analysis import results
from service.experiments.definition import (
    ArmSpec,
    Experiment,
    ExperimentSpec,
    Guardrail,
    GuardrailSpec,
)
from service.experiments.store import ExperimentStore, Exposure, FeedbackItem

ARMS = [ArmSpec(name="a", variant="pretrained"), ArmSpec(name="b", variant="baseline")]


def _spec(**fields: object) -> ExperimentSpec:
    return ExperimentSpec(name="g", model="tiny", arms=ARMS, **fields)  # type: ignore[arg-type]


def _create(store: ExperimentStore, *rails: GuardrailSpec, **fields: object) -> Experiment:
    return store.create(_spec(guardrails=list(rails), **fields).to_experiment())


def _serve(
    store: ExperimentStore,
    e: Experiment,
    latency: dict[str, tuple[float, float]],
    n: int,
    seed: int,
    *,
    accuracy: dict[str, float] | None = None,
    outcome: dict[str, float] | None = None,
) -> None:
    """``n`` requests per arm, taking turns, each arm's latency ~ N(mean, sd) ms; feedback
    labels right with ``accuracy``, or outcomes ~ N(mean, 1)."""
    rng = np.random.default_rng(seed)
    exposures, feedback = [], []
    for i in range(n):
        for arm, (mean, sd) in latency.items():
            rid = f"{arm}-{seed}-{i}"
            ms = max(0.1, float(rng.normal(mean, sd)))
            exposures.append(Exposure(e.id, arm, "served", rid, rid, "1", 0.9, ms))
            if accuracy is not None:
                feedback.append(
                    FeedbackItem(rid, "1" if rng.random() < accuracy[arm] else "2", None)
                )
            if outcome is not None:
                feedback.append(FeedbackItem(rid, None, float(rng.normal(outcome[arm], 1.0))))
    store.record_exposures(exposures)
    if feedback:
        store.record_feedback(feedback)


def test_guardrails_are_declared_once_each_and_only_where_they_mean_something() -> None:
    with pytest.raises(ValidationError, match="one guardrail per metric"):
        _spec(guardrails=[GuardrailSpec(metric="latency"), GuardrailSpec(metric="latency")])
    with pytest.raises(ValidationError, match="guardrails are for split mode"):
        _spec(mode="shadow", guardrails=[GuardrailSpec(metric="latency")])
    with pytest.raises(ValidationError, match="outcome is this experiment's metric already"):
        _spec(metric="outcome", guardrails=[GuardrailSpec(metric="outcome")])
    with pytest.raises(ValidationError):
        GuardrailSpec(metric="latency", margin=-0.1)
    with pytest.raises(ValidationError):
        GuardrailSpec(metric="throughput")  # type: ignore[arg-type]
    declared = _spec(
        guardrails=[GuardrailSpec(metric="latency"), GuardrailSpec(metric="outcome", margin=0.2)]
    ).to_experiment()
    assert declared.guardrails == (Guardrail("latency", 0.05), Guardrail("outcome", 0.2))


def test_guardrails_are_stored_with_the_experiment(store: ExperimentStore) -> None:
    created = _create(store, GuardrailSpec(metric="latency", margin=0.1))
    found = store.get("g")
    assert found == created
    assert found is not None
    assert found.guardrails == (Guardrail("latency", 0.1),)


def test_a_slower_challenger_breaches_the_latency_guardrail_before_it_can_win(
    store: ExperimentStore,
) -> None:
    e = _create(store, GuardrailSpec(metric="latency"))
    # b is far more accurate, and slower: 13 ms against the control's 10.
    _serve(store, e, {"a": (10, 1), "b": (13, 1)}, 400, 1, accuracy={"a": 0.6, "b": 0.95})
    comparison = results(store, e)["comparison"]
    (check,) = comparison["guardrails"]
    assert check["metric"] == "latency"
    assert check["arm"] == "b"
    assert 11 < check["threshold_ms"] < 13  # the control's 95th percentile
    assert check["confidence_sequence"][0] > 0.05
    assert check["breached"]
    (contrast,) = comparison["contrasts"]
    assert contrast["confidence_sequence"][0] > 0  # b is better on accuracy ...
    decision = comparison["decision"]
    assert decision["state"] == "guardrail_breached"  # ... and still not the winner
    assert decision["winner"] is None
    assert decision["message"].startswith("arm b breaches the latency guardrail")


def test_an_equally_fast_challenger_does_not_breach_and_can_win(store: ExperimentStore) -> None:
    e = _create(store, GuardrailSpec(metric="latency"))
    _serve(store, e, {"a": (10, 1), "b": (10, 1)}, 400, 2, accuracy={"a": 0.6, "b": 0.95})
    comparison = results(store, e)["comparison"]
    (check,) = comparison["guardrails"]
    assert not check["breached"]
    assert comparison["decision"]["state"] == "winner"


def test_the_latency_threshold_waits_for_the_controls_first_requests(
    store: ExperimentStore,
) -> None:
    e = _create(store, GuardrailSpec(metric="latency"))
    _serve(store, e, {"a": (10, 1), "b": (30, 1)}, guardrails.CALIBRATION - 1, 3)
    (check,) = results(store, e)["comparison"]["guardrails"]
    assert (check["threshold_ms"], check["difference"], check["breached"]) == (None, None, False)


def test_a_worse_outcome_breaches_the_outcome_guardrail(store: ExperimentStore) -> None:
    e = _create(store, GuardrailSpec(metric="outcome", margin=0.1))
    _serve(store, e, {"a": (10, 1), "b": (10, 1)}, 300, 4, outcome={"a": 1.0, "b": 0.3})
    comparison = results(store, e)["comparison"]
    (check,) = comparison["guardrails"]
    assert check["breached"]
    assert check["confidence_sequence"][1] < -0.1
    assert comparison["decision"]["message"].startswith("arm b breaches the outcome guardrail")


def test_an_experiment_without_guardrails_reports_none(store: ExperimentStore) -> None:
    e = _create(store)
    _serve(store, e, {"a": (10, 1), "b": (30, 1)}, 200, 5)
    assert results(store, e)["comparison"]["guardrails"] == []


def test_the_latency_guardrail_rarely_breaches_a_challenger_as_fast_as_its_control() -> None:
    """A/A by simulation, with no margin at all: 100 experiments of 2,000 requests per arm,
    watched after every request; the always-valid test may breach at most alpha (0.05) of
    them, give or take chance."""
    rng = np.random.default_rng(0)
    rail = GuardrailSpec(metric="latency", margin=0)
    experiment = _spec(guardrails=[rail]).to_experiment()
    breached = 0
    for _ in range(100):
        latencies = [
            (arm, 0, float(rng.lognormal(2.3, 0.3))) for _i in range(2000) for arm in ("a", "b")
        ]
        (check,) = guardrails.check(experiment, latencies, [])
        breached += check.breached
    # Measured: 3 of 100 (with the default margin of 0.05: 0 of 100).
    assert breached <= 10  # alpha x 100 = 5, plus two binomial standard deviations


def _failures(
    rng: np.random.Generator, rates: dict[str, float], n: int
) -> list[tuple[str, int, bool]]:
    return [(arm, 0, bool(rng.random() < rates[arm])) for _ in range(n) for arm in rates]


def test_a_challenger_that_fails_requests_breaches_the_errors_guardrail(
    store: ExperimentStore,
) -> None:
    e = _create(store, GuardrailSpec(metric="errors"), policy=None)
    assert e.guardrails == (Guardrail("errors", 0.01),)
    rid = iter(range(10**6))
    exposures = []
    for arm, _, failed in _failures(np.random.default_rng(1), {"a": 0.0, "b": 0.2}, 400):
        i = next(rid)
        role = "failed" if failed else "served"
        exposures.append(Exposure(e.id, arm, role, f"u{i}", f"r{i}", "1", 0.9, 5.0))
    store.record_exposures(exposures)
    comparison = results(store, e)["comparison"]
    (check,) = comparison["guardrails"]
    assert check["metric"] == "errors"
    assert check["breached"] is True
    assert check["difference"] == pytest.approx(0.2, abs=0.05)
    assert comparison["decision"]["state"] == "guardrail_breached"
    assert "share of failed requests" in comparison["decision"]["message"]
    # A failed request was assigned all the same: the sample-ratio check is not misled.
    assert comparison["sample_ratio"]["mismatch"] is False


def test_the_errors_guardrail_rarely_breaches_a_challenger_as_reliable_as_its_control() -> None:
    """A/A by simulation with no margin: 100 experiments of 2,000 requests per arm, each
    failing 2% of them, watched after every request: at most alpha (0.05) may breach, give
    or take chance."""
    rng = np.random.default_rng(0)
    experiment = _spec(guardrails=[GuardrailSpec(metric="errors", margin=0)]).to_experiment()
    breached = 0
    for _ in range(100):
        failures = _failures(rng, {"a": 0.02, "b": 0.02}, 2000)
        (check,) = guardrails.check(experiment, [], [], failures)
        breached += check.breached
    assert breached <= 10  # alpha x 100 = 5, plus two binomial standard deviations


def test_failed_requests_count_as_assigned_but_never_as_answers(store: ExperimentStore) -> None:
    """A request the arm failed and its client retried under the same id: the retry's answer
    is judged, the failure is not; the sample-ratio check counts the unit once; the feedback
    rate is over answered requests."""
    e = _create(store, GuardrailSpec(metric="errors"))
    exposures, feedback = [], []
    for i in range(60):
        arm = "ab"[i % 2]
        if arm == "b" and i < 30:  # b failed its first requests; each was retried and served
            exposures.append(Exposure(e.id, arm, "failed", f"u{i}", f"r{i}", "", 0.0, 5.0))
        exposures.append(Exposure(e.id, arm, "served", f"u{i}", f"r{i}", "1", 0.9, 5.0))
        feedback.append(FeedbackItem(f"r{i}", "1", None))
    store.record_exposures(exposures)
    store.record_feedback(feedback)
    found = results(store, e)
    assert [(a["exposures"], a["feedback"], a["accuracy"]) for a in found["arms"]] == [
        (30, 30, 1.0),
        (30, 30, 1.0),
    ]
    comparison = found["comparison"]
    assert comparison["sample_ratio"]["observed"] == [30, 30]
    assert comparison["feedback_rate"]["exposures"] == [30, 30]
    assert comparison["decision"]["state"] == "collecting"
