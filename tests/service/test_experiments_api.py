"""The experiment admin and feedback routes, through Flask's test client (one process)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient

from service.app import create_app
from service.experiments import shadow
from service.experiments.attach import experiment_store
from service.experiments.store import Exposure
from service.settings import Settings
from tests.images import png

ADMIN = {"Authorization": "Bearer admin-secret"}
FEEDBACK = {"Authorization": "Bearer feedback-secret"}
BODY: dict[str, Any] = {
    "name": "rbm-vs-random",
    "model": "tiny",
    "mode": "split",
    "arms": [
        {"name": "a", "variant": "pretrained", "weight": 1},
        {"name": "b", "variant": "baseline", "weight": 1},
    ],
}


@pytest.fixture
def app(repository: Path, database_url: str) -> Iterator[Flask]:
    """The app on SQLite, then on a real PostgreSQL server."""
    app = create_app(
        Settings(
            model_repository=repository,
            database_url=database_url,
            admin_token="admin-secret",  # type: ignore[arg-type]
            feedback_token="feedback-secret",  # type: ignore[arg-type]
        )
    )
    yield app
    assert shadow.wait_idle(10)  # shadow runs still use the store
    with app.app_context():
        experiment_store().dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def test_create_list_show_stop(client: FlaskClient) -> None:
    created = client.post("/v1/experiments", json=BODY, headers=ADMIN)
    assert created.status_code == 201, created.json
    assert created.json is not None
    assert created.json["status"] == "running"
    assert created.json["alpha"] == 0.05
    assert "salt" not in created.json
    listed = client.get("/v1/experiments", headers=ADMIN).json
    assert listed is not None
    assert [e["name"] for e in listed["experiments"]] == ["rbm-vs-random"]
    shown = client.get("/v1/experiments/rbm-vs-random", headers=ADMIN).json
    assert shown is not None
    assert [a["name"] for a in shown["arms"]] == ["a", "b"]
    assert shown["arms"][0]["exposures"] == 0
    assert shown["comparison"]["decision"]["state"] == "collecting"
    stopped = client.post("/v1/experiments/rbm-vs-random/stop", headers=ADMIN)
    assert stopped.status_code == 200
    assert stopped.json is not None
    assert stopped.json["status"] == "stopped"
    assert stopped.json["stopped_at"] >= stopped.json["created_at"]


def test_admin_routes_are_off_without_a_token(repository: Path) -> None:
    client = create_app(Settings(model_repository=repository)).test_client()
    response = client.get("/v1/experiments", headers=ADMIN)
    assert response.status_code == 403
    assert response.json is not None
    assert "HEADSTART_ADMIN_TOKEN" in response.json["error"]["message"]
    feedback = client.post("/v1/feedback", json={"items": [{"request_id": "x", "label": 1}]})
    assert feedback.status_code == 403
    assert "HEADSTART_FEEDBACK_TOKEN" in feedback.get_json()["error"]["message"]


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic admin-secret"}, FEEDBACK],
)
def test_admin_routes_want_the_admin_token(client: FlaskClient, headers: dict[str, str]) -> None:
    response = client.post("/v1/experiments", json=BODY, headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.json is not None
    assert response.json["error"]["code"] == "unauthorized"


@pytest.mark.parametrize(
    ("change", "status", "field"),
    [
        ({"arms": [{"name": "a", "variant": "pretrained"}]}, 422, "arms"),
        ({"arms": [{"name": "a", "variant": "pretrained", "weight": 0},
                   {"name": "b", "variant": "baseline"}]}, 422, "arms.0.weight"),
        ({"arms": [{"name": "a", "variant": "pretrained"},
                   {"name": "b", "variant": "nope"}]}, 422, "arms.1.variant"),
        ({"model": "nope"}, 422, "arms.0.variant"),
        ({"mode": "bandit"}, 422, "mode"),
        ({"arms": [{"name": "a", "variant": "pretrained", "weight": 1e308},
                   {"name": "b", "variant": "baseline", "weight": 1e308}]}, 422, "body"),
        ({"alpha": 0.7}, 422, "alpha"),
        ({"name": "has space"}, 422, "name"),
        ({"colour": "red"}, 422, "colour"),
    ],
)  # fmt: skip
def test_bad_definitions_are_refused_naming_the_field(
    client: FlaskClient, change: dict[str, Any], status: int, field: str
) -> None:
    response = client.post("/v1/experiments", json={**BODY, **change}, headers=ADMIN)
    assert response.status_code == status, response.json
    assert response.json is not None
    assert response.json["error"]["field"] == field


def test_a_taken_name_is_409_and_an_unknown_one_404(client: FlaskClient) -> None:
    assert client.post("/v1/experiments", json=BODY, headers=ADMIN).status_code == 201
    again = client.post("/v1/experiments", json=BODY, headers=ADMIN)
    assert again.status_code == 409
    missing = client.get("/v1/experiments/missing", headers=ADMIN)
    assert missing.status_code == 404
    assert missing.json is not None
    assert "rbm-vs-random" in missing.json["error"]["message"]
    assert client.post("/v1/experiments/missing/stop", headers=ADMIN).status_code == 404


def test_malformed_json_is_400_and_other_bodies_415(client: FlaskClient) -> None:
    bad = client.post("/v1/experiments", data="{", content_type="application/json", headers=ADMIN)
    assert bad.status_code == 400
    form = client.post("/v1/experiments", data={"name": "x"}, headers=ADMIN)
    assert form.status_code == 415


def test_the_metric_is_declared_and_shadow_mode_takes_accuracy_only(client: FlaskClient) -> None:
    created = client.post("/v1/experiments", json={**BODY, "metric": "outcome"}, headers=ADMIN)
    assert created.status_code == 201, created.json
    assert created.get_json()["declared_metric"] == "outcome"
    shadow = {**BODY, "name": "shadowed", "mode": "shadow", "metric": "outcome"}
    refused = client.post("/v1/experiments", json=shadow, headers=ADMIN)
    assert refused.status_code == 422
    assert "its metric is accuracy" in refused.get_json()["error"]["message"]
    unknown = client.post("/v1/experiments", json={**BODY, "metric": "clicks"}, headers=ADMIN)
    assert unknown.status_code == 422
    assert unknown.get_json()["error"]["field"] == "metric"


def _expose(app: Flask, *request_ids: str) -> None:
    with app.app_context():
        store = experiment_store()
        experiment = store.get("rbm-vs-random")
        assert experiment is not None
        store.record_exposures(
            [Exposure(experiment.id, "a", "served", None, r, "3", 0.9, 1.0) for r in request_ids]
        )


def test_feedback_is_stored_per_item_and_counted(app: Flask, client: FlaskClient) -> None:
    client.post("/v1/experiments", json=BODY, headers=ADMIN)
    _expose(app, "r1", "r2")
    counted = _feedback_counted(client)
    items = [
        {"request_id": "r1", "label": 3},
        {"request_id": "r2", "outcome": 1.5},
        {"request_id": "nope", "label": "3"},
    ]
    response = client.post("/v1/feedback", json={"items": items}, headers=FEEDBACK)
    assert response.status_code == 200, response.json
    assert response.json is not None
    assert (response.json["stored"], response.json["unknown"]) == (2, 1)
    statuses = [i["status"] for i in response.json["items"]]
    assert statuses == ["stored", "stored", "unknown_request_id"]
    assert response.json["items"][0]["arm"] == "a"
    shown = client.get("/v1/experiments/rbm-vs-random", headers=ADMIN).json
    assert shown is not None
    assert shown["arms"][0]["feedback"] == 2
    assert shown["arms"][0]["accuracy"] == 1.0
    assert _feedback_counted(client) == counted + 2  # the counters live as long as the process


def test_a_label_that_is_no_class_is_refused_per_item_and_the_rest_stored(
    app: Flask, client: FlaskClient
) -> None:
    client.post("/v1/experiments", json=BODY, headers=ADMIN)
    ids = [f"r{i}" for i in range(6)]
    _expose(app, *ids)
    labels: list[Any] = [99, -1, "cat", 10**300, 3, "3"]
    items = [{"request_id": r, "label": label} for r, label in zip(ids, labels, strict=True)]
    items.append({"request_id": "nope", "label": "cat"})  # unknown first: nothing to check
    response = client.post(  # the stdlib's encoder: 10**300 is over what orjson writes
        "/v1/feedback",
        data=json.dumps({"items": items}),
        headers={**FEEDBACK, "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.json
    answer = response.get_json()
    assert (answer["stored"], answer["unknown"], answer["invalid"]) == (2, 1, 4)
    statuses = [i["status"] for i in answer["items"]]
    assert statuses == ["invalid_label"] * 4 + ["stored", "stored", "unknown_request_id"]
    errors = [i["error"] for i in answer["items"][:4]]
    assert errors[0] == "label 99 is not a class index of model 'tiny' (0 to 9)"
    assert errors[2].startswith("label 'cat' is not a class of model 'tiny': '0', '1', '2',")
    shown = client.get("/v1/experiments/rbm-vs-random", headers=ADMIN).get_json()
    assert shown["arms"][0]["feedback"] == 2
    assert shown["arms"][0]["labelled"] == 2


def _feedback_counted(client: FlaskClient) -> float:
    series = 'headstart_experiment_feedback_total{arm="a",experiment="rbm-vs-random"} '
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(series):
            return float(line.removeprefix(series))
    return 0.0


def test_feedback_after_stop_is_still_accepted(app: Flask, client: FlaskClient) -> None:
    client.post("/v1/experiments", json=BODY, headers=ADMIN)
    _expose(app, "r1")
    client.post("/v1/experiments/rbm-vs-random/stop", headers=ADMIN)
    response = client.post(
        "/v1/feedback", json={"items": [{"request_id": "r1", "label": 2}]}, headers=ADMIN
    )
    assert response.status_code == 200
    assert response.get_json()["stored"] == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"items": []}, "items"),
        ({"items": [{"request_id": "r1"}]}, "items.0"),
        ({"items": [{"request_id": "r1", "outcome": "x"}]}, "items.0.outcome"),
        ({"request_id": "r1", "label": 1}, "items"),
    ],
)
def test_bad_feedback_is_422_naming_the_item(
    client: FlaskClient, body: dict[str, Any], field: str
) -> None:
    response = client.post("/v1/feedback", json=body, headers=FEEDBACK)
    assert response.status_code == 422
    assert response.get_json()["error"]["field"] == field


def test_feedback_wants_a_token(client: FlaskClient) -> None:
    response = client.post("/v1/feedback", json={"items": [{"request_id": "r", "label": 1}]})
    assert response.status_code == 401


def test_an_unusable_database_turns_experiments_off_not_the_service(
    repository: Path, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the state directory should be")
    app = create_app(
        Settings(
            model_repository=repository,
            state_directory=blocker / "state",
            admin_token="admin-secret",  # type: ignore[arg-type]
        )
    )
    client = app.test_client()
    assert client.get("/health/ready").status_code == 200
    response = client.get("/v1/experiments", headers=ADMIN)
    assert response.status_code == 503
    assert "HEADSTART_STATE_DIRECTORY" in response.get_json()["error"]["message"]
    routed = client.post(
        "/v1/models/tiny/classify?experiment=x", data=b"\x89PNG", content_type="image/png"
    )
    assert routed.status_code == 503


@pytest.mark.parametrize("mode", ["split", "shadow"])
def test_a_blank_image_routed_through_an_experiment_is_answered_and_recorded(
    app: Flask, client: FlaskClient, mode: str
) -> None:
    import numpy as np

    from tests.images import png

    assert (
        client.post("/v1/experiments", json={**BODY, "mode": mode}, headers=ADMIN).status_code
        == 201
    )
    blank = png(np.full((40, 40), 250, dtype=np.uint8))
    response = client.post(
        "/v1/models/tiny/classify?experiment=rbm-vs-random",
        data=blank,
        content_type="image/png",
        headers={"X-Experiment-Unit": "user-1", "X-Request-ID": "blank-1"},
    )
    assert response.status_code == 200, response.json
    assert response.json is not None
    (prediction,) = response.json["predictions"]
    assert prediction["blank"] is True
    assert prediction["label"] is None
    shown = client.get("/v1/experiments/rbm-vs-random", headers=ADMIN).json
    assert shown is not None
    assert sum(arm["exposures"] for arm in shown["arms"] if arm["role"] == "served") == 1


def test_a_blank_image_embedded_through_an_experiment_is_flagged(
    app: Flask, client: FlaskClient
) -> None:
    import numpy as np

    from tests.images import png

    assert client.post("/v1/experiments", json=BODY, headers=ADMIN).status_code == 201
    digit = png(np.pad(np.full((12, 4), 255, dtype=np.uint8), 12))
    for image, blank in ((png(np.full((40, 40), 250, dtype=np.uint8)), True), (digit, False)):
        response = client.post(
            "/v1/models/tiny/embed?experiment=rbm-vs-random",
            data=image,
            content_type="image/png",
            headers={"X-Experiment-Unit": "user-1"},
        )
        assert response.status_code == 200, response.json
        assert response.json is not None
        assert response.json["experiment"]["name"] == "rbm-vs-random"
        (embedding,) = response.json["embeddings"]
        assert embedding["blank"] is blank
        assert embedding["size"] == len(embedding["vector"])


# --- text the database cannot store: SQLite takes it, PostgreSQL refuses it ------------------

_ONE_IMAGE = {
    "name": "image",
    "datatype": "UINT8",
    "shape": [1, 1, 28, 28],
    "data": [0] * 784,
}


@pytest.mark.parametrize("name", ["a\x00b", "x" * 101, "has space"])
@pytest.mark.parametrize("route", ["classify", "embed"])
def test_an_experiment_name_no_experiment_can_have_is_refused_naming_the_parameter(
    client: FlaskClient, route: str, name: str
) -> None:
    client.post("/v1/experiments", json=BODY, headers=ADMIN)
    response = client.post(
        f"/v1/models/tiny/{route}",
        query_string={"experiment": name},
        data=b"\x89PNG",
        content_type="image/png",
    )
    assert response.status_code == 422, response.get_json()
    assert response.get_json()["error"]["field"] == "experiment"


@pytest.mark.parametrize(
    ("parameters", "field"),
    [
        ({"experiment": "a\x00b"}, "experiment"),
        ({"experiment": "x" * 101}, "experiment"),
        ({"experiment": "rbm-vs-random", "unit": "u\x00"}, "unit"),
        ({"experiment": "rbm-vs-random", "unit": ""}, "unit"),
    ],
)
def test_bad_v2_experiment_parameters_are_refused(
    client: FlaskClient, parameters: dict[str, str], field: str
) -> None:
    client.post("/v1/experiments", json=BODY, headers=ADMIN)
    response = client.post(
        "/v2/models/tiny-pretrained/infer",
        json={"parameters": parameters, "inputs": [_ONE_IMAGE]},
    )
    assert response.status_code == 422, response.get_json()
    assert field in response.get_json()["error"]


@pytest.mark.parametrize("name", ["a%00b", "x" * 101])
def test_an_admin_path_naming_no_possible_experiment_is_404(client: FlaskClient, name: str) -> None:
    client.post("/v1/experiments", json=BODY, headers=ADMIN)
    shown = client.get(f"/v1/experiments/{name}", headers=ADMIN)
    assert shown.status_code == 404, shown.get_json()
    assert "rbm-vs-random" in shown.get_json()["error"]["message"]
    assert client.post(f"/v1/experiments/{name}/stop", headers=ADMIN).status_code == 404


@pytest.mark.parametrize(
    ("item", "field"),
    [
        ({"request_id": "r1", "label": "x" * 201}, "items.1.label"),
        ({"request_id": "r1", "label": "a\x00"}, "items.1.label"),
        ({"request_id": "r\x00", "label": 1}, "items.1.request_id"),
    ],
)
def test_feedback_text_the_database_cannot_store_is_422_naming_the_item(
    app: Flask, client: FlaskClient, item: dict[str, Any], field: str
) -> None:
    client.post("/v1/experiments", json=BODY, headers=ADMIN)
    _expose(app, "r1")
    items = [{"request_id": "r1", "label": 3}, item]
    body = json.dumps({"items": items})  # the app's own encoder stops at 64-bit integers
    response = client.post(
        "/v1/feedback", data=body, content_type="application/json", headers=FEEDBACK
    )
    assert response.status_code == 422, response.get_json()
    assert response.get_json()["error"]["field"] == field
    # At the limit it is read, and refused on its own for naming no class.
    fine = client.post(
        "/v1/feedback", json={"items": [{"request_id": "r1", "label": "x" * 200}]}, headers=FEEDBACK
    )
    assert fine.status_code == 200, fine.get_json()
    assert fine.get_json()["items"][0]["status"] == "invalid_label"


def test_a_million_feedback_items_are_refused_before_the_body_is_parsed(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.api import feedback

    parsed: list[int] = []
    real = feedback.FeedbackRequest.model_validate_json

    def spy(data: Any, **kwargs: Any) -> Any:
        parsed.append(len(data))
        return real(data, **kwargs)

    monkeypatch.setattr(feedback.FeedbackRequest, "model_validate_json", spy)
    body = b'{"items": [' + b",".join([b"{}"] * 1_000_000) + b"]}"
    response = client.post(
        "/v1/feedback", data=body, content_type="application/json", headers=FEEDBACK
    )
    assert response.status_code == 422
    assert response.get_json()["error"]["field"] == "items"
    assert "1000000 objects" in response.get_json()["error"]["message"]
    assert parsed == []
    # Braces inside strings are not items: 10,000 items with braces in their labels pass.
    items = [{"request_id": f"r{i}", "label": "{{}}"} for i in range(10_000)]
    fine = client.post("/v1/feedback", json={"items": items}, headers=FEEDBACK)
    assert fine.status_code == 200, fine.get_json()
    assert fine.get_json()["unknown"] == 10_000
    assert len(parsed) == 1


def test_a_ramp_changes_the_weights_and_is_on_record(client: FlaskClient) -> None:
    client.post("/v1/experiments", json=BODY, headers=ADMIN)
    ramp = {"weights": {"a": 1, "b": 9}}
    assert client.patch("/v1/experiments/rbm-vs-random", json=ramp).status_code in (401, 403)
    ramped = client.patch("/v1/experiments/rbm-vs-random", json=ramp, headers=ADMIN)
    assert ramped.status_code == 200, ramped.get_json()
    assert ramped.get_json()["period"] == 1
    assert [a["weight"] for a in ramped.get_json()["arms"]] == [1.0, 9.0]
    shown = client.get("/v1/experiments/rbm-vs-random", headers=ADMIN).get_json()
    assert [p["weights"] for p in shown["periods"]] == [{"a": 1.0, "b": 1.0}, {"a": 1.0, "b": 9.0}]
    assert [a["action"] for a in shown["actions"]] == ["create", "ramp"]
    client.post("/v1/experiments/rbm-vs-random/stop", headers=ADMIN)
    stopped = client.patch("/v1/experiments/rbm-vs-random", json=ramp, headers=ADMIN)
    assert stopped.status_code == 409
    assert [
        a["action"]
        for a in client.get("/v1/experiments/rbm-vs-random", headers=ADMIN).get_json()["actions"]
    ] == ["create", "ramp", "stop"]


@pytest.mark.parametrize(
    ("weights", "says"),
    [
        ({"a": 1}, "missing ['b']"),
        ({"a": 1, "b": 1, "c": 1}, "unknown ['c']"),
        ({"a": 1, "b": 0}, "arm 'b': a weight is a finite number above 0"),
        ({"a": 1, "b": -2}, "arm 'b': a weight is a finite number above 0"),
    ],
)
def test_a_ramp_names_every_arm_with_a_positive_weight(
    client: FlaskClient, weights: dict[str, float], says: str
) -> None:
    client.post("/v1/experiments", json=BODY, headers=ADMIN)
    refused = client.patch(
        "/v1/experiments/rbm-vs-random", json={"weights": weights}, headers=ADMIN
    )
    assert refused.status_code == 422, refused.get_json()
    assert says in refused.get_json()["error"]["message"]
    assert refused.get_json()["error"]["field"] == "weights"


def test_a_shadow_experiment_has_no_weights_to_ramp(client: FlaskClient) -> None:
    client.post("/v1/experiments", json={**BODY, "mode": "shadow"}, headers=ADMIN)
    refused = client.patch(
        "/v1/experiments/rbm-vs-random", json={"weights": {"a": 1, "b": 1}}, headers=ADMIN
    )
    assert refused.status_code == 422
    assert "a shadow experiment has no weights" in refused.get_json()["error"]["message"]


def _decided(app: Flask, right: dict[str, float]) -> None:
    """400 labelled requests per arm, ``right[arm]`` of them predicted right, spread evenly."""
    from service.experiments.store import FeedbackItem

    with app.app_context():
        store = experiment_store()
        experiment = store.get("rbm-vs-random")
        assert experiment is not None
        for arm, share in right.items():
            ids = [f"{arm}{i}" for i in range(400)]
            store.record_exposures(
                [Exposure(experiment.id, arm, "served", f"u{r}", r, "3", 0.9, 1.0) for r in ids]
            )
            store.record_feedback(
                [
                    FeedbackItem(r, "3" if i % 20 < share * 20 else "2", None)
                    for i, r in enumerate(ids)
                ]
            )


def test_promoting_the_winner_makes_it_the_default_and_stops_the_experiment(
    app: Flask, client: FlaskClient
) -> None:
    client.post("/v1/experiments", json=BODY, headers=ADMIN)
    assert client.get("/v1/models/tiny").get_json()["default_variant"] == "pretrained"
    _decided(app, {"a": 0.6, "b": 0.95})
    promoted = client.post("/v1/experiments/rbm-vs-random/promote", headers=ADMIN)
    assert promoted.status_code == 200, promoted.get_json()
    answer = promoted.get_json()
    assert answer["promoted"] == {
        "model": "tiny",
        "arm": "b",
        "variant": "baseline",
        "version": None,
    }
    assert answer["status"] == "stopped"
    assert client.get("/v1/models/tiny").get_json()["default_variant"] == "baseline"
    image = png(np.eye(28, dtype=np.uint8) * 255)
    served = client.post(
        "/v1/models/tiny/classify", data=image, headers={"Content-Type": "image/png"}
    )
    assert served.get_json()["variant"] == "baseline"  # no variant named: the promoted one
    named = client.post(
        "/v1/models/tiny/classify?variant=pretrained",
        data=image,
        headers={"Content-Type": "image/png"},
    )
    assert named.get_json()["variant"] == "pretrained"
    shown = client.get("/v1/experiments/rbm-vs-random", headers=ADMIN).get_json()
    (promotion,) = [a for a in shown["actions"] if a["action"] == "promote"]
    assert promotion["detail"]["variant"] == "baseline"
    assert promotion["detail"]["decision"].startswith("arm b better than a on accuracy")


def test_there_is_nothing_to_promote_without_a_winner(app: Flask, client: FlaskClient) -> None:
    client.post("/v1/experiments", json=BODY, headers=ADMIN)
    _decided(app, {"a": 0.8, "b": 0.8})
    refused = client.post("/v1/experiments/rbm-vs-random/promote", headers=ADMIN)
    assert refused.status_code == 409
    assert "has no winner to promote: still collecting" in refused.get_json()["error"]["message"]
    assert client.get("/v1/models/tiny").get_json()["default_variant"] == "pretrained"
