"""The v1 API against the real gunicorn command: every endpoint, input form and error."""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
import pytest
import requests

from service.api.schemas import (
    ClassifyResponse,
    CompareResponse,
    EmbedResponse,
    ErrorResponse,
    ModelInfo,
    ModelList,
)
from service.decode import DecodeOptions, decode_batch
from service.runtime import ModelStore
from service.statistics import js_divergence, mcnemar_exact
from tests.images import drawn_seven, encode, mnist, photo_of_digit, png

B64 = base64.b64encode


def _ok(response: requests.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["X-Request-ID"]
    body: dict[str, Any] = response.json()
    return body


def _error(response: requests.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["X-Request-ID"]
    error = ErrorResponse.model_validate(response.json()).error
    assert error.code == code
    return error.message


def _expected_probabilities(
    store: ModelStore, variant: str, images: list[bytes], invert: str = "auto"
) -> np.ndarray:
    loaded = store.variant("tiny", variant)
    batch = decode_batch(images, loaded.manifest.input, DecodeOptions(invert=invert))  # type: ignore[arg-type]
    return loaded.run(batch)["probabilities"]


# --- models -----------------------------------------------------------------------------------


def test_list_models(live_server: str, http: requests.Session) -> None:
    body = ModelList.model_validate(_ok(http.get(f"{live_server}/v1/models")))
    assert [m.name for m in body.models] == ["tiny"]
    assert [v.variant for v in body.models[0].variants] == ["pretrained", "baseline"]


def test_get_model_describes_both_variants(live_server: str, http: requests.Session) -> None:
    info = ModelInfo.model_validate(_ok(http.get(f"{live_server}/v1/models/tiny")))
    assert info.classes == [str(i) for i in range(10)]
    assert (info.input.channels, info.input.height, info.input.width) == (1, 28, 28)
    assert info.embedding_dim == 16
    methods = {v.variant: v.pretraining.method for v in info.variants}
    assert methods == {"pretrained": "dae", "baseline": "none"}
    assert all(v.test_metrics.accuracy == 1.0 for v in info.variants)


def test_unknown_model_lists_the_known_ones(live_server: str, http: requests.Session) -> None:
    message = _error(http.get(f"{live_server}/v1/models/nope"), 404, "model_not_found")
    assert message == "unknown model 'nope' (known: tiny)"


# --- classify: three input forms --------------------------------------------------------------


def test_classify_three_forms_agree_with_the_model(
    live_server: str, http: requests.Session, local_store: ModelStore
) -> None:
    image = encode(drawn_seven((120, 90)))
    url = f"{live_server}/v1/models/tiny/classify?top_k=3"
    raw = _ok(http.post(url, data=image, headers={"Content-Type": "image/png"}))
    form = _ok(http.post(url, files={"image": ("seven.png", image, "image/png")}))
    as_json = _ok(http.post(url, json={"images": [B64(image).decode()]}))
    assert raw == form == as_json
    body = ClassifyResponse.model_validate(raw)
    expected = _expected_probabilities(local_store, "pretrained", [image])[0]
    prediction = body.predictions[0]
    assert prediction.class_index == int(expected.argmax())
    assert prediction.probability == pytest.approx(float(expected.max()), rel=1e-5)
    assert [c.class_index for c in prediction.top_k] == list(np.argsort(-expected)[:3])
    assert body.variant == "pretrained"


def test_classify_a_batch_with_the_baseline(
    live_server: str, http: requests.Session, local_store: ModelStore
) -> None:
    digits = [png(d) for d in mnist()[0][:5]]
    files = [("image", (f"{i}.png", d, "image/png")) for i, d in enumerate(digits)]
    body = _ok(http.post(f"{live_server}/v1/models/tiny/classify?variant=baseline", files=files))
    parsed = ClassifyResponse.model_validate(body)
    assert parsed.variant == "baseline"
    expected = _expected_probabilities(local_store, "baseline", digits)
    assert [p.class_index for p in parsed.predictions] == expected.argmax(1).tolist()
    assert all(len(p.top_k) == 5 for p in parsed.predictions)  # the default top_k


@pytest.mark.parametrize(
    ("fmt", "media", "params"),
    [
        ("JPEG", "image/jpeg", {"quality": 95}),
        ("WEBP", "image/webp", {"lossless": True}),
        ("BMP", "image/bmp", {}),
        ("GIF", "image/gif", {}),
        ("TIFF", "image/tiff", {}),
    ],
)
def test_classify_raw_body_of_every_image_type(
    live_server: str,
    http: requests.Session,
    local_store: ModelStore,
    fmt: str,
    media: str,
    params: dict[str, object],
) -> None:
    data = encode(drawn_seven((64, 64)), fmt, **params)
    body = _ok(
        http.post(
            f"{live_server}/v1/models/tiny/classify", data=data, headers={"Content-Type": media}
        )
    )
    expected = _expected_probabilities(local_store, "pretrained", [data])[0]
    assert body["predictions"][0]["probability"] == pytest.approx(float(expected.max()), rel=1e-5)


def test_photo_of_a_digit_embeds_like_the_mnist_original(
    live_server: str, http: requests.Session
) -> None:
    # A dark-on-light, enlarged JPEG of an MNIST digit must reach the model looking like the
    # original: their embeddings are close; without the polarity fix they are not.
    digit = mnist()[0][1234]
    url = f"{live_server}/v1/models/tiny/embed?normalize=true"
    original = _ok(http.post(url, data=png(digit), headers={"Content-Type": "image/png"}))
    photo = photo_of_digit(digit)
    fixed = _ok(http.post(url, data=photo, headers={"Content-Type": "image/jpeg"}))
    raw = _ok(http.post(f"{url}&invert=false", data=photo, headers={"Content-Type": "image/jpeg"}))
    v = np.array(original["embeddings"][0]["vector"])
    assert float(v @ np.array(fixed["embeddings"][0]["vector"])) > 0.95
    assert float(v @ np.array(raw["embeddings"][0]["vector"])) < 0.8


# --- embed ------------------------------------------------------------------------------------


def test_embed_three_forms(
    live_server: str, http: requests.Session, local_store: ModelStore
) -> None:
    digits = [png(d) for d in mnist()[0][10:12]]
    url = f"{live_server}/v1/models/tiny/embed?variant=baseline"
    as_json = _ok(http.post(url, json={"images": [B64(d).decode() for d in digits]}))
    form = _ok(http.post(url, files=[("image", (f"{i}.png", d)) for i, d in enumerate(digits)]))
    assert as_json == form
    single = _ok(http.post(url, data=digits[0], headers={"Content-Type": "image/png"}))
    assert single["embeddings"][0] == as_json["embeddings"][0]
    body = EmbedResponse.model_validate(as_json)
    assert body.normalized is False
    assert [e.size for e in body.embeddings] == [16, 16]
    loaded = local_store.variant("tiny", "baseline")
    batch = decode_batch(digits, loaded.manifest.input, DecodeOptions())
    np.testing.assert_allclose(
        [e.vector for e in body.embeddings], loaded.run(batch)["embedding"], rtol=1e-5
    )


def test_embed_normalized_vectors_have_unit_length(
    live_server: str, http: requests.Session
) -> None:
    body = _ok(
        http.post(
            f"{live_server}/v1/models/tiny/embed?normalize=true",
            json={"images": [B64(png(mnist()[0][3])).decode()]},
        )
    )
    assert body["normalized"] is True
    assert np.linalg.norm(body["embeddings"][0]["vector"]) == pytest.approx(1.0, rel=1e-5)


# --- compare ----------------------------------------------------------------------------------


def test_compare_with_labels_in_every_form(
    live_server: str, http: requests.Session, local_store: ModelStore
) -> None:
    x, y = mnist()
    digits = [png(d) for d in x[:30]]
    labels = y[:30].tolist()
    url = f"{live_server}/v1/models/tiny/compare"
    as_json = _ok(
        http.post(url, json={"images": [B64(d).decode() for d in digits], "labels": labels})
    )
    form = _ok(
        http.post(
            url,
            files=[("image", (f"{i}.png", d)) for i, d in enumerate(digits)],
            data={"label": [str(v) for v in labels]},
        )
    )
    body = CompareResponse.model_validate(as_json)
    assert CompareResponse.model_validate(form).summary.labeled == body.summary.labeled
    p = _expected_probabilities(local_store, "pretrained", digits)
    q = _expected_probabilities(local_store, "baseline", digits)
    right_p = p.argmax(1) == np.array(labels)
    right_q = q.argmax(1) == np.array(labels)
    labeled = body.summary.labeled
    assert labeled is not None
    assert labeled.accuracy.pretrained == pytest.approx(right_p.mean())
    assert labeled.accuracy.baseline == pytest.approx(right_q.mean())
    b, c = int((right_p & ~right_q).sum()), int((right_q & ~right_p).sum())
    assert (labeled.mcnemar.only_pretrained_correct, labeled.mcnemar.only_baseline_correct) == (
        b,
        c,
    )
    assert labeled.mcnemar.p_value == pytest.approx(mcnemar_exact(b, c).p_value)
    assert [r.agree for r in body.results] == (p.argmax(1) == q.argmax(1)).tolist()
    np.testing.assert_allclose(
        [r.js_divergence for r in body.results], js_divergence(p, q), rtol=1e-4, atol=1e-7
    )
    assert body.summary.agreement_rate == pytest.approx((p.argmax(1) == q.argmax(1)).mean())
    assert [r.true_label for r in body.results] == [str(v) for v in labels]
    assert body.summary.latency_ms.pretrained > 0


def test_compare_raw_body_with_label_query(live_server: str, http: requests.Session) -> None:
    digit, label = mnist()[0][0], int(mnist()[1][0])
    body = _ok(
        http.post(
            f"{live_server}/v1/models/tiny/compare?label={label}",
            data=png(digit),
            headers={"Content-Type": "image/png"},
        )
    )
    parsed = CompareResponse.model_validate(body)
    assert parsed.summary.images == 1
    assert parsed.results[0].true_label == str(label)
    assert parsed.summary.labeled is not None


def test_compare_without_labels_has_no_test(live_server: str, http: requests.Session) -> None:
    body = _ok(
        http.post(
            f"{live_server}/v1/models/tiny/compare",
            json={"images": [B64(png(mnist()[0][1])).decode()]},
        )
    )
    assert body["summary"]["labeled"] is None
    assert "true_label" not in body["results"][0]


# --- errors -----------------------------------------------------------------------------------

CLASSIFY = "/v1/models/tiny/classify"


def test_malformed_json_is_400(live_server: str, http: requests.Session) -> None:
    response = http.post(
        f"{live_server}{CLASSIFY}",
        data=b'{"images": [',
        headers={"Content-Type": "application/json"},
    )
    assert "malformed JSON body" in _error(response, 400, "bad_request")


def test_bad_base64_names_the_image(live_server: str, http: requests.Session) -> None:
    good = B64(png(mnist()[0][0])).decode()
    response = http.post(f"{live_server}{CLASSIFY}", json={"images": [good, "***not base64***"]})
    assert _error(response, 400, "bad_request").startswith("images[1] is not valid base64")


def test_non_ascii_base64_names_the_image_and_character(
    live_server: str, http: requests.Session
) -> None:
    good = B64(png(mnist()[0][0])).decode()
    response = http.post(f"{live_server}{CLASSIFY}", json={"images": [good, "iVBO\u00e9w=="]})
    message = _error(response, 400, "bad_request")
    assert message == "images[1] is not valid base64 (non-ASCII character '\u00e9' at 4)"


def test_json_body_that_would_parse_into_millions_of_values_is_413(
    live_server: str, http: requests.Session
) -> None:
    body = b'{"images": [' + b"[]," * (1 << 20) + b"[]]}"
    response = http.post(
        f"{live_server}{CLASSIFY}", data=body, headers={"Content-Type": "application/json"}
    )
    assert "over the limit of 1048576" in _error(response, 413, "payload_too_large")


def test_undecodable_image_names_the_image(live_server: str, http: requests.Session) -> None:
    files = [
        ("image", ("ok.png", png(mnist()[0][0]))),
        ("image", ("bad.png", b"GIF89a but not really")),
    ]
    response = http.post(f"{live_server}{CLASSIFY}", files=files)
    message = _error(response, 400, "invalid_image")
    assert message.startswith("image 1 ")
    assert response.json()["error"]["image"] == 1


def test_multipart_without_image_part(live_server: str, http: requests.Session) -> None:
    response = http.post(f"{live_server}{CLASSIFY}", files={"picture": ("a.png", b"x")})
    message = _error(response, 400, "bad_request")
    assert message == "the multipart body has no 'image' file part (file parts found: picture)"


def test_empty_raw_body(live_server: str, http: requests.Session) -> None:
    response = http.post(
        f"{live_server}{CLASSIFY}", data=b"", headers={"Content-Type": "image/png"}
    )
    assert _error(response, 400, "bad_request") == "the image/png body is empty"


def test_unknown_variant_lists_the_known_ones(live_server: str, http: requests.Session) -> None:
    response = http.post(f"{live_server}{CLASSIFY}?variant=finetuned", json={"images": ["AA=="]})
    message = _error(response, 404, "variant_not_found")
    assert message == "model 'tiny' has no variant 'finetuned' (known: pretrained, baseline)"


def test_unknown_model_on_post(live_server: str, http: requests.Session) -> None:
    response = http.post(f"{live_server}/v1/models/mnist/compare", json={"images": ["AA=="]})
    assert "known: tiny" in _error(response, 404, "model_not_found")


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/octet-stream", "image/svg+xml"]
)
def test_unsupported_content_type_is_415(
    live_server: str, http: requests.Session, content_type: str
) -> None:
    response = http.post(
        f"{live_server}{CLASSIFY}", data=b"abc", headers={"Content-Type": content_type}
    )
    message = _error(response, 415, "unsupported_media_type")
    assert f"content type {content_type!r} is not supported" in message
    assert "multipart/form-data, application/json" in message


@pytest.mark.parametrize(
    ("query", "body", "field"),
    [
        ("?top_k=0", None, "top_k"),
        ("?top_k=many", None, "top_k"),
        ("?invert=maybe", None, "invert"),
        ("", {"images": []}, "images"),
        ("", {"pictures": ["AA=="]}, "images"),
        ("", {"images": "AA=="}, "images"),
        ("", {"images": [7]}, "images[0]"),
        ("", {"images": ["AA=="], "labels": [{"x": 1}]}, "labels[0]"),
        ("", {"images": ["AA=="], "extra": 1}, "extra"),
    ],
)
def test_schema_violations_are_422_and_name_the_field(
    live_server: str, http: requests.Session, query: str, body: Any, field: str
) -> None:
    payload = body if body is not None else {"images": [B64(png(mnist()[0][0])).decode()]}
    response = http.post(f"{live_server}{CLASSIFY}{query}", json=payload)
    message = _error(response, 422, "validation_failed")
    assert response.json()["error"]["field"] == field
    assert field in message


def test_label_count_mismatch_is_422(live_server: str, http: requests.Session) -> None:
    image = B64(png(mnist()[0][0])).decode()
    response = http.post(
        f"{live_server}/v1/models/tiny/compare", json={"images": [image, image], "labels": [1]}
    )
    assert "1 labels for 2 images" in _error(response, 422, "validation_failed")


def test_unknown_label_is_422(live_server: str, http: requests.Session) -> None:
    response = http.post(
        f"{live_server}/v1/models/tiny/compare",
        files={"image": ("a.png", png(mnist()[0][0]))},
        data={"label": "eleven"},
    )
    assert "labels[0]: 'eleven' is neither" in _error(response, 422, "validation_failed")


def test_wrong_method_and_unknown_route_are_json(live_server: str, http: requests.Session) -> None:
    _error(http.get(f"{live_server}{CLASSIFY}"), 405, "method_not_allowed")
    _error(http.get(f"{live_server}/v1/nothing/here"), 404, "not_found")


# --- docs, page -------------------------------------------------------------------------------


def test_openapi_document(live_server: str, http: requests.Session) -> None:
    doc = _ok(http.get(f"{live_server}/openapi.json"))
    assert doc["openapi"].startswith("3.1")
    for path in ("/v1/models", "/v1/models/{model}/classify", "/v1/models/{model}/compare"):
        assert path in doc["paths"]
    assert "CompareResponse" in doc["components"]["schemas"]


@pytest.mark.parametrize("path", ["/docs", "/"])
def test_pages_work_offline(live_server: str, http: requests.Session, path: str) -> None:
    response = http.get(f"{live_server}{path}")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    html = response.text
    # No asset from another host: the pages must work with no internet.
    assert 'src="http' not in html
    assert 'href="http' not in html
    assert "@import" not in html


# --- blank images, framing and the model's input ------------------------------------------------


def test_a_blank_image_is_flagged_not_named(live_server: str, http: requests.Session) -> None:
    from PIL import Image

    blank = encode(Image.new("L", (280, 280), 255))  # the web page's empty pad
    digit = png(mnist()[0][0])
    url = f"{live_server}/v1/models/tiny/classify"
    body = ClassifyResponse.model_validate(
        _ok(http.post(url, files=[("image", blank), ("image", digit)]))
    )
    empty, drawn = body.predictions
    assert empty.blank
    assert (empty.label, empty.class_index, empty.probability, empty.top_k) == (
        None,
        None,
        None,
        [],
    )
    assert not drawn.blank
    assert drawn.label is not None
    compared = CompareResponse.model_validate(
        _ok(http.post(f"{live_server}/v1/models/tiny/compare", files=[("image", blank)]))
    )
    assert compared.results[0].blank
    embedded = EmbedResponse.model_validate(
        _ok(
            http.post(
                f"{live_server}/v1/models/tiny/embed", files=[("image", blank), ("image", digit)]
            )
        )
    )
    assert [e.blank for e in embedded.embeddings] == [True, False]
    assert all(len(e.vector) == e.size for e in embedded.embeddings)


def test_include_input_returns_what_the_model_received(
    live_server: str, http: requests.Session, local_store: ModelStore
) -> None:
    from PIL import Image

    image = photo_of_digit(mnist()[0][3])
    spec = local_store.variant("tiny", "pretrained").manifest.input
    expected = decode_batch([image], spec, DecodeOptions())[0, 0]
    for action in ("classify", "compare"):
        url = f"{live_server}/v1/models/tiny/{action}?include_input=true"
        body = _ok(http.post(url, files={"image": image}))
        item = (body.get("predictions") or body["results"])[0]
        with Image.open(io.BytesIO(base64.b64decode(item["input"]))) as shown:
            assert shown.format == "PNG"
            np.testing.assert_array_equal(np.asarray(shown), expected)
    plain = _ok(http.post(f"{live_server}/v1/models/tiny/classify", files={"image": image}))
    assert "input" not in plain["predictions"][0]


def test_framing_is_a_query_choice(live_server: str, http: requests.Session) -> None:
    image = photo_of_digit(mnist()[0][3])
    url = f"{live_server}/v1/models/tiny/classify"
    # The tiny models' manifests record no framing: auto and none are the same here.
    auto = _ok(http.post(f"{url}?framing=auto", files={"image": image}))
    none = _ok(http.post(f"{url}?framing=none", files={"image": image}))
    assert auto == none
    message = _error(
        http.post(f"{url}?framing=mnist", files={"image": image}), 422, "validation_failed"
    )
    assert "framing" in message
