"""The automatic policy: promote a winning challenger, roll back a harmful one, exactly once."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from pydantic import ValidationError

from service.experiments import policy
from service.experiments.definition import (
    ArmSpec,
    Experiment,
    ExperimentSpec,
    GuardrailSpec,
    Policy,
    PolicySpec,
)
from service.experiments.store import ExperimentStore
from tests.service.experiments.test_guardrails import _serve

ARMS = [ArmSpec(name="a", variant="pretrained"), ArmSpec(name="b", variant="baseline")]


def _create(store: ExperimentStore, **fields: object) -> Experiment:
    spec = ExperimentSpec(name="p", model="tiny", arms=ARMS, **fields)  # type: ignore[arg-type]
    return store.create(spec.to_experiment())


def test_the_policy_is_opt_in_split_only_and_stored(store: ExperimentStore) -> None:
    assert _create(store).policy is None
    with pytest.raises(ValidationError, match="the policy is for split mode"):
        ExperimentSpec(name="s", model="tiny", arms=ARMS, mode="shadow", policy=PolicySpec())
    created = store.create(
        ExperimentSpec(
            name="q", model="tiny", arms=ARMS, policy=PolicySpec(rollback=False)
        ).to_experiment()
    )
    assert created.policy == Policy(promote=True, rollback=False)
    assert store.get("q") == created


def test_a_winning_challenger_is_promoted_once(store: ExperimentStore) -> None:
    e = _create(store, policy=PolicySpec())
    _serve(store, e, {"a": (10, 1), "b": (10, 1)}, 400, 1, accuracy={"a": 0.6, "b": 0.95})
    assert policy.evaluate(store, e) == "promote"
    assert store.default_variant("tiny")[:2] == ("baseline", None)
    after = store.get("p")
    assert after is not None
    assert after.status == "stopped"
    assert policy.evaluate(store, after) is None  # stopped: nothing more to do
    (created, promoted) = store.actions(e.id)
    assert created.action == "create"
    assert (promoted.action, promoted.actor) == ("promote", "policy")
    assert promoted.detail["arm"] == "b"
    assert promoted.detail["decision"].startswith("arm b better than a")
    assert promoted.detail["contrasts"][0]["confidence_sequence"][0] > 0


def test_a_breached_guardrail_rolls_back_to_the_control(store: ExperimentStore) -> None:
    e = _create(store, policy=PolicySpec(), guardrails=[GuardrailSpec(metric="latency")])
    _serve(store, e, {"a": (10, 1), "b": (13, 1)}, 400, 2, accuracy={"a": 0.6, "b": 0.95})
    assert policy.evaluate(store, e) == "rollback"
    assert store.default_variant("tiny")[:2] == ("pretrained", None)  # the control's
    rollback = store.actions(e.id)[-1]
    assert (rollback.action, rollback.actor, rollback.detail["arm"]) == ("rollback", "policy", "a")
    assert rollback.detail["decision"].startswith("arm b breaches the latency guardrail")
    assert rollback.detail["guardrails"][0]["breached"]


def test_a_worse_challenger_is_rolled_back(store: ExperimentStore) -> None:
    e = _create(store, policy=PolicySpec())
    _serve(store, e, {"a": (10, 1), "b": (10, 1)}, 400, 3, accuracy={"a": 0.95, "b": 0.6})
    assert policy.evaluate(store, e) == "rollback"


def test_nothing_happens_without_a_verdict_or_when_the_policy_says_not_to(
    store: ExperimentStore,
) -> None:
    collecting = _create(store, policy=PolicySpec())
    _serve(store, collecting, {"a": (10, 1), "b": (10, 1)}, 20, 4, accuracy={"a": 0.8, "b": 0.8})
    assert policy.evaluate(store, collecting) is None
    manual = store.create(
        ExperimentSpec(
            name="manual", model="tiny", arms=ARMS, policy=PolicySpec(promote=False)
        ).to_experiment()
    )
    _serve(store, manual, {"a": (10, 1), "b": (10, 1)}, 400, 5, accuracy={"a": 0.6, "b": 0.95})
    assert policy.evaluate(store, manual) is None
    assert {e.status for e in store.all()} == {"running"}
    assert store.default_variant("tiny") is None


def test_of_workers_racing_on_the_same_results_exactly_one_acts(store: ExperimentStore) -> None:
    e = _create(store, policy=PolicySpec())
    _serve(store, e, {"a": (10, 1), "b": (10, 1)}, 400, 6, accuracy={"a": 0.6, "b": 0.95})
    taken: list[str | None] = []
    start = threading.Barrier(4)

    def act() -> None:
        start.wait()
        taken.append(policy.evaluate(store, e))  # each holds the definition as it was read

    threads = [threading.Thread(target=act) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Counter(taken) == {"promote": 1, None: 3}
    assert [a.action for a in store.actions(e.id)] == ["create", "promote"]


def test_the_runner_acts_on_every_running_experiment_with_a_policy(
    store: ExperimentStore,
) -> None:
    e = _create(store, policy=PolicySpec())
    _serve(store, e, {"a": (10, 1), "b": (10, 1)}, 400, 7, accuracy={"a": 0.6, "b": 0.95})
    runner = policy.Runner(lambda: store, interval=60)
    assert runner.tick() == [("p", "promote")]
    assert runner.tick() == []
    assert policy.Runner(lambda: None, interval=60).tick() == []  # no database: nothing
