"""Which requests the worker may run on its event loop: inference that waits on nothing."""

from __future__ import annotations

from typing import Any

import pytest

from service import inline
from service.settings import Settings


def _environ(path: str, query: str = "", method: str = "POST") -> dict[str, Any]:
    return {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query}


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/v1/models/mnist/classify", ""),
        ("/v1/models/mnist/classify", "variant=baseline&top_k=3"),
        ("/v1/models/mnist/embed", "version=2"),
        ("/v1/models/mnist/compare", "label=3"),
        ("/v2/models/mnist-pretrained/infer", ""),
        ("/v2/models/mnist-pretrained/versions/2/infer", ""),
    ],
)
def test_single_inference_requests_may_run_inline(path: str, query: str) -> None:
    assert inline.unrouted_inference(_environ(path, query), b'{"inputs": []}')
    assert inline.inference(_environ(path, query), b'{"inputs": []}')


@pytest.mark.parametrize(
    "query",
    ["experiment=ab", "top_k=3&experiment=ab", "experim%65nt=ab", "experiment", "experiment="],
)
def test_a_v1_request_routed_through_an_experiment_goes_to_a_thread(query: str) -> None:
    # Its exposure is written to the database: on PostgreSQL a wait that yields.
    routed = _environ("/v1/models/mnist/classify", query)
    assert not inline.unrouted_inference(routed, b"")
    assert inline.inference(routed, b"")  # on SQLite, whose calls never yield


@pytest.mark.parametrize(
    "body",
    [
        b'{"inputs": [], "parameters": {"experiment": "ab"}}',
        b'{"inputs": [], "parameters": {"\\u0065xperiment": "ab"}}',
    ],
)
def test_a_v2_request_that_may_name_an_experiment_goes_to_a_thread(body: bytes) -> None:
    assert not inline.unrouted_inference(_environ("/v2/models/mnist-pretrained/infer"), body)


@pytest.mark.parametrize(
    ("path", "method"),
    [
        ("/v1/models/mnist/classify", "GET"),
        ("/v1/models", "POST"),
        ("/v1/experiments", "POST"),
        ("/v1/feedback", "POST"),
        ("/v2/repository/models/mnist-pretrained/load", "POST"),
        ("/v2/models/mnist-pretrained/ready", "POST"),
        ("/v1/models/mnist/classify/extra", "POST"),
    ],
)
def test_anything_else_goes_to_a_thread(path: str, method: str) -> None:
    assert not inline.inference(_environ(path, method=method), b"")
    assert not inline.unrouted_inference(_environ(path, method=method), b"")


def test_nothing_runs_inline_with_dynamic_batching_on() -> None:
    # A batch waits for other requests, which could never arrive while the loop waited.
    assert inline.rule(Settings(batch_max_size=8)) is None


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        (None, inline.inference),
        ("sqlite:////tmp/x.db", inline.inference),
        ("postgresql+psycopg://u:p@127.0.0.1/headstart", inline.unrouted_inference),
        ("not a url", inline.unrouted_inference),
    ],
)
def test_routed_requests_run_inline_only_on_sqlite(url: str | None, rule: object) -> None:
    assert inline.rule(Settings(database_url=url)) is rule
