"""Responses are JSON a strict parser reads, in the order the service built them."""

from __future__ import annotations

import json

import numpy as np
from flask import Flask, jsonify

from service.json_provider import OrjsonProvider


def _app() -> Flask:
    app = Flask(__name__)
    app.json = OrjsonProvider(app)
    return app


def test_response_keeps_key_order_and_ends_with_a_newline() -> None:
    with _app().app_context():
        body = jsonify({"model": "m", "variant": "v", "answer": [0.25, 1e-7]}).get_data()
    assert body == b'{"model":"m","variant":"v","answer":[0.25,1e-7]}\n'


def test_non_finite_floats_become_null_not_invalid_json() -> None:
    with _app().app_context():
        body = jsonify(p=float("nan"), q=float("inf")).get_data(as_text=True)
    assert json.loads(body, parse_constant=_reject) == {"p": None, "q": None}


def test_numpy_values_and_round_trip() -> None:
    app = _app()
    with app.app_context():
        text = app.json.dumps({"v": np.arange(3, dtype=np.float32), "n": np.int64(7)})
        assert app.json.loads(text) == {"v": [0.0, 1.0, 2.0], "n": 7}


def _reject(name: str) -> None:
    raise ValueError(f"{name} is not JSON")
