from __future__ import annotations

import time

import pytest

from service.errors import Conflict
from service.experiments.definition import ArmSpec, ExperimentSpec
from service.experiments.store import ExperimentStore, Exposure, FeedbackItem


def _spec(name: str = "ab", mode: str = "split", metric: str = "accuracy") -> ExperimentSpec:
    return ExperimentSpec(
        name=name,
        model="tiny",
        mode=mode,  # type: ignore[arg-type]
        metric=metric,  # type: ignore[arg-type]
        arms=[
            ArmSpec(name="a", variant="pretrained"),
            ArmSpec(name="b", variant="baseline", weight=3),
        ],
    )


def _exposure(experiment_id: int, request_id: str, arm: str = "a", **kw: object) -> Exposure:
    fields: dict[str, object] = {
        "role": "served",
        "unit": None,
        "predicted": "3",
        "probability": 0.9,
        "latency_ms": 1.0,
    }
    fields.update(kw)
    return Exposure(experiment_id=experiment_id, arm=arm, request_id=request_id, **fields)  # type: ignore[arg-type]


def test_migrate_creates_the_newest_schema_and_is_repeatable(store: ExperimentStore) -> None:
    assert store.schema_version() == "0006"
    store.migrate()
    assert store.schema_version() == "0006"


def test_an_experiment_stored_before_metrics_were_declared_keeps_inferring_its_own(
    database_url: str,
) -> None:
    from sqlalchemy import text

    old = ExperimentStore(database_url)
    try:
        old.migrate("0001")
        with old.engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO experiments (name, model, mode, salt, alpha, status, created_at)"
                    " VALUES ('old', 'tiny', 'split', 's', 0.05, 'running', 7)"
                )
            )
            connection.execute(
                text(
                    "INSERT INTO arms (experiment_id, position, name, variant, weight) SELECT id,"
                    " n, arm, 'baseline', w FROM experiments, (SELECT 0 AS n, 'a' AS arm, 1.0 AS w"
                    " UNION ALL SELECT 1, 'b', 2.0) AS arms WHERE name = 'old'"
                )
            )
        old.migrate()
        assert old.schema_version() == "0006"
        found = old.get("old")
        assert found is not None
        assert found.metric is None
        assert found.period == 0
        assert found.guardrails == ()  # stored before guardrails: none
        assert [a.version for a in found.arms] == [None, None]  # before versions: the default
        (period,) = old.periods(found.id)  # it ran under its arms' weights from its creation
        assert (period.period, period.started_at, period.weights) == (0, 7.0, {"a": 1.0, "b": 2.0})
        declared = old.create(_spec(name="new", metric="outcome").to_experiment())
        assert old.get("new") == declared
        assert declared.metric == "outcome"
    finally:
        old.dispose()


def test_an_experiment_round_trips_with_its_arms_in_order(store: ExperimentStore) -> None:
    created = store.create(_spec().to_experiment())
    assert created.id > 0
    assert [(a.name, a.variant, a.weight) for a in created.arms] == [
        ("a", "pretrained", 1.0),
        ("b", "baseline", 3.0),
    ]
    assert store.get("ab") == created
    assert [e.name for e in store.all()] == ["ab"]
    assert store.get("missing") is None


def test_a_taken_name_is_a_conflict(store: ExperimentStore) -> None:
    store.create(_spec().to_experiment())
    with pytest.raises(Conflict, match="already exists"):
        store.create(_spec().to_experiment())


def test_stop_records_the_time_once(store: ExperimentStore) -> None:
    store.create(_spec().to_experiment())
    stopped = store.stop("ab")
    assert stopped is not None
    assert stopped.status == "stopped"
    assert stopped.stopped_at is not None
    again = store.stop("ab")
    assert again is not None
    assert again.stopped_at == stopped.stopped_at
    assert store.stop("missing") is None


def test_a_reused_request_id_is_a_conflict(store: ExperimentStore) -> None:
    e = store.create(_spec().to_experiment())
    store.record_exposures([_exposure(e.id, "r1")])
    with pytest.raises(Conflict, match="X-Request-ID"):
        store.record_exposures([_exposure(e.id, "r1", arm="b")])


def test_arm_counts_count_exposures_units_and_unitless(store: ExperimentStore) -> None:
    e = store.create(_spec().to_experiment())
    store.record_exposures(
        [
            _exposure(e.id, "r1", unit="u1"),
            _exposure(e.id, "r2", unit="u1"),
            _exposure(e.id, "r3", unit=None),
            _exposure(e.id, "r4", arm="b", unit="u2"),
        ]
    )
    counts = store.arm_counts(e.id)
    assert (counts["a"].exposures, counts["a"].units, counts["a"].without_unit) == (3, 1, 1)
    assert (counts["b"].exposures, counts["b"].units, counts["b"].without_unit) == (1, 1, 0)


