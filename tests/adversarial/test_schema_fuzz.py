"""Every operation in /openapi.json, fuzzed: no 5xx, and every answer inside the contract.

schemathesis's own pytest plugin does not run under this pytest, so the test walks the
operations itself and gives each one's strategy to Hypothesis.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.adversarial.conftest import Server

pytestmark = pytest.mark.system

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES = 25
"""Generated cases per operation; with the schema's own examples, a few seconds each."""


def test_every_operation_answers_inside_its_contract(server: Server) -> None:
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8, [op.label for op in operations]
    failed: dict[str, str] = {}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case: schemathesis.Case) -> None:
            case.call_and_validate(checks=CHECKS, timeout=10)

        try:
            fuzz()
        except Exception as exc:  # noqa: BLE001 -- every operation is tried; all failures shown
            failed[operation.label] = str(exc)[:2000]
    print(f"{len(operations)} operations fuzzed, {EXAMPLES} cases each")
    assert not failed, "\n\n".join(f"{label}:\n{why}" for label, why in failed.items())
