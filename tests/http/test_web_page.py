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

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image

from service.decode import DecodeOptions, decode_image
from service.manifest import MANIFEST_FILE, MNIST_FRAMING, InputSpec, parse_manifest
from tests.builders import write_repository
from tests.images import mnist
from tests.server import running_server
from tests.system import require

pytestmark = pytest.mark.system

FRAMED_SPEC = InputSpec(channels=1, height=28, width=28, framing=MNIST_FRAMING)
# The page draws a chosen picture onto the pad once it has loaded, and says so.
PAD_HOLDS_FILE = "document.getElementById('pad').dataset.holds === 'file'"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _framed_repository(root: Path) -> Path:
    """The tiny models, their manifests saying their training images were MNIST-framed."""
    write_repository(root)
    for path in root.glob(f"*/*/{MANIFEST_FILE}"):
        manifest = parse_manifest(path.read_text(encoding="utf-8"))
        spec = manifest.input.model_copy(update={"framing": MNIST_FRAMING})
        manifest.model_copy(update={"input": spec}).write(path.parent)
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


def test_draw_upload_classify_compare_and_clear(server: str, tmp_path: Path) -> None:
    chromium = require("chromium", "chromium")
    from playwright.sync_api import sync_playwright

    digit_file = tmp_path / "digit.png"
    page_picture = Image.new("L", (800, 600), 240)
    ink = Image.fromarray(mnist()[0][0]).resize((200, 200), Image.Resampling.BICUBIC)
    page_picture.paste(0, (420, 330), ink)  # dark strokes where the digit has ink
    page_picture.save(digit_file)
    blank_file = tmp_path / "blank.png"
    Image.new("L", (300, 200), 250).save(blank_file)

    problems: list[str] = []
    classify_calls: list[str] = []
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),  # a new, empty user-data dir
            executable_path=chromium,
            headless=True,
            args=CHROMIUM_ARGS,
        )
        try:
            page = context.new_page()
            page.on(
                "console",
                lambda m: (
                    problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None
                ),
            )
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on(
                "response",
                lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None,
            )
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
        finally:
            context.close()
    assert problems == []
    print(f"screenshots: {tmp_path / 'web-page.png'}, {tmp_path / 'web-page-blank.png'}")