def test_feedback_reports_unknown_ids_and_the_latest_value_wins(store: ExperimentStore) -> None:
    e = store.create(_spec().to_experiment())
    store.record_exposures([_exposure(e.id, "r1"), _exposure(e.id, "r2", arm="b")])
    known = store.record_feedback(
        [
            FeedbackItem("r1", "3", None),
            FeedbackItem("nope", "1", None),
            FeedbackItem("r2", None, 2.5),
        ]
    )
    assert known == [("ab", "a"), None, ("ab", "b")]
    # Repeats: the same value changes nothing; a new value replaces the old one.
    assert store.record_feedback([FeedbackItem("r1", "3", None)]) == [("ab", "a")]
    assert store.record_feedback(
        [FeedbackItem("r1", "5", None), FeedbackItem("r1", "4", None)]
    ) == [("ab", "a"), ("ab", "a")]
    store.record_feedback([FeedbackItem("r2", None, 1.0)])
    rows = {o.request_id: o for o in store.observations(e.id)}
    assert set(rows) == {"r1", "r2"}
    assert (rows["r1"].label, rows["r1"].outcome, rows["r1"].predicted) == ("4", None, "3")
    assert (rows["r2"].label, rows["r2"].outcome, rows["r2"].arm) == (None, 1.0, "b")


def test_a_label_and_an_outcome_for_one_request_are_both_kept(store: ExperimentStore) -> None:
    e = store.create(_spec().to_experiment())
    store.record_exposures([_exposure(e.id, "r1")])
    store.record_feedback([FeedbackItem("r1", "3", None)])
    store.record_feedback([FeedbackItem("r1", None, 0.5)])
    (row,) = store.observations(e.id)
    assert (row.label, row.outcome) == ("3", 0.5)


def test_a_thousand_feedback_items_in_one_call(store: ExperimentStore) -> None:
    e = store.create(_spec().to_experiment())
    store.record_exposures([_exposure(e.id, f"r{i}") for i in range(1000)])
    known = store.record_feedback([FeedbackItem(f"r{i}", str(i % 10), None) for i in range(1000)])
    assert all(k == ("ab", "a") for k in known)
    assert len(store.observations(e.id)) == 1000


def test_shadow_pairs_join_served_and_shadow_predictions(store: ExperimentStore) -> None:
    e = store.create(_spec(mode="shadow").to_experiment())
    store.record_exposures([_exposure(e.id, "r1", predicted="3")])
    store.record_exposures(
        [_exposure(e.id, "r1", arm="b", role="shadow", predicted="5", divergence=0.25)]
    )
    (pair,) = store.shadow_pairs(e.id)
    assert (pair.served, pair.shadow, pair.divergence) == ("3", "5", 0.25)
    # Feedback on a request counts for both its served and its shadow prediction.
    store.record_feedback([FeedbackItem("r1", "5", None)])
    assert sorted(o.role for o in store.observations(e.id)) == ["served", "shadow"]


def test_exposures_are_refused_once_the_experiment_stopped(store: ExperimentStore) -> None:
    e = store.create(_spec().to_experiment())
    assert store.record_exposures([_exposure(e.id, "r1", unit=None)]) is True
    store.stop("ab")
    assert store.record_exposures([_exposure(e.id, "r2", unit="u")]) is False
    assert store.arm_counts(e.id)["a"].exposures == 1
    # A shadow run of a request served before the stop is still recorded.
    shadow = _exposure(e.id, "r1", arm="b", role="shadow", divergence=None)
    assert store.record_exposures([shadow], while_running=False) is True


def test_definitions_are_cached_but_stops_are_seen(store: ExperimentStore) -> None:
    e = store.create(_spec().to_experiment())
    assert store.definition("ab") == e
    store.stop("ab")
    assert store.definition("ab") == e  # cached: the write below checks the status
    assert store.record_exposures([_exposure(e.id, "r1")]) is False
    store.forget("ab")
    cached = store.definition("ab")
    assert cached is not None
    assert cached.status == "stopped"
    assert store.definition("missing") is None


