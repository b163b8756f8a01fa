"""HTTP for ``POST /v1/feedback``: what really happened after a routed request."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from flask import Blueprint
from flask.typing import ResponseReturnValue
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)

from service.api.auth import require_feedback
from service.api.json_body import read_json
from service.errors import ValidationFailed
from service.experiments.attach import experiment_store
from service.experiments.labels import InvalidLabel, LabelChecker
from service.experiments.store import FeedbackItem
from service.metrics import record_feedback
from service.state import plane

bp = Blueprint("feedback", __name__)

MAX_ITEMS = 10_000
_NO_NUL = r"^[^\x00]*$"
"""Text PostgreSQL can store: anything but NUL."""


MAX_LABEL = 200
"""Longest label name accepted (the feedback table's column)."""


_LABEL_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "integer"},
        {"type": "string", "maxLength": MAX_LABEL, "pattern": _NO_NUL},
        {"type": "null"},
    ]
}
"""The label's schema with the limits :meth:`FeedbackEntry._storable` checks."""


class FeedbackEntry(BaseModel):
    # A label, an outcome or both: what _something checks, as the document says it.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [
                {"required": ["label"], "properties": {"label": {"not": {"type": "null"}}}},
                {"required": ["outcome"], "properties": {"outcome": {"not": {"type": "null"}}}},
            ]
        },
    )

    request_id: str = Field(min_length=1, max_length=128, pattern=_NO_NUL)
    """The X-Request-ID of the routed request."""
    # Strict: JSON's true and false are neither a class index nor an outcome.
    label: StrictInt | StrictStr | None = Field(default=None, json_schema_extra=_LABEL_SCHEMA)
    """The true class (its name, or the class index written as a number)."""
    outcome: float | None = Field(default=None, allow_inf_nan=False, strict=True)
    """Any number measuring what happened (a click, revenue, a rating)."""

    @field_validator("label")
    @classmethod
    def _storable(cls, label: int | str | None) -> int | str | None:
        """A label name must fit the column, and PostgreSQL stores no NUL; an index is
        checked against the model's classes, and stored as the class name it points at."""
        if not isinstance(label, str):
            return label
        text = label
        if len(text) > MAX_LABEL:
            raise ValueError(f"a label is at most {MAX_LABEL} characters, got {len(text)}")
        if "\x00" in text:
            raise ValueError("a label holds no NUL character")
        return label

    @model_validator(mode="after")
    def _something(self) -> FeedbackEntry:
        if self.label is None and self.outcome is None:
            raise ValueError("give a label, an outcome or both")
        return self


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[FeedbackEntry] = Field(min_length=1, max_length=MAX_ITEMS)


_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')


def _at_most_max_items(body: bytes) -> None:
    """422 when the body holds more objects than the request (one) and ``MAX_ITEMS`` items.

    Every item is an object, so this bounds the items before anything is parsed: a million
    ``{}`` in 3 MB would otherwise be parsed and validated, at over a hundred times the cost
    of a one-item call, only to be refused. Braces are counted at C speed; only a body
    that may be over is counted again outside its strings.
    """
    if body.count(b"{") <= MAX_ITEMS + 1:
        return
    objects = _STRING.sub(b'""', body).count(b"{")
    if objects > MAX_ITEMS + 1:
        raise ValidationFailed(
            f"items: the body holds {objects - 1} objects besides itself, over the limit of "
            f"{MAX_ITEMS} items per request; send the rest in another request",
            field="items",
        )


@bp.post("/v1/feedback")
def feedback() -> ResponseReturnValue:
    """Store each item whose request id has an exposure and whose label is one of the model's
    classes; report the others per item, with why.

    A repeated item replaces the earlier value of the same field: the latest one wins.
    """
    require_feedback()
    body = read_json(FeedbackRequest, check=_at_most_max_items)
    store = experiment_store()
    owners = store.owners([e.request_id for e in body.items])
    labels = LabelChecker(store.get, plane().class_names)
    checked: list[FeedbackItem | InvalidLabel] = []
    for entry in body.items:
        owner = owners.get(entry.request_id)
        label = None if entry.label is None else str(entry.label)
        if entry.label is not None and owner is not None:
            try:
                label = labels.check(*owner, entry.label)
            except InvalidLabel as exc:
                checked.append(exc)
                continue
        checked.append(FeedbackItem(entry.request_id, label, entry.outcome))
    valid = [item for item in checked if isinstance(item, FeedbackItem)]
    owned = store.record_feedback(valid)
    for (experiment, arm), count in Counter(o for o in owned if o is not None).items():
        record_feedback(experiment, arm, count)
    found = iter(owned)
    answers: list[dict[str, Any]] = []
    stored = unknown = 0
    for entry, item in zip(body.items, checked, strict=True):
        if isinstance(item, InvalidLabel):
            answers.append(
                {"request_id": entry.request_id, "status": "invalid_label", "error": str(item)}
            )
            continue
        owner = next(found)
        if owner is None:
            unknown += 1
            answers.append({"request_id": entry.request_id, "status": "unknown_request_id"})
            continue
        stored += 1
        answers.append(
            {
                "request_id": entry.request_id,
                "status": "stored",
                "experiment": owner[0],
                "arm": owner[1],
            }
        )
    return {
        "stored": stored,
        "unknown": unknown,
        "invalid": len(answers) - stored - unknown,
        "items": answers,
    }
