"""The v1 API: models, classify, embed and compare. Translation between HTTP and plain calls."""

from __future__ import annotations

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue

from service.api import routed
from service.api.payload import Payload, read_payload
from service.api.query import parse as _query
from service.api.schemas import ClassifyQuery, CompareQuery, DecodeQuery, EmbedQuery
from service.decode import DecodeOptions
from service.metrics import record_images, record_variant
from service.state import plane, settings

bp = Blueprint("v1", __name__, url_prefix="/v1")


@bp.get("/models")
def list_models() -> ResponseReturnValue:
    """Every loaded model with its variants, and every entry that could not be loaded."""
    return jsonify(plane().models())


@bp.get("/models/<model>")
def get_model(model: str) -> ResponseReturnValue:
    """One model: classes, input spec, embedding size, provenance and test metrics."""
    return jsonify(plane().describe(model))


@bp.post("/models/<model>/classify")
def classify(model: str) -> ResponseReturnValue:
    """Classify one or many images with one variant."""
    query = _query(ClassifyQuery)
    if query.experiment is not None:
        return routed.classify(model, query.experiment, query, _options(query), _payload)
    variant = _variant(model, query.variant)
    # An unknown model, variant or version is named before the body is read.
    plane().variant(model, variant, query.version)
    payload = _payload()
    answer = plane().classify(
        model,
        variant,
        payload.images,
        _options(query),
        query.top_k,
        query.include_input,
        query.version,
    )
    record_images(len(payload.images))
    return jsonify(answer)


@bp.post("/models/<model>/embed")
def embed(model: str) -> ResponseReturnValue:
    """Extract one embedding vector per image with one variant."""
    query = _query(EmbedQuery)
    if query.experiment is not None:
        return routed.embed(model, query.experiment, query, _options(query), _payload)
    variant = _variant(model, query.variant)
    # An unknown model, variant or version is named before the body is read.
    plane().variant(model, variant, query.version)
    payload = _payload()
    answer = plane().embed(
        model, variant, payload.images, _options(query), query.normalize, query.version
    )
    record_images(len(payload.images))
    return jsonify(answer)


@bp.post("/models/<model>/compare")
def compare(model: str) -> ResponseReturnValue:
    """Run both variants on the same images; with labels, add accuracy and McNemar's test."""
    query = _query(CompareQuery)
    plane().compared(model)  # unknown models and variants are named before the body is read
    payload = _payload()
    answer = plane().compare(
        model, payload.images, _options(query), payload.labels, query.include_input
    )
    record_images(len(payload.images))
    return jsonify(answer)


def _options(query: DecodeQuery) -> DecodeOptions:
    """How the query asks every image to be decoded: polarity and framing."""
    return DecodeOptions(invert=query.invert, framing=query.framing)


def _payload() -> Payload:
    return read_payload(request, settings().max_batch)


def _variant(model: str, asked: str | None) -> str:
    """The variant the request named, or the model's default (noted for the metrics)."""
    if asked is not None:
        return asked
    variant = plane().default_variant(model)
    record_variant(variant)
    return variant
