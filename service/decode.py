"""Turn image bytes into the ``uint8 [C, H, W]`` array a model's input spec asks for.

Any size and colour mode goes in; the image is converted to the model's
channels, scaled to fit into H x W with its aspect ratio kept, padded with the
background colour and, when its polarity differs from the model's (dark strokes
on a light page versus MNIST's light strokes on black), inverted.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageOps, UnidentifiedImageError

from service.errors import InvalidImage, PayloadTooLarge
from service.manifest import InputSpec

Invert = Literal["auto", "true", "false"]

FORMATS: tuple[str, ...] = ("PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF")
"""The decoders Pillow may use; nothing else is even tried on client bytes."""

MEDIA_TYPES: dict[str, str] = {
    "image/png": "PNG",
    "image/jpeg": "JPEG",
    "image/jpg": "JPEG",
    "image/webp": "WEBP",
    "image/bmp": "BMP",
    "image/x-ms-bmp": "BMP",
    "image/gif": "GIF",
    "image/tiff": "TIFF",
}
"""Raw request body types the service accepts."""


_EXIF_FORMATS = frozenset({"JPEG", "WEBP", "TIFF", "PNG"})
_ORIENTATION = 0x0112  # the EXIF tag that says how the camera was held


@dataclass(frozen=True)
class DecodeOptions:
    """How to decode every image of one request."""

    invert: Invert = "auto"
    max_pixels: int = 16_000_000


def decode_image(
    data: bytes, spec: InputSpec, options: DecodeOptions, *, index: int = 0
) -> NDArray[np.uint8]:
    """Decode one image into ``uint8 [C, H, W]``; errors name the image by ``index``."""
    where = f"image {index}"
    if not data:
        raise InvalidImage(f"{where} is empty", image=index)
    try:
        image = Image.open(io.BytesIO(data), formats=FORMATS)
    except UnidentifiedImageError:
        raise InvalidImage(
            f"{where} is not a PNG, JPEG, WebP, BMP, GIF or TIFF image", image=index
        ) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # Pillow's own guard fires in open() for sizes far above any sane limit.
        raise PayloadTooLarge(
            f"{where} is too large to decode (over {options.max_pixels} pixels)", image=index
        ) from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise InvalidImage(f"{where} cannot be decoded ({exc})", image=index) from None
    width, height = image.size
    if width * height > options.max_pixels:
        raise PayloadTooLarge(
            f"{where} is {width}x{height} = {width * height} pixels, over the limit of "
            f"{options.max_pixels}",
            image=index,
        )
    try:
        return _to_array(image, spec, options.invert)
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        # Truncated or corrupt data surfaces only when the pixels are read.
        raise InvalidImage(f"{where} cannot be decoded ({exc})", image=index) from None


def decode_batch(
    images: Sequence[bytes], spec: InputSpec, options: DecodeOptions
) -> NDArray[np.uint8]:
    """Decode every image into one ``uint8 [N, C, H, W]`` batch."""
    batch = np.empty((len(images), spec.channels, spec.height, spec.width), dtype=np.uint8)
    for i, data in enumerate(images):
        batch[i] = decode_image(data, spec, options, index=i)
    return batch


def _to_array(image: Image.Image, spec: InputSpec, invert: Invert) -> NDArray[np.uint8]:
    mode = "L" if spec.channels == 1 else "RGB"
    target = (spec.width, spec.height)
    if image.format == "JPEG":
        # Let libjpeg scale a big photo down while decoding: far less work than a full decode.
        image.draft(mode, target)
    if image.format in _EXIF_FORMATS and image.getexif().get(_ORIENTATION, 1) != 1:
        # Phone photos are stored sideways with a tag saying how to turn them upright.
        image = ImageOps.exif_transpose(image)
    image = _flatten(image, mode)
    if image.size != target:
        scale = min(spec.width / image.width, spec.height / image.height)
        fitted = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(fitted, Image.Resampling.BILINEAR)
    pixels = np.asarray(image, dtype=np.uint8)  # [h, w] or [h, w, 3]
    if _needs_inversion(pixels, spec.polarity, invert):
        pixels = 255 - pixels
    if pixels.shape[:2] != (spec.height, spec.width):
        background = 0 if spec.polarity == "light_on_dark" else 255
        canvas = np.full((spec.height, spec.width, *pixels.shape[2:]), background, np.uint8)
        top = (spec.height - pixels.shape[0]) // 2
        left = (spec.width - pixels.shape[1]) // 2
        canvas[top : top + pixels.shape[0], left : left + pixels.shape[1]] = pixels
        pixels = canvas
    if pixels.ndim == 2:
        return pixels[np.newaxis]
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))


def _flatten(image: Image.Image, mode: str) -> Image.Image:
    """Convert to ``mode``, laying transparent images on a background that contrasts."""
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (
        image.mode == "P" and "transparency" in image.info
    )
    if image.mode in _DEEP_MODES:
        image = _stretch_to_8_bits(image)
    if not has_alpha:
        return image if image.mode == mode else image.convert(mode)
    rgba = image.convert("RGBA")
    alpha = np.asarray(rgba.getchannel("A"), dtype=np.float32)
    gray = np.asarray(rgba.convert("L"), dtype=np.float32)
    weight = float(alpha.sum())
    # Strokes drawn on a transparent canvas: light strokes go on black, dark ones on white.
    ink = float((gray * alpha).sum() / weight) if weight else 0.0
    background = Image.new("RGBA", rgba.size, (0, 0, 0, 255) if ink > 127 else (255,) * 4)
    return Image.alpha_composite(background, rgba).convert(mode)


_DEEP_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
"""16-bit, 32-bit integer and float greyscale: Pillow would clip them to 8 bits."""


def _stretch_to_8_bits(image: Image.Image) -> Image.Image:
    """Map a deep greyscale image's own value range linearly onto 0..255."""
    values = np.asarray(image, dtype=np.float64)
    low, high = float(values.min()), float(values.max())
    span = high - low if high > low else 1.0
    return Image.fromarray(((values - low) * (255.0 / span)).round().astype(np.uint8), "L")


def border_brightness(pixels: NDArray[np.uint8]) -> float:
    """Mean grey level of an ``[H, W]`` or ``[H, W, 3]`` image's outer ring (~1/14 of each side)."""
    h, w = pixels.shape[:2]
    ring = max(1, min(h, w) // 14)
    if 2 * ring >= min(h, w):
        return float(pixels.mean())
    total = float(pixels.sum(dtype=np.int64))
    inner = float(pixels[ring:-ring, ring:-ring].sum(dtype=np.int64))
    channels = int(pixels.shape[2]) if pixels.ndim == 3 else 1
    ring_values = (h * w - (h - 2 * ring) * (w - 2 * ring)) * channels
    return float((total - inner) / ring_values)


def _needs_inversion(pixels: NDArray[np.uint8], polarity: str, invert: Invert) -> bool:
    if invert != "auto":
        return invert == "true"
    light_border = border_brightness(pixels) > 127.5
    # The border is background: it should be dark for light_on_dark models and light otherwise.
    return light_border if polarity == "light_on_dark" else not light_border
