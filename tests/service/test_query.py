"""Query parameters: a v1 route refuses any name it does not take, naming it and the known ones."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from service.api.query import QUERIES, known
from service.app import create_app
from service.settings import Settings
from tests.images import mnist, png


@pytest.fixture
def client(repository: Path, tmp_path: Path) -> FlaskClient:
    settings = Settings(
        model_repository=repository,
        state_directory=tmp_path / "state",
        admin_token="admin-secret",  # type: ignore[arg-type]
    )
    return create_app(settings).test_client()


def _body(response: TestResponse) -> dict[str, Any]:
    body: dict[str, Any] = response.get_json()
    return body


def _image() -> bytes:
    return png(mnist()[0][0])


def test_a_misspelt_parameter_is_named_with_the_known_ones(client: FlaskClient) -> None:
    response = client.post(
        "/v1/models/tiny/classify?topk=3",
        data=_image(),
        headers={"Content-Type": "image/png"},
    )
    assert response.status_code == 400
    error = _body(response)["error"]
    assert error["code"] == "bad_request"
    assert error["message"] == (
        "unknown query parameter 'topk' (this route takes: invert, framing, variant, "
        "version, experiment, top_k, include_input)"
    )


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/models"),
        ("GET", "/v1/models/tiny"),
        ("POST", "/v1/models/tiny/classify"),
        ("POST", "/v1/models/tiny/embed"),
        ("POST", "/v1/models/tiny/compare"),
        ("GET", "/v1/experiments"),
        ("POST", "/v1/experiments"),
        ("GET", "/v1/experiments/nope"),
        ("POST", "/v1/experiments/nope/stop"),
        ("POST", "/v1/feedback"),
    ],
)
def test_every_v1_route_refuses_an_unknown_parameter(
    client: FlaskClient, method: str, path: str
) -> None:
    headers = {"Authorization": "Bearer admin-secret", "Content-Type": "image/png"}
    response = client.open(f"{path}?bogus=1&also=2", method=method, data=_image(), headers=headers)
    assert response.status_code == 400, response.text
    message = _body(response)["error"]["message"]
    assert message.startswith("unknown query parameters 'bogus', 'also' (this route takes")


def test_known_parameters_still_work(client: FlaskClient) -> None:
    image = {"data": _image(), "headers": {"Content-Type": "image/png"}}
    ok = client.post("/v1/models/tiny/classify?top_k=2&variant=baseline", **image)
    assert ok.status_code == 200
    assert len(_body(ok)["predictions"][0]["top_k"]) == 2
    labelled = client.post("/v1/models/tiny/compare?label=1", **image)
    assert labelled.status_code == 200
    assert client.get("/v1/models").status_code == 200
    # A bad value is still the schema's 422, not the unknown-name 400.
    assert client.post("/v1/models/tiny/classify?top_k=0", **image).status_code == 422


def test_other_surfaces_keep_their_own_rules(client: FlaskClient) -> None:
    # Probes, pages and V2 take no v1 query parameters and are not v1 routes.
    assert client.get("/health/live?probe=1").status_code == 200
    assert client.get("/openapi.json?x=1").status_code == 200
    assert client.get("/v2/health/live?x=1").status_code == 200


def test_known_names_come_from_the_schemas() -> None:
    assert set(QUERIES) == {"v1.classify", "v1.embed", "v1.compare"}
    assert known("v1.compare")[-1] == "label"
    assert "label" not in known("v1.classify")
    assert known("v1.list_models") == ()
