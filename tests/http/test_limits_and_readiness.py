"""Size limits, a bad repository entry and an empty repository, on real gunicorn servers."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from PIL import Image

from service.api.schemas import ErrorResponse
from tests.builders import write_repository, write_variant
from tests.images import encode, mnist, png, png_header
from tests.server import running_server

LIMITS = {
    "HEADSTART_MAX_BODY_BYTES": "65536",
    "HEADSTART_MAX_IMAGE_PIXELS": "250000",
    "HEADSTART_MAX_BATCH": "3",
}


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, Path]]:
    """Small limits; the repository also holds ``broken``, whose baseline fails its hash check."""
    root = write_repository(tmp_path_factory.mktemp("strict-repo"), names=("tiny", "broken"))
    tampered = root / "broken" / "baseline" / "model.onnx"
    tampered.write_bytes(tampered.read_bytes() + b"\0")
    log = tmp_path_factory.mktemp("strict-log") / "gunicorn.log"
    with running_server(root, LIMITS, log_path=log) as url:
        yield url, log, tampered


def _error(response: requests.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert "X-Request-ID" in response.headers
    error = ErrorResponse.model_validate(response.json()).error
    assert error.code == code
    return error.message


def test_body_over_the_limit_is_413(strict_server: tuple[str, Path, Path]) -> None:
    url = strict_server[0]
    noise = Image.effect_noise((400, 400), 80).convert("L")
    big = encode(noise)
    assert len(big) > 65536
    response = requests.post(
        f"{url}/v1/models/tiny/classify",
        data=big,
        headers={"Content-Type": "image/png"},
        timeout=10,
    )
    assert _error(response, 413, "payload_too_large") == (
        "request body is over the limit of 65536 bytes"
    )


def test_image_over_the_pixel_limit_is_413(strict_server: tuple[str, Path, Path]) -> None:
    url = strict_server[0]
    small_file = encode(Image.new("L", (600, 500)))  # 300,000 pixels in a few hundred bytes
    response = requests.post(
        f"{url}/v1/models/tiny/classify",
        files=[("image", ("a.png", png(mnist()[0][0]))), ("image", ("b.png", small_file))],
        timeout=10,
    )
    message = _error(response, 413, "payload_too_large")
    assert message == "image 1 is 600x500 = 300000 pixels, over the limit of 250000"


@pytest.mark.parametrize("side", [1_000, 30_000, 200_000])
def test_decompression_bomb_is_413(strict_server: tuple[str, Path, Path], side: int) -> None:
    bomb = base64.b64encode(png_header(side, side)).decode()
    response = requests.post(
        f"{strict_server[0]}/v1/models/tiny/embed", json={"images": [bomb]}, timeout=10
    )
    assert _error(response, 413, "payload_too_large").startswith("image 0 is ")


def test_batch_over_the_limit_is_413(strict_server: tuple[str, Path, Path]) -> None:
    image = base64.b64encode(png(mnist()[0][0])).decode()
    response = requests.post(
        f"{strict_server[0]}/v1/models/tiny/compare", json={"images": [image] * 4}, timeout=10
    )
    message = _error(response, 413, "payload_too_large")
    assert message == "images: 4 images, over the limit of 3 per request"


def test_bad_entry_is_logged_and_skipped_the_rest_serve(
    strict_server: tuple[str, Path, Path],
) -> None:
    url, log, tampered = strict_server
    ready = requests.get(f"{url}/health/ready", timeout=5)
    # Degraded, not down: what loaded still serves, and the probe names what did not.
    assert ready.status_code == 200
    assert ready.json()["status"] == "degraded"
    assert ready.json()["models"] == ["broken", "tiny"]
    (entry,) = ready.json()["unavailable"]
    assert entry["path"] == "broken/baseline/model.onnx"
    assert (entry["model"], entry["variant"]) == ("broken", "baseline")
    assert entry["reason"].startswith("sha256 ")
    broken = requests.get(f"{url}/v1/models/broken", timeout=5).json()
    assert [v["variant"] for v in broken["variants"]] == ["pretrained"]
    listing = requests.get(f"{url}/v1/models", timeout=5).json()
    assert listing["unavailable"] == [entry]
    response = requests.post(
        f"{url}/v1/models/broken/classify?variant=baseline", json={"images": ["AA=="]}, timeout=5
    )
    message = _error(response, 503, "not_ready")
    assert message.startswith("variant 'baseline' of model 'broken' is not ready: sha256 ")
    for body in (ready.text, listing, message):
        assert str(tampered.parent) not in str(body)  # no server paths reach clients
    text = log.read_text()
    assert f"skipped {tampered}: sha256 " in text
    assert "does not match the manifest's" in text


# An empty repository is refused at start (tests/scripts/test_serve_command.py); one whose
# only model has no usable variant starts, and says it is not ready.
NO_USABLE_MODEL = (
    "no usable model in the model repository: tiny/pretrained: variant 'pretrained' is "
    "missing; tiny/baseline: variant 'baseline' is missing"
)


@pytest.fixture(scope="module")
def empty_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("empty-repo")
    (root / "tiny").mkdir()
    with running_server(root) as url:
        yield url


def test_not_ready_without_usable_models(empty_server: str) -> None:
    ready = requests.get(f"{empty_server}/health/ready", timeout=5)
    assert ready.status_code == 503
    assert ready.json()["status"] == "not_ready"
    assert ready.json()["reason"] == NO_USABLE_MODEL
    assert requests.get(f"{empty_server}/health/live", timeout=5).status_code == 200
    for response in (
        requests.get(f"{empty_server}/v1/models", timeout=5),
        requests.post(
            f"{empty_server}/v1/models/tiny/classify", json={"images": ["AA=="]}, timeout=5
        ),
    ):
        assert _error(response, 503, "not_ready") == NO_USABLE_MODEL


def test_model_with_one_variant_still_serves_it(tmp_path: Path) -> None:
    write_variant(tmp_path / "repo", "solo", "pretrained")
    with running_server(tmp_path / "repo") as url:
        assert requests.get(f"{url}/health/ready", timeout=5).status_code == 200
        image = base64.b64encode(png(mnist()[0][0])).decode()
        ok = requests.post(f"{url}/v1/models/solo/classify", json={"images": [image]}, timeout=5)
        assert ok.status_code == 200
        compare = requests.post(
            f"{url}/v1/models/solo/compare", json={"images": [image]}, timeout=5
        )
        # The repository promises both variants, so a missing one is a fault it names.
        assert _error(compare, 503, "not_ready") == (
            "variant 'baseline' of model 'solo' is not ready: variant 'baseline' is missing"
        )
