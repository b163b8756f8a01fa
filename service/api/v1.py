"""The v1 API: models, classify, embed and compare. Translation between HTTP and plain calls."""

from __future__ import annotations

from typing import TypeVar

import numpy as np
from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue
from numpy.typing import NDArray
from pydantic import BaseModel, ValidationError

from service import catalog, inference
from service.api.payload import Payload, read_payload
from service.decode import DecodeOptions, Invert, decode_batch
from service.errors import ValidationFailed
from service.manifest import InputSpec
from service.metrics import record_images
from service.schemas import ClassifyQuery, CompareQuery, EmbedQuery
from service.state import settings, store

bp = Blueprint("v1", __name__, url_prefix="/v1")

Q = TypeVar("Q", bound=BaseModel)


@bp.get("/models")
def list_models() -> ResponseReturnValue:
    """Every loaded model with its variants."""
    current = store()
    current.require_ready()
    return jsonify(models=[catalog.describe_model(v) for v in current.models.values()])


@bp.get("/models/<model>")
def get_model(model: str) -> ResponseReturnValue:
    """One model: classes, input spec, embedding size, provenance and test metrics."""
    return jsonify(catalog.describe_model(store().model(model)))


@bp.post("/models/<model>/classify")
def classify(model: str) -> ResponseReturnValue:
    """Classify one or many images with one variant."""
    query = _query(ClassifyQuery)
    variant = store().variant(model, query.variant)
    images = _decode(_payload(), variant.manifest.input, query.invert)
    return jsonify(inference.classify(variant, images, query.top_k))


@bp.post("/models/<model>/embed")
def embed(model: str) -> ResponseReturnValue:
    """Extract one embedding vector per image with one variant."""
    query = _query(EmbedQuery)
    variant = store().variant(model, query.variant)
    images = _decode(_payload(), variant.manifest.input, query.invert)
    return jsonify(inference.embed(variant, images, query.normalize))


@bp.post("/models/<model>/compare")
def compare(model: str) -> ResponseReturnValue:
    """Run both variants on the same images; with labels, add accuracy and McNemar's test."""
    query = _query(CompareQuery)
    current = store()
    first = current.variant(model, "pretrained")
    second = current.variant(model, "baseline")
    payload = _payload()
    images = _decode(payload, first.manifest.input, query.invert)
    second_images = None
    if second.manifest.input != first.manifest.input:
        second_images = _decode(payload, second.manifest.input, query.invert)
    return jsonify(inference.compare(first, second, images, payload.labels, second_images))


def _query(schema: type[Q]) -> Q:
    try:
        return schema.model_validate(request.args.to_dict())
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "query"
        raise ValidationFailed(
            f"query parameter {field}: {err['msg']} (got {err.get('input')!r})", field=field
        ) from None


def _payload() -> Payload:
    return read_payload(request, settings().max_batch)


def _decode(payload: Payload, spec: InputSpec, invert: Invert) -> NDArray[np.uint8]:
    options = DecodeOptions(invert=invert, max_pixels=settings().max_image_pixels)
    images = decode_batch(payload.images, spec, options)
    record_images(len(images))
    return images
