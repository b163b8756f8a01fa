"""The OpenAPI 3.1 document, generated from the pydantic schemas in :mod:`service.api.schemas`."""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from service.api import schemas
from service.decode import MEDIA_TYPES
from service.version import __version__

_REF = "#/components/schemas/{model}"

_ERRORS: dict[str, str] = {
    "400": "Malformed body or an image that cannot be decoded (the message says which).",
    "404": "Unknown model or variant (the message lists the known ones).",
    "413": "Body over the size limit, more images than the batch limit, or an image over the pixel limit.",
    "415": "Unsupported content type.",
    "422": "A field or query parameter violates the schema (the message names it).",
    "503": "No model is loaded yet.",
}

_QUERY_MODELS: dict[str, type[BaseModel]] = {
    "classify": schemas.ClassifyQuery,
    "embed": schemas.EmbedQuery,
    "compare": schemas.CompareQuery,
}

_RESPONSES: dict[str, type[BaseModel]] = {
    "classify": schemas.ClassifyResponse,
    "embed": schemas.EmbedResponse,
    "compare": schemas.CompareResponse,
}

_SUMMARIES = {
    "classify": "Classify images with one variant: label, probability and the top K per image.",
    "embed": "Extract each image's embedding vector with one variant.",
    "compare": (
        "Run both variants on the same images: per image both predictions, agreement, "
        "Jensen-Shannon divergence and latency; with labels, each variant's accuracy and an "
        "exact McNemar test."
    ),
}


@cache
def document() -> dict[str, Any]:
    """The whole OpenAPI document (built once per process)."""
    models: list[type[BaseModel]] = [
        schemas.ImagesRequest,
        schemas.ModelList,
        schemas.ModelInfo,
        schemas.ErrorResponse,
        *_RESPONSES.values(),
    ]
    _, defs = models_json_schema([(m, "validation") for m in models], ref_template=_REF)
    paths: dict[str, Any] = {
        "/v1/models": {
            "get": _operation(
                "List every loaded model with its variants.", "ModelList", errors=("503",)
            )
        },
        "/v1/models/{model}": {
            "get": {
                **_operation(
                    "One model: classes, input spec, embedding size, provenance and test metrics.",
                    "ModelInfo",
                    errors=("404", "503"),
                ),
                "parameters": [_model_parameter()],
            }
        },
        "/health/live": {"get": _plain("200 while the process runs.")},
        "/health/ready": {"get": _plain("200 once models are loaded, else 503 with the reason.")},
        "/metrics": {"get": _plain("Prometheus metrics (text format).", "text/plain")},
    }
    for action, query_model in _QUERY_MODELS.items():
        paths[f"/v1/models/{{model}}/{action}"] = {
            "post": {
                **_operation(
                    _SUMMARIES[action], _RESPONSES[action].__name__, errors=tuple(_ERRORS)
                ),
                "parameters": [_model_parameter(), *_query_parameters(query_model)],
                "requestBody": _request_body(action),
            }
        }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "headstart",
            "version": __version__,
            "description": (
                "Classify images, extract embeddings and compare a pre-trained variant of a "
                "model with its randomly initialised baseline."
            ),
        },
        "paths": paths,
        "components": {"schemas": defs["$defs"]},
    }


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(model=name)}


def _operation(summary: str, response: str, *, errors: tuple[str, ...]) -> dict[str, Any]:
    responses: dict[str, Any] = {
        "200": {"description": "OK", "content": {"application/json": {"schema": _ref(response)}}}
    }
    for status in errors:
        responses[status] = {
            "description": _ERRORS[status],
            "content": {"application/json": {"schema": _ref("ErrorResponse")}},
        }
    return {"summary": summary, "responses": responses}


def _plain(summary: str, media: str = "application/json") -> dict[str, Any]:
    return {"summary": summary, "responses": {"200": {"description": "OK", "content": {media: {}}}}}


def _model_parameter() -> dict[str, Any]:
    return {"name": "model", "in": "path", "required": True, "schema": {"type": "string"}}


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema()
    parameters = []
    for name, field in model.model_fields.items():
        prop = dict(schema["properties"][name])
        prop.pop("title", None)
        parameters.append(
            {
                "name": name,
                "in": "query",
                "required": False,
                "description": field.description or "",
                "schema": prop,
            }
        )
    return parameters


def _request_body(action: str) -> dict[str, Any]:
    binary = {"type": "string", "format": "binary"}
    content: dict[str, Any] = {
        "application/json": {"schema": _ref("ImagesRequest")},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["image"],
                "properties": {
                    "image": {"type": "array", "items": binary},
                    "label": {"type": "array", "items": {"type": "string"}},
                },
            }
        },
    }
    for media in MEDIA_TYPES:
        content[media] = {"schema": binary}
    description = "One or many images, in any of the three forms."
    if action == "compare":
        description += " Labels: `labels` (JSON), `label` fields (multipart) or `?label=` (raw)."
    return {"required": True, "description": description, "content": content}
