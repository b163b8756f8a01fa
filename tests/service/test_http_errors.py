"""One error mapping for every route: v1's shape, V2's shape, and Werkzeug's own errors."""

from __future__ import annotations

from pathlib import Path

from flask.testing import FlaskClient

from service.app import create_app
from service.settings import Settings


def _client(repository: Path) -> FlaskClient:
    return create_app(Settings(model_repository=repository, max_body_bytes=2048)).test_client()


def test_wrong_method_names_the_allowed_ones_in_allow(repository: Path) -> None:
    client = _client(repository)
    for path, shape in (
        ("/v1/models/tiny/classify", "v1"),
        ("/v2/models/tiny-pretrained/infer", "v2"),
    ):
        response = client.get(path)
        assert response.status_code == 405
        assert response.mimetype == "application/json"
        assert "POST" in response.headers["Allow"]
        error = response.json["error"]
        assert isinstance(error, str) if shape == "v2" else error["code"] == "method_not_allowed"


def test_service_errors_take_the_shape_of_the_routes_protocol(repository: Path) -> None:
    client = _client(repository)
    v1 = client.get("/v1/models/nope")
    assert v1.status_code == 404
    assert v1.json["error"]["code"] == "model_not_found"
    v2 = client.get("/v2/models/nope-pretrained")
    assert v2.status_code == 404
    assert v2.json == {
        "error": "unknown model 'nope-pretrained' (known: tiny-baseline, tiny-pretrained)"
    }


def test_body_over_the_limit_reads_alike_in_both_shapes(repository: Path) -> None:
    client = _client(repository)
    body = b"x" * 4096
    v1 = client.post("/v1/models/tiny/classify", data=body, content_type="image/png")
    v2 = client.post("/v2/models/tiny-pretrained/infer", data=body, content_type="application/json")
    message = "request body is over the limit of 2048 bytes"
    assert (v1.status_code, v1.json["error"]["message"]) == (413, message)
    assert (v2.status_code, v2.json["error"]) == (413, message)


def test_an_unexpected_error_is_a_bare_500_in_either_shape(repository: Path) -> None:
    app = create_app(Settings(model_repository=repository))
    plane = app.extensions["headstart.plane"]

    def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("/srv/secret/path exploded")

    plane.run = broken
    client = app.test_client()
    v1 = client.post("/v1/models/tiny/classify", json={"images": [_png_base64()]})
    assert v1.status_code == 500
    assert v1.json == {"error": {"code": "internal_error", "message": "internal server error"}}
    assert "secret" not in v1.text
    tensor = {"name": "image", "datatype": "UINT8", "shape": [1, 1, 28, 28], "data": [0] * 784}
    v2 = client.post("/v2/models/tiny-pretrained/infer", json={"inputs": [tensor]})
    assert (v2.status_code, v2.json) == (500, {"error": "internal server error"})


def _png_base64() -> str:
    import base64

    from tests.images import mnist, png

    return base64.b64encode(png(mnist()[0][0])).decode()
