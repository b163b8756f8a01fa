from __future__ import annotations

import numpy as np
import pytest

from service.experiments.analysis import results
from service.experiments.definition import ArmSpec, Experiment, ExperimentSpec
from service.experiments.store import ExperimentStore, Exposure, FeedbackItem


def _experiment(
    store: ExperimentStore, mode: str = "split", mde: float | None = None, metric: str = "accuracy"
) -> Experiment:
    spec = ExperimentSpec(
        name="e",
        model="tiny",
        mode=mode,  # type: ignore[arg-type]
        minimum_detectable_effect=mde,
        metric=metric,  # type: ignore[arg-type]
        arms=[ArmSpec(name="a", variant="pretrained"), ArmSpec(name="b", variant="baseline")],
    )
    return store.create(spec.to_experiment())


def _serve(
    store: ExperimentStore,
    e: Experiment,
    arm: str,
    n: int,
    accuracy: float,
    seed: int,
    labelled: int | None = None,
) -> None:
    """``n`` exposures of ``arm``, the first ``labelled`` (all by default) with a label."""
    rng = np.random.default_rng(seed)
    right = rng.random(n) < accuracy
    store.record_exposures(
        [
            Exposure(e.id, arm, "served", f"{arm}-u{i}", f"{arm}-{i}", "1", 0.9, 1.0)
            for i in range(n)
        ]
    )
    store.record_feedback(
        [
            FeedbackItem(f"{arm}-{i}", "1" if ok else "2", None)
            for i, ok in enumerate(right[:labelled])
        ]
    )


@pytest.fixture
def sqlite_store(tmp_path: object) -> ExperimentStore:
    from pathlib import Path

    store = ExperimentStore(f"sqlite:///{Path(str(tmp_path)) / 'db.sqlite'}")
    store.migrate()
    return store


def test_a_clearly_better_arm_is_called_the_winner(sqlite_store: ExperimentStore) -> None:
    e = _experiment(sqlite_store)
    _serve(sqlite_store, e, "a", 400, 0.6, 1)
    _serve(sqlite_store, e, "b", 400, 0.95, 2)
    report = results(sqlite_store, e)
    arm_a, arm_b = report["arms"]
    assert (arm_a["exposures"], arm_a["units"], arm_a["labelled"]) == (400, 400, 400)
    assert arm_a["accuracy_interval"][0] < arm_a["accuracy"] < arm_a["accuracy_interval"][1]
    (contrast,) = report["comparison"]["contrasts"]
    assert contrast["difference"] == pytest.approx(arm_b["accuracy"] - arm_a["accuracy"])
    assert contrast["always_valid_p_value"] < 0.001
    assert contrast["confidence_sequence"][0] > 0
    assert contrast["trajectory"]
    assert report["comparison"]["decision"]["state"] == "winner"
    assert report["comparison"]["decision"]["winner"] == "b"
    assert not report["comparison"]["sample_ratio"]["mismatch"]


def test_a_broken_split_is_flagged_before_any_winner(sqlite_store: ExperimentStore) -> None:
    e = _experiment(sqlite_store)
    _serve(sqlite_store, e, "a", 600, 0.6, 1)
    _serve(sqlite_store, e, "b", 400, 0.95, 2)
    comparison = results(sqlite_store, e)["comparison"]
    assert comparison["sample_ratio"]["mismatch"]
    assert comparison["decision"]["state"] == "sample_ratio_mismatch"
    assert "do not trust" in comparison["decision"]["message"]


def test_an_arm_labelled_less_often_is_flagged_before_any_winner(
    sqlite_store: ExperimentStore,
) -> None:
    e = _experiment(sqlite_store)
    _serve(sqlite_store, e, "a", 500, 0.6, 1, labelled=400)
    _serve(sqlite_store, e, "b", 500, 0.95, 2, labelled=250)
    comparison = results(sqlite_store, e)["comparison"]
    assert not comparison["sample_ratio"]["mismatch"]
    rate = comparison["feedback_rate"]
    assert (rate["feedback"], rate["exposures"], rate["rates"]) == (
        [400, 250],
        [500, 500],
        [0.8, 0.5],
    )
    assert rate["mismatch"]
    assert comparison["decision"]["state"] == "feedback_rate_mismatch"
    assert "do not trust" in comparison["decision"]["message"]


def test_equal_feedback_rates_pass_the_check(sqlite_store: ExperimentStore) -> None:
    e = _experiment(sqlite_store)
    _serve(sqlite_store, e, "a", 500, 0.6, 1, labelled=300)
    _serve(sqlite_store, e, "b", 500, 0.95, 2, labelled=310)
    comparison = results(sqlite_store, e)["comparison"]
    assert not comparison["feedback_rate"]["mismatch"]
    assert comparison["decision"]["state"] == "winner"


def test_without_feedback_it_is_still_collecting(sqlite_store: ExperimentStore) -> None:
    e = _experiment(sqlite_store)
    comparison = results(sqlite_store, e)["comparison"]
    assert comparison["decision"]["state"] == "collecting"
    assert comparison["contrasts"][0]["always_valid_p_value"] is None


