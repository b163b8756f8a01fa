"""The web page in a real browser: Debian's Chromium, driven by Playwright, against gunicorn.

The models are the tiny test models (their digits are arbitrary), with MNIST framing
recorded in their manifests, so this checks the page's mechanics and what the model is
shown, not the answer's digit.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from numpy.typing import NDArray
from PIL import Image

from service.decode import DecodeOptions, decode_image
from service.manifest import MANIFEST_FILE, MNIST_FRAMING, InputSpec, parse_manifest
from tests.builders import write_repository
from tests.http.browser import browser_page as _page
from tests.images import mnist
from tests.server import running_server

pytestmark = pytest.mark.system

FRAMED_SPEC = InputSpec(channels=1, height=28, width=28, framing=MNIST_FRAMING)
# The page draws a chosen picture onto the pad once it has loaded, and says so.
PAD_HOLDS_FILE = "document.getElementById('pad').dataset.holds === 'file'"


# What the page must say of each variant: read from these manifest fields, so the numbers
# are ones no page could know without asking GET /v1/models.
TRAINING = {
    "pretrained": {"num_unlabeled": 4321, "num_labeled": 70, "labels_per_class": 7},
    "baseline": {"num_unlabeled": 0, "num_labeled": 70, "labels_per_class": 7},
}
ACCURACY = {"pretrained": 0.8125, "baseline": 0.75}


def _framed_repository(root: Path) -> Path:
    """The tiny models, their manifests saying their training images were MNIST-framed."""
    write_repository(root)
    for path in root.glob(f"*/*/{MANIFEST_FILE}"):
        manifest = parse_manifest(path.read_text(encoding="utf-8"))
        spec = manifest.input.model_copy(update={"framing": MNIST_FRAMING})
        training = manifest.training.model_copy(update=TRAINING[manifest.variant])
        metrics = manifest.test_metrics.model_copy(update={"accuracy": ACCURACY[manifest.variant]})
        update = {"input": spec, "training": training, "test_metrics": metrics}
        manifest.model_copy(update=update).write(path.parent)
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_server(_framed_repository(tmp_path_factory.mktemp("web-repo"))) as url:
        yield url


def _shown(page: object) -> NDArray[np.uint8]:
    """The 28x28 image the page shows as the model's input."""
    src = page.get_attribute("#seen", "src")  # type: ignore[attr-defined]
    assert src.startswith("data:image/png;base64,")
    with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as image:
        return np.asarray(image.convert("L"))


def _ink_box_and_centre(pixels: NDArray[np.uint8]) -> tuple[int, float, float]:
    rows = np.flatnonzero(pixels.max(axis=1) > 25)
    cols = np.flatnonzero(pixels.max(axis=0) > 25)
    side = max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1
    ink = pixels.astype(np.float64)
    steps = np.arange(28)
    cy = float((ink.sum(axis=1) * steps).sum() / ink.sum())
    cx = float((ink.sum(axis=0) * steps).sum() / ink.sum())
    return int(side), cy, cx


def _boxes(page: Any) -> dict[str, Any]:
    """Where the pad and every control sit."""
    names = ("#pad", "#file", "#clear", "#model", "#variant", "#classify", "#compare")
    return {name: page.locator(name).bounding_box() for name in names}


def _api_error(server: str, data: bytes, filename: str) -> str:
    """The error message the API itself gives for ``data`` sent as a multipart file."""
    response = requests.post(
        f"{server}/v1/models/tiny/classify",
        params={"variant": "pretrained", "top_k": "5", "include_input": "true"},
        files={"image": (filename, data)},
        timeout=10,
    )
    error = response.json()["error"]
    return f"{response.status_code} {error['code']}: {error['message']}"


def test_files_the_browser_cannot_draw_go_to_the_service_as_they_are(
    server: str, tmp_path: Path
) -> None:
    tiff = tmp_path / "digit.tif"
    Image.fromarray(255 - mnist()[0][0]).resize((112, 112)).save(tiff, format="TIFF")
    text = tmp_path / "notes.txt"
    text.write_text("not an image at all\n")
    problems: list[str] = []
    with _page(tmp_path, problems) as page:
        page.goto(server + "/")
        page.wait_for_function("document.getElementById('model').options.length > 0")

        # A TIFF: Chromium draws no preview, says so, and the service classifies the file.
        page.set_input_files("#file", str(tiff))
        page.wait_for_function(PAD_HOLDS_FILE)
        assert "No preview" in page.inner_text("#note")
        page.click("#classify")
        page.wait_for_selector("#seen")
        assert "pad is empty" not in page.inner_text("#out")
        expected = decode_image(tiff.read_bytes(), FRAMED_SPEC, DecodeOptions())[0]
        np.testing.assert_array_equal(_shown(page), expected)

        # A text file: sent as it is, and the service's own error message is shown.
        page.set_input_files("#file", str(text))
        page.wait_for_function(PAD_HOLDS_FILE)
        page.click("#classify")
        page.wait_for_selector("#error")
        assert page.inner_text("#error") == _api_error(server, text.read_bytes(), "notes.txt")
    # The one failed request is the text file's (which the browser logs as well).
    assert [p.split("?")[0] for p in problems] == [
        f"400 {server}/v1/models/tiny/classify",
        (
            "console error: Failed to load resource: the server responded with a status of "
            "400 (BAD REQUEST)"
        ),
    ]


