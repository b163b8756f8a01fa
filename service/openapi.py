"""The OpenAPI 3.1 document of the whole HTTP surface, generated from the pydantic schemas.

v1 and the probes come from :mod:`service.api.schemas`, V2's request from
:mod:`service.v2.request` and its answers from :mod:`service.v2.schemas`.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from service.api import query, schemas
from service.api.feedback import FeedbackRequest
from service.decode import MEDIA_TYPES
from service.experiments.definition import ExperimentSpec, RampSpec
from service.v2 import schemas as v2
from service.v2.codec import HEADER_LENGTH
from service.v2.request import InferenceRequest
from service.version import __version__

_REF = "#/components/schemas/{model}"

_ERRORS: dict[str, str] = {
    "400": (
        "Malformed body, an image that cannot be decoded, or a query parameter the route does "
        "not take (the message says which, and lists the ones it takes)."
    ),
    "404": "Unknown model or variant (the message lists the known ones).",
    "413": "Body over the size limit, more images than the batch limit, or an image over the pixel limit.",
    "415": "Unsupported content type.",
    "422": "A field or query parameter violates the schema (the message names it).",
    "503": "No model is loaded yet.",
}

_ADMIN_ERRORS: dict[str, str] = {
    "400": (
        "Malformed JSON body, or a query parameter the route does not take (the message says "
        "which: where in the body, or the parameters the route takes)."
    ),
    "401": "No bearer token, or a wrong one (WWW-Authenticate: Bearer).",
    "403": "The route is off: no token is configured (the message says which variable to set).",
    "404": "Unknown experiment (the message lists the existing ones).",
    "409": "The experiment name is taken.",
    "415": "Unsupported content type: send application/json.",
    "422": "A field violates the schema (the message names it).",
    "503": "The experiments database could not be opened (the message says why).",
}

TAGS: tuple[dict[str, str], ...] = (
    {"name": "v1", "description": "Classify, embed and compare images; the models served."},
    {
        "name": "V2",
        "description": "The Open Inference Protocol (KServe V2) with Triton's extensions.",
    },
    {
        "name": "experiments",
        "description": "Online A/B experiments, their feedback, and the audit of model loads "
        "(tokens).",
    },
    {"name": "operations", "description": "Probes, metrics, this document and the pages."},
)
"""The groups the docs page shows, in order; every operation carries exactly one."""

_ACTIONS = ("classify", "embed", "compare")
"""The image endpoints, first in the document as they are what the service is for."""

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
        schemas.Liveness,
        schemas.Readiness,
        schemas.NotReadyResponse,
        ExperimentSpec,
        FeedbackRequest,
        RampSpec,
        *_RESPONSES.values(),
        InferenceRequest,
        v2.V2Error,
        v2.ServerMetadata,
        v2.V2Liveness,
        v2.V2Readiness,
        v2.ModelReadiness,
        v2.ModelMetadata,
        v2.InferenceResponse,
        v2.ModelConfig,
        v2.ModelStatistics,
        v2.RepositoryIndexRequest,
        v2.RepositoryIndex,
        v2.RepositoryLoadRequest,
    ]
    _, defs = models_json_schema([(m, "validation") for m in models], ref_template=_REF)
    paths: dict[str, Any] = {}
    for action in _ACTIONS:
        endpoint = f"v1.{action}"
        paths[f"/v1/models/{{model}}/{action}"] = {
            "post": {
                **_operation(
                    _SUMMARIES[action], _RESPONSES[action].__name__, errors=tuple(_ERRORS)
                ),
                "parameters": [
                    _model_parameter(),
                    *_query_parameters(query.QUERIES[endpoint]),
                    *(_body_parameter(name) for name in query.BODY_PARAMETERS.get(endpoint, ())),
                ],
                "requestBody": _request_body(action),
            }
        }
    paths |= {
        "/v1/models": {
            "get": _operation(
                "List every loaded model with its variants.", "ModelList", errors=("400", "503")
            )
        },
        "/v1/models/{model}": {
            "get": {
                **_operation(
                    "One model: classes, input spec, embedding size, provenance and test metrics.",
                    "ModelInfo",
                    errors=("400", "404", "503"),
                ),
                "parameters": [_model_parameter()],
            }
        },
        "/health/live": {"get": _answer("200 while the process runs.", "Liveness")},
        "/health/ready": {
            "get": _answer(
                "200 while any model serves (degraded when some entry failed), else 503.",
                "Readiness",
                {"503": ("No model serves; the reason says why.", "NotReadyResponse")},
            )
        },
        "/metrics": {
            "get": {
                "summary": (
                    "Prometheus metrics summed over every worker; OpenMetrics with "
                    "`Accept: application/openmetrics-text`."
                ),
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": {
                            "text/plain": {"schema": {"type": "string"}},
                            "application/openmetrics-text": {"schema": {"type": "string"}},
                        },
                    }
                },
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document.",
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
        "/docs": {"get": _page("A page that renders this document.")},
        "/": {"get": _page("A page to draw or upload a digit, classify it and compare.")},
        **_v2_paths(),
        **_experiment_paths(),
        "/experiments": {
            "get": _page(
                "The experiments page: arms, intervals, the always-valid p-value over time (asks for the admin token)."
            )
        },
    }
    _tag(paths)
    spec: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "headstart",
            "version": __version__,
            "description": (
                "Classify images, extract embeddings and compare a pre-trained variant of a "
                "model with its randomly initialised baseline."
            ),
        },
        "tags": list(TAGS),
        "paths": paths,
        "components": {
            "schemas": defs["$defs"],
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
    rendered: dict[str, Any] = _markdown_descriptions(spec)
    return rendered


def tag_of(path: str) -> str:
    """The group of the operations under ``path``."""
    if path.startswith("/v2"):
        return "V2"
    if path.startswith(("/v1/experiments", "/v1/feedback", "/experiments", "/v1/repository")):
        return "experiments"
    if path.startswith("/v1/"):
        return "v1"
    return "operations"


def _tag(paths: dict[str, Any]) -> None:
    """Give every operation its group, and order the paths by group (stable within one)."""
    order = [t["name"] for t in TAGS]
    for path, operations in paths.items():
        for operation in operations.values():
            operation["tags"] = [tag_of(path)]
    ranked = sorted(paths.items(), key=lambda item: order.index(tag_of(item[0])))
    paths.clear()
    paths.update(ranked)


def _body_parameter(name: str) -> dict[str, Any]:
    """A query parameter that belongs to the body's form: a raw image's label."""
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": "With a raw image body: its true label (class index or name).",
        "schema": {"type": "string"},
    }


def _admin(
    summary: str, errors: tuple[str, ...], status: str = "200", body: str | None = None
) -> dict[str, Any]:
    ok = {"application/json": {"schema": {"type": "object"}}}
    responses: dict[str, Any] = {status: {"description": "OK", "content": ok}}
    for code in errors:
        responses[code] = {
            "description": _ADMIN_ERRORS[code],
            "content": {"application/json": {"schema": _ref("ErrorResponse")}},
        }
    operation: dict[str, Any] = {
        "summary": summary,
        "security": [{"bearer": []}],
        "responses": responses,
    }
    if body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(body)}},
        }
    return operation


def _experiment_paths() -> dict[str, Any]:
    """The admin (HEADSTART_ADMIN_TOKEN) and feedback (HEADSTART_FEEDBACK_TOKEN) routes."""
    name = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
    auth = ("400", "401", "403", "503")
    return {
        "/v1/experiments": {
            "get": _admin("List experiments (admin token).", auth),
            "post": _admin(
                "Create an experiment: arms (variant, weight), mode split or shadow, alpha, "
                "minimum detectable effect (admin token).",
                (*auth, "400", "409", "415", "422"),
                status="201",
                body="ExperimentSpec",
            ),
        },
        "/v1/experiments/{name}": {
            "get": {
                **_admin(
                    "An experiment's definition and live results: per arm exposures, units, "
                    "feedback, accuracy and mean outcome with intervals; against the control "
                    "the difference, fixed-horizon and always-valid p-values, confidence "
                    "sequence, sample-ratio check and the decision (admin token).",
                    (*auth, "404"),
                ),
                "parameters": [name],
            },
            "patch": {
                **_admin(
                    "Ramp a running split experiment: every arm's new weight, from the next "
                    "request on; the results compare the arms within each period of weights "
                    "(admin token).",
                    (*auth, "404", "409", "415", "422"),
                    body="RampSpec",
                ),
                "parameters": [name],
            },
        },
        "/v1/experiments/{name}/promote": {
            "post": {
                **_admin(
                    "Make the winning arm's variant its model's default (what v1 serves when a "
                    "request names no variant) and stop the experiment; 409 while there is no "
                    "winner (admin token).",
                    (*auth, "404", "409"),
                ),
                "parameters": [name],
            }
        },
        "/v1/experiments/{name}/stop": {
            "post": {
                **_admin("Stop routing requests to an experiment (admin token).", (*auth, "404")),
                "parameters": [name],
            }
        },
        "/v1/repository/actions": {
            "get": _admin(
                "The latest 100 model loads and unloads, newest first: when, what, and how it "
                "went (admin token).",
                auth,
            )
        },
        "/v1/feedback": {
            "post": _admin(
                "Record what happened after routed requests: a label or an outcome per "
                "request id; unknown ids, and labels that name none of the serving arm's "
                "classes, are reported per item with why and the rest stored; the latest "
                "value wins (feedback or admin token).",
                (*auth, "400", "415", "422"),
                body="FeedbackRequest",
            )
        },
    }


_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")  # :mod:`service.framing` -> `service.framing`
_LITERAL = re.compile(r"``(.+?)``")  # reST's inline literal -> CommonMark's code span
_LINE_BREAK = re.compile(r"(?<!\n)\n(?!\n)\s*")  # a docstring's wrapped lines: one paragraph


def markdown(text: str) -> str:
    """A docstring's reStructuredText inline markup as the CommonMark OpenAPI descriptions use."""
    return _LINE_BREAK.sub(" ", _LITERAL.sub(r"`\1`", _ROLE.sub(r"`\1`", text))).strip()