def test_equal_arms_with_a_minimum_effect_end_in_no_difference(
    sqlite_store: ExperimentStore,
) -> None:
    e = _experiment(sqlite_store, mde=0.1)
    _serve(sqlite_store, e, "a", 1500, 0.8, 1)
    _serve(sqlite_store, e, "b", 1500, 0.8, 2)
    decision = results(sqlite_store, e)["comparison"]["decision"]
    assert decision["state"] == "no_difference", decision


def test_a_declared_outcome_metric_stays_whatever_labels_arrive(
    sqlite_store: ExperimentStore,
) -> None:
    e = _experiment(sqlite_store, metric="outcome")
    for arm, mean in (("a", 1.0), ("b", 2.0)):
        sqlite_store.record_exposures(
            [Exposure(e.id, arm, "served", None, f"{arm}{i}", "1", 0.9, 1.0) for i in range(50)]
        )
        values = np.random.default_rng(0).normal(mean, 1.0, 50)
        sqlite_store.record_feedback(
            [FeedbackItem(f"{arm}{i}", None, float(v)) for i, v in enumerate(values)]
        )
    sqlite_store.record_feedback([FeedbackItem("a0", "1", None)])  # one stray label
    report = results(sqlite_store, e)
    assert report["metric"] == "outcome"
    assert report["comparison"]["contrasts"][0]["metric"] == "outcome"
    assert report["arms"][1]["mean_outcome"] == pytest.approx(
        float(np.random.default_rng(0).normal(2.0, 1.0, 50).mean())
    )
    assert report["arms"][0]["exposures_without_unit"] == 50
    assert report["comparison"]["decision"]["winner"] == "b"


def test_shadow_mode_reports_the_paired_view(sqlite_store: ExperimentStore) -> None:
    e = _experiment(sqlite_store, mode="shadow")
    rng = np.random.default_rng(7)
    for i in range(300):
        served, shadow = ("1", "1") if rng.random() < 0.7 else ("1", "2")
        rid = f"r{i}"
        sqlite_store.record_exposures([Exposure(e.id, "a", "served", None, rid, served, 0.9, 1.0)])
        sqlite_store.record_exposures(
            [Exposure(e.id, "b", "shadow", None, rid, shadow, 0.8, 1.0, divergence=0.1)]
        )
        sqlite_store.record_feedback([FeedbackItem(rid, "2", None)])  # the shadow is right more
    report = results(sqlite_store, e)
    paired = report["comparison"]["paired"]
    assert paired["pairs"] == 300
    assert 0.6 < paired["agreement"] < 0.8
    assert paired["mean_divergence"] == pytest.approx(0.1)
    assert paired["only_control_correct"] == 0
    assert paired["only_challenger_correct"] == 300 - round(paired["agreement"] * 300)
    assert paired["mcnemar_p_value"] < 1e-10
    assert report["arms"][1]["role"] == "shadow"
    assert report["arms"][1]["accuracy"] == pytest.approx(1 - paired["agreement"])
    assert report["comparison"]["decision"]["winner"] == "b"


def _period(
    store: ExperimentStore, e: Experiment, period: int, counts: dict[str, int], right: float
) -> None:
    """Exposures of each arm in ``period``, exactly a ``right`` share of them labelled right,
    interleaved so that feedback arrives from both arms throughout."""
    rows = [(arm, i) for arm, n in counts.items() for i in range(n)]
    rows.sort(key=lambda row: row[1] / counts[row[0]])
    store.record_exposures(
        [
            Exposure(
                e.id,
                arm,
                "served",
                f"p{period}{arm}u{i}",
                f"p{period}{arm}{i}",
                "1",
                0.9,
                1.0,
                period=period,
            )
            for arm, i in rows
        ]
    )
    store.record_feedback(
        [
            FeedbackItem(f"p{period}{arm}{i}", "1" if i % 10 < round(10 * right) else "2", None)
            for arm, i in rows
        ]
    )


def test_a_ramp_over_a_change_in_traffic_calls_no_difference_where_there_is_none(
    sqlite_store: ExperimentStore,
) -> None:
    spec = ExperimentSpec(
        name="ramped",
        model="tiny",
        arms=[
            ArmSpec(name="a", variant="pretrained", weight=9),
            ArmSpec(name="b", variant="baseline"),
        ],
    )
    e = sqlite_store.create(spec.to_experiment())
    _period(sqlite_store, e, 0, {"a": 900, "b": 100}, right=0.9)  # easy requests at 10%
    e = sqlite_store.ramp("ramped", {"a": 1.0, "b": 1.0})
    _period(sqlite_store, e, 1, {"a": 500, "b": 500}, right=0.6)  # hard ones at 50%
    report = results(sqlite_store, e)
    arm_a, arm_b = report["arms"]
    # Pooled over the ramp, b looks far worse: most of its requests came in the hard period.
    assert arm_a["accuracy"] - arm_b["accuracy"] > 0.1
    comparison = report["comparison"]
    (contrast,) = comparison["contrasts"]
    assert contrast["difference"] == pytest.approx(0.0, abs=1e-12)  # within each period, none
    assert contrast["always_valid_p_value"] > 0.5
    assert comparison["decision"]["state"] == "collecting"
    # Expected counts follow each period's weights: 900:100, then 500:500.
    assert comparison["sample_ratio"]["expected"] == pytest.approx([1400.0, 600.0])
    assert not comparison["sample_ratio"]["mismatch"]