def test_the_controls_stay_put_and_each_variant_is_described(server: str, tmp_path: Path) -> None:
    problems: list[str] = []
    with _page(tmp_path, problems) as page:
        page.goto(server + "/")
        page.wait_for_function("document.getElementById('model').options.length > 0")
        page.wait_for_selector("#about-baseline")
        assert page.inner_text("#about-pretrained") == (
            "pretrained is pre-trained (dae) on 4,321 unlabeled images, then is fine-tuned on "
            "70 labels (7 per class); test accuracy 81.2% on 10 held-out images."
        )
        assert page.inner_text("#about-baseline") == (
            "baseline starts from random weights, then is fine-tuned on 70 labels "
            "(7 per class) alone; test accuracy 75.0% on 10 held-out images."
        )
        assert page.locator('a[href="/experiments"]').count() == 1

        before = _boxes(page)
        box = before["#pad"]
        page.mouse.move(box["x"] + 100, box["y"] + 60)
        page.mouse.down()
        page.mouse.move(box["x"] + 140, box["y"] + 220, steps=8)
        page.mouse.up()
        page.click("#compare")
        page.wait_for_selector("#out .label")
        assert _boxes(page) == before
        page.click("#classify")
        page.wait_for_selector("#label")
        assert _boxes(page) == before
        page.set_viewport_size({"width": 420, "height": 900})  # a phone: one column
        narrow = _boxes(page)
        page.click("#compare")
        page.wait_for_selector("#out .label")
        assert _boxes(page) == narrow
    assert problems == []


def test_the_docs_page_groups_operations_with_classify_first(server: str, tmp_path: Path) -> None:
    problems: list[str] = []
    with _page(tmp_path, problems) as page:
        page.goto(server + "/docs")
        page.wait_for_selector("#ops section details")
        sections = page.eval_on_selector_all("#ops > section", "s => s.map((e) => e.id)")
        assert sections == ["tag-v1", "tag-V2", "tag-experiments", "tag-operations"]
        first = page.eval_on_selector_all(
            "#tag-v1 details > summary", "s => s.slice(0, 3).map((e) => e.textContent)"
        )
        assert first == [
            "post/v1/models/{model}/classify",
            "post/v1/models/{model}/embed",
            "post/v1/models/{model}/compare",
        ]
    assert problems == []


def test_draw_upload_classify_compare_and_clear(server: str, tmp_path: Path) -> None:
    digit_file = tmp_path / "digit.png"
    page_picture = Image.new("L", (800, 600), 240)
    ink = Image.fromarray(mnist()[0][0]).resize((200, 200), Image.Resampling.BICUBIC)
    page_picture.paste(0, (420, 330), ink)  # dark strokes where the digit has ink
    page_picture.save(digit_file)
    blank_file = tmp_path / "blank.png"
    Image.new("L", (300, 200), 250).save(blank_file)

    problems: list[str] = []
    classify_calls: list[str] = []
    with _page(tmp_path, problems) as page:
        page.on(
            "request",
            lambda r: classify_calls.append(r.url) if "/v1/models/" in r.url else None,
        )
        page.goto(server + "/")
        page.wait_for_function("document.getElementById('model').options.length > 0")

        # An empty pad is refused in the page, with a hint, and sends nothing.
        page.click("#classify")
        assert "pad is empty" in page.inner_text("#hint")
        assert classify_calls == []

        # A small 7 drawn in the top-left corner of the pad, with mouse strokes.
        box = page.locator("#pad").bounding_box()
        assert box is not None
        x0, y0 = box["x"], box["y"]
        page.mouse.move(x0 + 20, y0 + 20)
        page.mouse.down()
        for x, y in ((50, 20), (80, 20), (65, 50), (50, 80), (40, 100)):
            page.mouse.move(x0 + x, y0 + y, steps=5)
        page.mouse.up()
        page.click("#classify")
        page.wait_for_selector("#seen")
        assert page.inner_text("#label").strip()
        side, cy, cx = _ink_box_and_centre(_shown(page))
        # The corner drawing reached the model fitted into 20x20 and centred by mass.
        assert side in (19, 20, 21)
        assert abs(cy - 14) <= 1.0
        assert abs(cx - 14) <= 1.0

        page.click("#compare")
        page.wait_for_selector("#out .label")
        assert len(page.query_selector_all("#out .label")) == 2
        assert "Jensen" in page.inner_text("#out")
        page.wait_for_selector("#seen")

        # An uploaded PNG is sent as it is: the page shows exactly what the service made of it.
        page.set_input_files("#file", str(digit_file))
        page.wait_for_function(PAD_HOLDS_FILE)
        page.click("#classify")
        page.wait_for_function(
            "document.getElementById('out').textContent.includes('(pretrained)')"
        )
        expected = decode_image(digit_file.read_bytes(), FRAMED_SPEC, DecodeOptions())[0]
        np.testing.assert_array_equal(_shown(page), expected)
        page.screenshot(path=str(tmp_path / "web-page.png"), full_page=True)

        # Clear empties the pad, the answer and the file input.
        page.click("#clear")
        assert page.eval_on_selector("#file", "e => e.value") == ""
        assert page.inner_text("#out") == ""
        page.click("#classify")
        assert "pad is empty" in page.inner_text("#hint")

        # A blank picture reaches the service, which says so; the page passes it on.
        page.set_input_files("#file", str(blank_file))
        page.wait_for_function(PAD_HOLDS_FILE)
        page.click("#classify")
        page.wait_for_selector("#hint")
        assert "No digit found" in page.inner_text("#hint")
        page.screenshot(path=str(tmp_path / "web-page-blank.png"), full_page=True)
    assert problems == []
    print(f"screenshots: {tmp_path / 'web-page.png'}, {tmp_path / 'web-page-blank.png'}")
