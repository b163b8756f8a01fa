"""Read a request's images and labels from any of the three accepted body forms.

``multipart/form-data`` (``image`` file parts, optional ``label`` fields), a raw
image body (``image/png`` …, label in ``?label=``), or ``application/json``
(``{"images": [base64…], "labels": […]}``).
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass

from flask import Request
from pydantic import ValidationError

from service.api.multipart import parse_form
from service.api.schemas import ImagesRequest
from service.decode import MEDIA_TYPES
from service.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType, ValidationFailed
from service.json_weight import check_json_weight

ACCEPTED = ("multipart/form-data", "application/json", *sorted(MEDIA_TYPES))


@dataclass(frozen=True)
class Payload:
    """The images (still encoded) and optional labels of one request."""

    images: list[bytes]
    labels: list[int | str] | None = None


def read_payload(request: Request, max_batch: int) -> Payload:
    """Parse the body by its content type; 400/415/422 say what is wrong."""
    mimetype = request.mimetype
    if mimetype in MEDIA_TYPES:
        payload = _raw(request)
    elif mimetype == "application/json":
        payload = _json(request.get_data(cache=False))
    elif mimetype == "multipart/form-data":
        payload = _multipart(request)
    else:
        got = f"content type {mimetype!r}" if mimetype else "no content type"
        raise UnsupportedMediaType(f"{got} is not supported; send one of: {', '.join(ACCEPTED)}")
    if len(payload.images) > max_batch:
        raise PayloadTooLarge(
            f"images: {len(payload.images)} images, over the limit of {max_batch} per request",
            field="images",
        )
    if payload.labels is not None and len(payload.labels) != len(payload.images):
        raise ValidationFailed(
            f"labels: {len(payload.labels)} labels for {len(payload.images)} images; "
            "send one label per image",
            field="labels",
        )
    return payload


def _raw(request: Request) -> Payload:
    data = request.get_data(cache=False)
    if not data:
        raise BadRequest(f"the {request.mimetype} body is empty")
    label = request.args.get("label")
    return Payload([data], None if label is None else [label])


def _json(body: bytes) -> Payload:
    if not body:
        raise BadRequest("the JSON body is empty")
    check_json_weight(body, "the JSON body")
    try:
        parsed = ImagesRequest.model_validate_json(body)
    except ValidationError as exc:
        err = exc.errors()[0]
        if err["type"] == "json_invalid":
            raise BadRequest(f"malformed JSON body: {err['msg']}") from None
        field = _field(err["loc"])
        raise ValidationFailed(f"{field}: {err['msg']}", field=field) from None
    return Payload([_base64(text, i) for i, text in enumerate(parsed.images)], parsed.labels)


def _field(loc: tuple[int | str, ...]) -> str:
    """``("images", 2)`` -> ``images[2]``; union member tags after the index are dropped."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            return f"{out}[{part}]"
        out = f"{out}.{part}" if out else part
    return out or "body"


def _base64(text: str, index: int) -> bytes:
    if text.startswith("data:"):
        _, _, text = text.partition(",")
    if not text.isascii():
        at = next(i for i, char in enumerate(text) if not char.isascii())
        raise BadRequest(
            f"images[{index}] is not valid base64 (non-ASCII character {text[at]!r} at {at})",
            image=index,
        )
    try:
        return binascii.a2b_base64(text, strict_mode=True)
    except binascii.Error as exc:
        raise BadRequest(f"images[{index}] is not valid base64 ({exc})", image=index) from None


def _multipart(request: Request) -> Payload:
    parts = parse_form(
        request.get_data(cache=False),
        request.mimetype_params.get("boundary"),
        max_parts=request.max_form_parts,
        max_field_bytes=request.max_form_memory_size,
    )
    images = [p.data for p in parts if p.is_file and p.name == "image"]
    if not images:
        other = sorted({p.name for p in parts if p.is_file})
        hint = f" (file parts found: {', '.join(other)})" if other else ""
        raise BadRequest(f"the multipart body has no 'image' file part{hint}")
    labels: list[int | str] = [p.text() for p in parts if not p.is_file and p.name == "label"]
    return Payload(images, labels or None)
