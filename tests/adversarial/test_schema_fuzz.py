"""Every operation in /openapi.json, fuzzed in positive and negative mode: no 5xx, every
answer inside the contract, what the document allows accepted and what it forbids refused;
and every path answers OPTIONS, undocumented methods and missing tokens as documented.

schemathesis's own pytest plugin does not run under this pytest, so the test walks the
operations itself and gives each one's strategy to Hypothesis.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.generation import GenerationMode

from tests.adversarial.conftest import PRODUCTION, Server
from tests.builders import write_repository
from tests.server import running_server

pytestmark = pytest.mark.system

ADMIN_TOKEN = "admin-secret"
COMMON_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
CHECKS = {
    GenerationMode.POSITIVE: [*COMMON_CHECKS, positive_data_acceptance],
    GenerationMode.NEGATIVE: [*COMMON_CHECKS, negative_data_rejection],
}
EXAMPLES = 12
"""Generated cases per operation and mode; with the schema's own examples, seconds each."""

SEMANTIC = set(
    tomllib.loads((Path(__file__).with_name("schemathesis.toml")).read_text())["operations"][0][
        "include-name"
    ]
)
"""Operations whose schema-valid requests may still be refused for what no JSON Schema can
say (bytes that decode as an image, tensors that fit the model, a model and variants that
exist), as schemathesis.toml, which schemathesis's own runner reads, lists them. Every
other check runs on them; "valid data is accepted" cannot."""

PATH_VALUES = {"model": "tiny", "name": "tiny-pretrained", "version": "1"}
"""Path parameters that name something the server has, for the method probes."""


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Production workers with the experiment routes on (an admin token is set)."""
    repo = write_repository(tmp_path_factory.mktemp("fuzz-repo"))
    log = tmp_path_factory.mktemp("fuzz-log") / "gunicorn.log"
    env = {**PRODUCTION, "HEADSTART_ADMIN_TOKEN": ADMIN_TOKEN}
    with running_server(repo, env, log_path=log) as url:
        yield Server(url, log)


def _secured(operation: Any) -> bool:
    return bool(operation.definition.raw.get("security"))


@pytest.mark.parametrize("mode", list(CHECKS), ids=lambda mode: mode.value)
def test_every_operation_answers_inside_its_contract(
    fuzz_server: Server, mode: GenerationMode
) -> None:
    schema = schemathesis.openapi.from_url(f"{fuzz_server.url}/openapi.json")
    # Loading an operation fails only for a broken document, which ok() then raises.
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 8, [op.label for op in operations]
    failed: dict[str, str] = {}
    unfuzzable: list[str] = []
    for operation in operations:
        checks = [
            check
            for check in CHECKS[mode]
            if not (check is positive_data_acceptance and operation.label in SEMANTIC)
        ]
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"} if _secured(operation) else {}
        try:
            _fuzzer(operation, mode, checks, headers)()
        except Unsatisfiable:
            # Nothing in the operation can be invalid (no body, string parameters only).
            assert mode is GenerationMode.NEGATIVE, operation.label
            unfuzzable.append(operation.label)
        except Exception as exc:  # noqa: BLE001 -- every operation is tried; all failures shown
            failed[operation.label] = str(exc)[:2000]
    print(
        f"{mode.value}: {len(operations) - len(unfuzzable)} operations fuzzed, {EXAMPLES} cases "
        f"each; nothing to make invalid in {len(unfuzzable)}"
    )
    assert not failed, "\n\n".join(f"{label}:\n{why}" for label, why in failed.items())


def _fuzzer(
    operation: Any, mode: GenerationMode, checks: list[Any], headers: dict[str, str]
) -> Callable[[], None]:
    """A Hypothesis test that sends ``EXAMPLES`` cases of ``operation`` and checks each answer."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case: Any) -> None:
        case.call_and_validate(checks=checks, headers=headers, timeout=10)

    return fuzz


def _documented() -> Iterator[tuple[str, set[str], bool]]:
    """Each documented path (its parameters filled in), its methods, and whether one is secured."""
    from service.openapi import document

    for path, item in document()["paths"].items():
        methods = {m.upper() for m in item if m in ("get", "post", "put", "patch", "delete")}
        secured = any(op.get("security") for m, op in item.items() if m.lower() in ("get", "post"))
        yield path.format(**PATH_VALUES, experiment="x"), methods, secured


def test_options_lists_exactly_the_documented_methods(fuzz_server: Server) -> None:
    wrong = {}
    for path, methods, _ in _documented():
        response = requests.options(f"{fuzz_server.url}{path}", timeout=10)
        advertised = {m.strip() for m in response.headers.get("Allow", "").split(",")}
        expected = methods | {"OPTIONS"} | ({"HEAD"} if "GET" in methods else set())
        if response.status_code != 200 or advertised != expected:
            wrong[path] = (response.status_code, sorted(advertised), sorted(expected))
    assert not wrong, wrong


def test_an_undocumented_method_is_405_naming_the_documented_ones(fuzz_server: Server) -> None:
    wrong = {}
    for path, methods, _ in _documented():
        for method in ("PUT", "PATCH", "DELETE"):
            if method in methods:
                continue
            response = requests.request(method, f"{fuzz_server.url}{path}", timeout=10)
            allowed = {m.strip() for m in response.headers.get("Allow", "").split(",")}
            if response.status_code != 405 or not methods <= allowed:
                wrong[f"{method} {path}"] = (response.status_code, sorted(allowed))
    assert not wrong, wrong


def test_a_secured_operation_without_a_token_is_401(fuzz_server: Server) -> None:
    wrong = {}
    for path, methods, secured in _documented():
        if not secured:
            continue
        for method in methods:
            response = requests.request(method, f"{fuzz_server.url}{path}", timeout=10)
            if response.status_code != 401 or "WWW-Authenticate" not in response.headers:
                wrong[f"{method} {path}"] = response.status_code
    assert not wrong, wrong
