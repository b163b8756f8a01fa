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
    "image/webp": "WEBP",
    "image/bmp": "BMP",
    "image/x-ms-bmp": "BMP",
    "image/gif": "GIF",
    "image/tiff": "TIFF",
}
"""Raw request body types the service accepts."""


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
    image = _flatten(image, mode)
    if image.size != target:
        scale = min(spec.width / image.width, spec.height / image.height)
        fitted = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(fitted, Image.Resampling.BILINEAR)
    if _needs_inversion(image, spec.polarity, invert):
        image = ImageOps.invert(image)
    if image.size != target:
        background = 0 if spec.polarity == "light_on_dark" else 255
        fill: int | tuple[int, int, int] = background if mode == "L" else (background,) * 3
        canvas = Image.new(mode, target, fill)
        canvas.paste(image, ((target[0] - image.width) // 2, (target[1] - image.height) // 2))
        image = canvas
    pixels = np.asarray(image, dtype=np.uint8)
    if pixels.ndim == 2:
        return pixels[np.newaxis]
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))


def _flatten(image: Image.Image, mode: str) -> Image.Image:
    """Convert to ``mode``, laying transparent images on a background that contrasts."""
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (
        image.mode == "P" and "transparency" in image.info
    )
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


def border_brightness(image: Image.Image) -> float:
    """Mean grey level of the image's outer ring of pixels (about 1/14 of each side)."""
    gray = np.asarray(image if image.mode == "L" else image.convert("L"), dtype=np.float32)
    h, w = gray.shape
    ring = max(1, min(h, w) // 14)
    if 2 * ring >= min(h, w):
        return float(gray.mean())
    inner = gray[ring:-ring, ring:-ring]
    return float((gray.sum() - inner.sum()) / (gray.size - inner.size))


def _needs_inversion(image: Image.Image, polarity: str, invert: Invert) -> bool:
    if invert != "auto":
        return invert == "true"
    light_border = border_brightness(image) > 127.5
    # The border is background: it should be dark for light_on_dark models and light otherwise.
    return light_border if polarity == "light_on_dark" else not light_border