def _markdown_descriptions(node: Any) -> Any:
    """``node`` with every ``description`` string under it turned into CommonMark."""
    if isinstance(node, dict):
        return {
            key: markdown(value)
            if key == "description" and isinstance(value, str)
            else _markdown_descriptions(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_markdown_descriptions(item) for item in node]
    return node


_V2_ERRORS: dict[str, str] = {
    "400": "Malformed request or tensors that do not fit the model (the message says which).",
    "404": "Unknown model or version (the message lists the known ones).",
    "413": "Body or batch over its limit.",
    "415": "Unsupported content encoding.",
    "503": "No model is loaded, or this one failed to load (the message says why).",
}


def _v2_paths() -> dict[str, Any]:
    """Every route of :mod:`service.v2.api`, with V2's error shape."""
    model = ("404", "503")
    paths: dict[str, Any] = {
        "/v2": {"get": _v2("Name, version and the protocol extensions.", "ServerMetadata", ())},
        "/v2/health/live": {"get": _v2("200 while the process runs.", "V2Liveness", ())},
        "/v2/health/ready": {"get": _v2("200 once models are loaded.", "V2Readiness", ("503",))},
        "/v2/models/stats": {
            "get": _v2(
                "Statistics of every model: requests by outcome, queue and compute times.",
                "ModelStatistics",
                ("503",),
            )
        },
        "/v2/repository/index": {
            "post": {
                **_v2(
                    "Every entry of the model repository with its state; unavailable ones say why.",
                    "RepositoryIndex",
                    ("400",),
                ),
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": _ref("RepositoryIndexRequest")}},
                },
            }
        },
    }
    paths.update(_repository_paths())
    per_model = {
        "": ("get", "The model's versions, platform, input and outputs.", "ModelMetadata", model),
        "/ready": ("get", "200 when the model can serve.", "ModelReadiness", model),
        "/config": ("get", "The model configuration in Triton's form.", "ModelConfig", model),
        "/stats": ("get", "The model's statistics.", "ModelStatistics", model),
        "/infer": (
            "post",
            "Run one inference request; JSON, or JSON followed by binary tensors.",
            "InferenceResponse",
            tuple(_V2_ERRORS),
        ),
    }
    for prefix, parameters in (
        ("/v2/models/{name}", [_path_parameter("name")]),
        (
            "/v2/models/{name}/versions/{version}",
            [_path_parameter("name"), _path_parameter("version")],
        ),
    ):
        for suffix, (method, summary, response, errors) in per_model.items():
            operation = {**_v2(summary, response, errors), "parameters": parameters}
            if suffix == "/infer":
                operation["requestBody"] = _infer_body()
            paths[prefix + suffix] = {method: operation}
    return paths


