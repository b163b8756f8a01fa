"""Query parameters of the v1 routes, read in one place.

Every ``/v1`` route takes the query parameters its schema names (none when it has no
schema); any other name is answered 400, naming it and listing the ones the route takes, so
a misspelt ``?topk=3`` is never silently ignored.
"""

from __future__ import annotations

from typing import TypeVar

from flask import Flask, request
from pydantic import BaseModel, ValidationError

from service.api import schemas
from service.errors import BadRequest, ValidationFailed

Q = TypeVar("Q", bound=BaseModel)

QUERIES: dict[str, type[BaseModel]] = {
    "v1.classify": schemas.ClassifyQuery,
    "v1.embed": schemas.EmbedQuery,
    "v1.compare": schemas.CompareQuery,
}
"""The query schema of each endpoint that takes query parameters."""

BODY_PARAMETERS: dict[str, tuple[str, ...]] = {"v1.compare": ("label",)}
"""Names that belong to the body's form rather than the schema: a raw image's ``?label=``."""


def known(endpoint: str | None) -> tuple[str, ...]:
    """The query parameters ``endpoint`` takes, in the order its schema declares them."""
    schema = QUERIES.get(endpoint or "")
    fields = () if schema is None else tuple(schema.model_fields)
    return (*fields, *BODY_PARAMETERS.get(endpoint or "", ()))


def reject_unknown() -> None:
    """Answer 400 when a v1 route is sent a query parameter it does not take."""
    if not request.query_string:
        return
    rule = request.url_rule
    if rule is None or not (rule.rule == "/v1" or rule.rule.startswith("/v1/")):
        return
    allowed = known(request.endpoint)
    unknown = [name for name in request.args if name not in allowed]
    if not unknown:
        return
    named = ", ".join(repr(name) for name in unknown)
    plural = "s" if len(unknown) > 1 else ""
    takes = (
        f"this route takes: {', '.join(allowed)}"
        if allowed
        else "this route takes no query parameters"
    )
    raise BadRequest(f"unknown query parameter{plural} {named} ({takes})", field=unknown[0])


def parse(schema: type[Q]) -> Q:
    """The request's query parameters as ``schema``; 422 naming the first bad value."""
    try:
        return schema.model_validate(request.args.to_dict())
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "query"
        raise ValidationFailed(
            f"query parameter {field}: {err['msg']} (got {err.get('input')!r})", field=field
        ) from None


def init_app(app: Flask) -> None:
    """Check every request's query parameter names before its route runs."""
    app.before_request(reject_unknown)
