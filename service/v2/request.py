"""The inference request's JSON header, parsed with one readable message per mistake."""

from __future__ import annotations

import json
import math
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from service.errors import BadRequest
from service.json_weight import check_json_weight

_MAX_DIMENSION = 2**31 - 1
"""Largest tensor dimension: no tensor the service takes comes near it."""


_MAX_COUNT = 2**53 - 1
"""Largest count parameter (``binary_data_size``, ``classification``): a JSON-safe integer."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class RequestInput(_Strict):
    """One input tensor: its data inline (``data``) or in the binary part of the body."""

    name: str
    datatype: str
    shape: list[Annotated[int, Field(le=_MAX_DIMENSION)]]
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
    check_json_weight(header, "the inference request")
    try:
        raw = json.loads(header, parse_constant=_refuse_constant)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"inference request is not valid JSON: {exc}") from None
    except RecursionError:
        raise BadRequest("inference request is not valid JSON: nested too deeply") from None
    except ValueError as exc:
        # NaN and Infinity (refused above), or an integer of thousands of digits.
        reason = str(exc) if "JSON number" in str(exc) else "an integer has too many digits"
        raise BadRequest(f"inference request is not valid JSON: {reason}") from None
    if not isinstance(raw, dict):
        raise BadRequest("inference request must be a JSON object")
    try:
        request = InferenceRequest.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            where = ".".join(str(p) for p in err["loc"]) or "request"
            problems.append(f"{where}: {err['msg']}")
        raise BadRequest("invalid inference request: " + "; ".join(problems)) from None
    _check_finite(request.parameters, "parameters")
    for tensor in (*request.inputs, *(request.outputs or ())):
        _check_finite(tensor.parameters, f"{tensor.name!r} parameters")
    return request


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _check_finite(value: Any, where: str) -> None:
    """Refuse numbers that overflow to infinity (``1e999``): JSON has no way to say them."""
    pending = [value]
    while pending:  # a loop, not recursion: the nesting may be as deep as the parser allows
        item = pending.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise BadRequest(f"{where}: a number is too large for a 64-bit float")
        if isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)


def bool_parameter(parameters: dict[str, Any] | None, key: str, where: str) -> bool:
    """A protocol flag such as ``binary_data``; absent means false."""
    value = (parameters or {}).get(key, False)
    if not isinstance(value, bool):
        raise BadRequest(f"{where}: parameter {key!r} must be true or false, got {_shown(value)}")
    return value


def count_parameter(parameters: dict[str, Any] | None, key: str, where: str) -> int | None:
    """A non-negative integer parameter such as ``binary_data_size``; ``None`` when absent."""
    value = (parameters or {}).get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_COUNT:
        raise BadRequest(
            f"{where}: parameter {key!r} must be an integer from 0 to {_MAX_COUNT}, "
            f"got {_shown(value)}"
        )
    return value


def _shown(value: Any) -> str:
    """A client's value for a message, cut short: it may be thousands of digits long."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."