def _repository_paths() -> dict[str, Any]:
    """Triton's load and unload, admin routes in V2's error shape."""
    paths: dict[str, Any] = {}
    load = (
        "Load (or load again) the model from its repository folder, in every worker; a "
        "failed load leaves what served before serving (admin token)."
    )
    unload = "Stop serving the model, in every worker, until it is loaded again (admin token)."
    for action, summary, errors in (
        ("load", load, ("400", "401", "403", "404", "503")),
        ("unload", unload, ("400", "401", "403", "404", "503")),
    ):
        paths[f"/v2/repository/models/{{name}}/{action}"] = {
            "post": {
                "summary": summary,
                "responses": _v2_admin_responses(errors),
                "security": [{"bearer": []}],
                "parameters": [_path_parameter("name")],
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": _ref("RepositoryLoadRequest")}},
                },
            }
        }
    return paths


def _v2(summary: str, response: str, errors: tuple[str, ...]) -> dict[str, Any]:
    responses: dict[str, Any] = {
        "200": {"description": "OK", "content": {"application/json": {"schema": _ref(response)}}}
    }
    for status in errors:
        responses[status] = {
            "description": _V2_ERRORS[status],
            "content": {"application/json": {"schema": _ref("V2Error")}},
        }
    return {"summary": summary, "responses": responses}