def test_a_ramp_starts_a_period_and_every_action_is_on_record(store: ExperimentStore) -> None:
    created = store.create(_spec().to_experiment(), actor="admin")
    assert created.period == 0
    ramped = store.ramp("ab", {"a": 1.0, "b": 1.0}, actor="admin")
    assert ramped.period == 1
    assert [(a.name, a.weight) for a in ramped.arms] == [("a", 1.0), ("b", 1.0)]
    periods = store.periods(created.id)
    assert [(p.period, p.weights) for p in periods] == [
        (0, {"a": 1.0, "b": 3.0}),
        (1, {"a": 1.0, "b": 1.0}),
    ]
    assert periods[0].started_at <= periods[1].started_at
    store.stop("ab", actor="policy", detail={"why": "guardrail"})
    actions = store.actions(created.id)
    assert [(a.action, a.actor) for a in actions] == [
        ("create", "admin"),
        ("ramp", "admin"),
        ("stop", "policy"),
    ]
    assert actions[1].detail == {
        "period": 1,
        "before": {"a": 1.0, "b": 3.0},
        "after": {"a": 1.0, "b": 1.0},
    }
    assert actions[2].detail == {"why": "guardrail"}
    store.stop("ab")  # stopping again changes nothing and records nothing
    assert len(store.actions(created.id)) == 3


def test_a_stopped_experiment_cannot_be_ramped(store: ExperimentStore) -> None:
    from service.errors import ExperimentNotFound, ExperimentStopped

    store.create(_spec().to_experiment())
    store.stop("ab")
    with pytest.raises(ExperimentStopped):
        store.ramp("ab", {"a": 1.0, "b": 1.0})
    with pytest.raises(ExperimentNotFound):
        store.ramp("missing", {"a": 1.0, "b": 1.0})


def test_exposures_keep_the_period_that_assigned_them(store: ExperimentStore) -> None:
    e = store.create(_spec().to_experiment())
    store.record_exposures([_exposure(e.id, "r0")])
    store.ramp("ab", {"a": 1.0, "b": 1.0})
    store.record_exposures(
        [_exposure(e.id, "r1", period=1), _exposure(e.id, "r2", arm="b", period=1)]
    )
    counts = store.period_counts(e.id)
    assert {k: v.exposures for k, v in counts.items()} == {(0, "a"): 1, (1, "a"): 1, (1, "b"): 1}
    assert {k: v.exposures for k, v in store.arm_counts(e.id).items()} == {"a": 2, "b": 1}


def test_a_lost_database_leaves_the_default_variant_as_last_known(
    store: ExperimentStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import OperationalError

    from service.experiments import store as module

    store.create(_spec().to_experiment())
    store.promote("ab", "b", {"decision": "by hand"})
    assert store.default_variant("tiny")[:2] == ("baseline", None)

    def lost(*_: object, **__: object) -> None:
        raise OperationalError("SELECT", {}, Exception("server closed the connection"))

    monkeypatch.setattr(module, "DEFINITION_TTL_S", 0.0)  # every call reads again
    monkeypatch.setattr(store.engine, "connect", lost)
    assert store.default_variant("tiny")[:2] == (
        "baseline",
        None,
    )  # kept, not raised into a request
    assert store.default_variant("other") is None


def test_kept_defaults_are_answered_without_the_database_and_follow_promotions(
    store: ExperimentStore, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.create(_spec().to_experiment())
    store.keep_defaults_fresh(interval=0.05)
    assert store.default_variant("tiny") is None
    store.promote("ab", "b", {"decision": "by hand"})
    assert store.default_variant("tiny")[:2] == ("baseline", None)  # this process: at once

    other = ExperimentStore(database_url)  # another worker, which promotes back
    try:
        other.create(_spec("cd").to_experiment())
        other.promote("cd", "a", {"decision": "by hand"})
    finally:
        other.dispose()
    deadline = time.monotonic() + 30
    while store.default_variant("tiny")[:2] != ("pretrained", None):
        assert time.monotonic() < deadline, "the other worker's promotion never arrived"
        time.sleep(0.01)

    def unreachable(*_: object, **__: object) -> None:
        raise AssertionError("a kept default was read from the database")

    monkeypatch.setattr(store, "_read_defaults", lambda: None)  # the thread's reads
    time.sleep(0.2)  # a read under way when it was replaced has ended
    monkeypatch.setattr(store.engine, "connect", unreachable)  # and any other
    for _ in range(3):
        assert store.default_variant("tiny")[:2] == ("pretrained", None)
        assert store.default_variant("other") is None


def test_model_loads_are_kept_newest_first(store: ExperimentStore) -> None:
    store.record_repository_action("load", "m", "pretrained", "done", {"onnx_sha256": "ab"})
    store.record_repository_action("load", "m", "baseline", "failed", {"reason": "x" * 5000})
    found = store.repository_actions()
    assert [(a["variant"], a["outcome"], a["actor"]) for a in found] == [
        ("baseline", "failed", "admin"),
        ("pretrained", "done", "admin"),
    ]
    assert found[0]["detail"] == {"reason": "x" * 5000}  # a long reason is kept whole
    assert len(store.repository_actions(limit=1)) == 1
