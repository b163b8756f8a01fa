"""Read a JSON request body into a pydantic model, with one clear error per problem."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from flask import request
from pydantic import BaseModel, ValidationError

from service.errors import BadRequest, UnsupportedMediaType, ValidationFailed

M = TypeVar("M", bound=BaseModel)


def read_json(schema: type[M], check: Callable[[bytes], None] | None = None) -> M:
    """The body as ``schema``: 415 if not JSON, 400 if malformed, 422 naming the bad field.

    ``check`` sees the raw body first, to refuse it before it is parsed."""
    if request.mimetype != "application/json":
        got = f"content type {request.mimetype!r}" if request.mimetype else "no content type"
        raise UnsupportedMediaType(f"{got} is not supported; send application/json")
    body = request.get_data(cache=False)
    if not body:
        raise BadRequest("the JSON body is empty")
    if check is not None:
        check(body)
    try:
        return schema.model_validate_json(body)
    except ValidationError as exc:
        err = exc.errors()[0]
        if err["type"] == "json_invalid":
            raise BadRequest(f"malformed JSON body: {err['msg']}") from None
        field = ".".join(str(part) for part in err["loc"]) or "body"
        raise ValidationFailed(f"{field}: {err['msg']}", field=field) from None
