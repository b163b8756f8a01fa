from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from openapi_spec_validator import validate

from service import create_app
from service.api import schemas
from service.openapi import document, markdown
from service.settings import Settings


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if "$ref" in node else []
        return found + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _refs(value)]
    return []


def test_every_reference_resolves() -> None:
    doc = document()
    names = set(doc["components"]["schemas"])
    refs = _refs(doc)
    assert refs
    for ref in refs:
        assert ref.startswith("#/components/schemas/")
        assert ref.rsplit("/", 1)[1] in names
    json.dumps(doc)  # serialisable as it stands


def test_schemas_come_from_the_pydantic_models() -> None:
    components = document()["components"]["schemas"]
    images = components["ImagesRequest"]
    expected = dict(schemas.ImagesRequest.model_json_schema()["properties"]["images"])
    expected["description"] = markdown(expected["description"])
    assert images["properties"]["images"] == expected
    assert images["additionalProperties"] is False
    assert set(components["CompareSummary"]["properties"]) == set(
        schemas.CompareSummary.model_fields
    )


def test_query_parameters_follow_the_query_models() -> None:
    post = document()["paths"]["/v1/models/{model}/classify"]["post"]
    params = {p["name"]: p for p in post["parameters"]}
    assert set(params) == {
        "model",
        "invert",
        "framing",
        "variant",
        "version",
        "top_k",
        "include_input",
        "experiment",
    }
    assert params["top_k"]["schema"]["minimum"] == 1
    assert params["top_k"]["schema"]["default"] == 5
    assert params["invert"]["schema"]["enum"] == ["auto", "true", "false"]
    assert "border" in params["invert"]["description"]


def test_every_post_accepts_the_three_forms_and_lists_its_errors() -> None:
    paths = document()["paths"]
    for action in ("classify", "embed", "compare"):
        post = paths[f"/v1/models/{{model}}/{action}"]["post"]
        content = post["requestBody"]["content"]
        assert {"application/json", "multipart/form-data", "image/png", "image/jpeg"} <= set(
            content
        )
        assert {"200", "400", "404", "413", "415", "422", "503"} <= set(post["responses"])


def test_every_route_is_documented(repository: Path) -> None:
    """A fuzzer reading the document reaches every route the app serves."""
    app = create_app(Settings(model_repository=repository))
    paths = document()["paths"]
    served = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint in ("static", "v2.unknown"):
            continue  # Flask's static files; V2's answer to a path it does not have
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            served.add((path, method.lower()))
    documented = {(path, method) for path, item in paths.items() for method in item}
    assert served == documented


def test_json_answers_declare_a_schema() -> None:
    for path, item in document()["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                for media, content in response.get("content", {}).items():
                    assert content.get("schema"), (path, method, status, media)


def test_the_document_is_valid_openapi() -> None:
    validate(document())


def _descriptions(node: object) -> list[str]:
    if isinstance(node, dict):
        own = [node["description"]] if isinstance(node.get("description"), str) else []
        return own + [d for value in node.values() for d in _descriptions(value)]
    if isinstance(node, list):
        return [d for item in node for d in _descriptions(item)]
    return []


def test_descriptions_are_commonmark_not_restructuredtext() -> None:
    texts = _descriptions(document())
    assert len(texts) > 50
    assert not [t for t in texts if "``" in t or ":mod:`" in t or ":data:`" in t]
    # The docstrings' code literals survive as CommonMark code spans.
    assert any("`auto`" in t for t in texts)


def test_markdown_turns_rest_literals_roles_and_wrapped_lines_into_commonmark() -> None:
    text = "Uses ``auto`` and :mod:`service.framing`\n    on two lines.\n\nNew paragraph."
    assert markdown(text) == "Uses `auto` and `service.framing` on two lines.\n\nNew paragraph."


def test_the_experiment_routes_are_documented_with_their_token() -> None:
    doc = document()
    paths = doc["paths"]
    create = paths["/v1/experiments"]["post"]
    assert create["security"] == [{"bearer": []}]
    assert {"201", "401", "403", "409", "422"} <= set(create["responses"])
    body = create["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    spec = doc["components"]["schemas"][body.rsplit("/", 1)[1]]
    assert {"name", "model", "arms"} <= set(spec["required"])
    assert "minimum_detectable_effect" in spec["properties"]
    assert "/v1/experiments/{name}/stop" in paths
    feedback = paths["/v1/feedback"]["post"]
    assert feedback["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "FeedbackRequest"
    )
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_operations_are_grouped_by_tag_with_the_image_endpoints_first() -> None:
    doc = document()
    names = [t["name"] for t in doc["tags"]]
    assert names == ["v1", "V2", "experiments", "operations"]
    seen: list[str] = []
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            (tag,) = operation["tags"]
            assert tag in names, f"{method} {path}: {tag}"
            seen.append(tag)
    assert seen == sorted(seen, key=names.index), "paths are not in tag order"
    assert list(doc["paths"])[:3] == [
        "/v1/models/{model}/classify",
        "/v1/models/{model}/embed",
        "/v1/models/{model}/compare",
    ]


def test_compare_documents_the_raw_body_label() -> None:
    post = document()["paths"]["/v1/models/{model}/compare"]["post"]
    assert "label" in {p["name"] for p in post["parameters"]}
    classify = document()["paths"]["/v1/models/{model}/classify"]["post"]
    assert "label" not in {p["name"] for p in classify["parameters"]}


def test_every_v1_operation_documents_the_unknown_query_parameter_answer() -> None:
    for path, operations in document()["paths"].items():
        if path.startswith("/v1/"):
            for method, operation in operations.items():
                assert "400" in operation["responses"], f"{method} {path}"