_V2_ADMIN_ERRORS: dict[str, str] = {
    "400": "The folder cannot be loaded, or a malformed body (the message names the file and why).",
    "401": "No bearer token, or a wrong one.",
    "403": "The route is off: HEADSTART_ADMIN_TOKEN is not set.",
    "404": "No such model: not a folder of the repository (load), or not served (unload).",
    "503": "Applied here, but another worker had not applied it after 30 s (the message says which).",
}


def _v2_admin_responses(errors: tuple[str, ...]) -> dict[str, Any]:
    responses: dict[str, Any] = {
        "200": {
            "description": "Done in every worker",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    }
    for status in errors:
        responses[status] = {
            "description": _V2_ADMIN_ERRORS[status],
            "content": {"application/json": {"schema": _ref("V2Error")}},
        }
    return responses


def _infer_body() -> dict[str, Any]:
    return {
        "required": True,
        "description": (
            f"The JSON request; with binary tensors, `{HEADER_LENGTH}` gives the JSON's length "
            "and the tensors' bytes follow it."
        ),
        "content": {
            "application/json": {"schema": _ref("InferenceRequest")},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }


def _answer(
    summary: str, response: str, errors: dict[str, tuple[str, str]] | None = None
) -> dict[str, Any]:
    responses: dict[str, Any] = {
        "200": {"description": "OK", "content": {"application/json": {"schema": _ref(response)}}}
    }
    for status, (description, schema) in (errors or {}).items():
        responses[status] = {
            "description": description,
            "content": {"application/json": {"schema": _ref(schema)}},
        }
    return {"summary": summary, "responses": responses}


def _page(summary: str) -> dict[str, Any]:
    return {
        "summary": summary,
        "responses": {
            "200": {"description": "OK", "content": {"text/html": {"schema": {"type": "string"}}}}
        },
    }


def _path_parameter(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


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
