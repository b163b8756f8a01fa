"""The inference request's JSON header, parsed with one readable message per mistake."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from service.errors import BadRequest


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class RequestInput(_Strict):
    """One input tensor: its data inline (``data``) or in the binary part of the body."""

    name: str
    datatype: str
    shape: list[int]
    parameters: dict[str, Any] | None = None
    data: Any = None


class RequestOutput(_Strict):
    """One requested output, with protocol parameters such as ``binary_data``."""

    name: str
    parameters: dict[str, Any] | None = None


class InferenceRequest(BaseModel):
    """``$inference_request`` of the Open Inference Protocol.

    Unknown top-level fields are ignored, as KServe's own server does: clients such as
    KServe's SDK add ``model_name`` and ``model_version``, which the URL already says.
    The tensors stay strict, so a misspelt ``datatype`` or ``shape`` is still named.
    """

    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)

    id: str | None = None
    model_name: str | None = None
    model_version: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[RequestInput]
    outputs: list[RequestOutput] | None = None


def parse_request(header: bytes) -> InferenceRequest:
    """Parse the JSON header of an inference request; ``BadRequest`` says what is wrong."""
    try:
        raw = json.loads(header)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"inference request is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise BadRequest("inference request must be a JSON object")
    try:
        return InferenceRequest.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            where = ".".join(str(p) for p in err["loc"]) or "request"
            problems.append(f"{where}: {err['msg']}")
        raise BadRequest("invalid inference request: " + "; ".join(problems)) from None


def bool_parameter(parameters: dict[str, Any] | None, key: str, where: str) -> bool:
    """A protocol flag such as ``binary_data``; absent means false."""
    value = (parameters or {}).get(key, False)
    if not isinstance(value, bool):
        raise BadRequest(f"{where}: parameter {key!r} must be true or false, got {value!r}")
    return value


def count_parameter(parameters: dict[str, Any] | None, key: str, where: str) -> int | None:
    """A non-negative integer parameter such as ``binary_data_size``; ``None`` when absent."""
    value = (parameters or {}).get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadRequest(
            f"{where}: parameter {key!r} must be a non-negative integer, got {value!r}"
        )
    return value
