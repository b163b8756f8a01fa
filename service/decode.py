"""Turn image bytes into the ``uint8 [C, H, W]`` array a model's input spec asks for.

Any size and colour mode goes in; the image is converted to the model's
channels and, when its polarity differs from the model's (dark strokes on a light
page versus MNIST's light strokes on black), inverted. Then, for a model whose
manifest records how its training images were framed (MNIST's: the ink cropped,
fitted into 20x20 and centred by mass in 28x28), it is framed the same way by
:mod:`service.framing`; otherwise it is scaled to fit into H x W with its aspect
ratio kept and padded with the background colour.
"""

from __future__ import annotations

import base64
import io
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyspng  # type: ignore[import-untyped]
from numpy.typing import NDArray
from PIL import Image, ImageOps, UnidentifiedImageError

from service import deadline
from service.errors import InvalidImage, PayloadTooLarge
from service.framing import already_framed, frame
from service.manifest import InputSpec

Invert = Literal["auto", "true", "false"]
FramingChoice = Literal["auto", "none"]

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
    framing: FramingChoice = "auto"
    """``auto`` frames as the model's manifest records (if it records any); ``none`` never."""
    max_pixels: int = 16_000_000
    max_request_pixels: int = 64_000_000
    """Most pixels all the images of one request may hold together: the work of decoding
    grows with them, and a request's own thread does all of it."""
    max_jpeg_scans: int = 64
    """Most scans a JPEG may have: libjpeg redoes the work of a progressive image once per
    scan, so a few hundred KB of crafted scans would hold a worker for tens of seconds.
    Encoders write at most about a dozen."""

    def frames(self, spec: InputSpec) -> bool:
        """Whether images decoded for ``spec`` are framed."""
        return self.framing == "auto" and spec.framing is not None


class PixelBudget:
    """The pixels one request's images may still hold; each image is charged before it is
    decoded, from the size its header declares."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.spent = 0

    def charge(self, pixels: int, index: int) -> None:
        """Spend ``pixels`` on image ``index``; 413 when the request's total goes over."""
        self.spent += pixels
        if self.spent > self.limit:
            raise PayloadTooLarge(
                f"images: image {index} brings the request's images to {self.spent} pixels, "
                f"over the limit of {self.limit} per request; send fewer or smaller images",
                image=index,
                field="images",
            )


@dataclass(frozen=True)
class Decoded:
    """A request's images as the model takes them, and what framing found blank."""

    pixels: NDArray[np.uint8]
    """``uint8 [N, C, H, W]``."""
    blank: tuple[bool, ...] | None
    """Per image, framing's own verdict (measured on the whole picture, so nobody need
    measure the framed one again); None when the images were not framed."""


Laid = tuple[NDArray[np.uint8], bool | None]
"""One image as the model takes it, and framing's blank verdict (None if not framed)."""


def decode_image(
    data: bytes,
    spec: InputSpec,
    options: DecodeOptions,
    *,
    index: int = 0,
    budget: PixelBudget | None = None,
) -> NDArray[np.uint8]:
    """Decode one image into ``uint8 [C, H, W]``; errors name the image by ``index``.

    With a ``budget``, the image's declared pixels are charged to it before decoding."""
    return _decode_one(data, spec, options, index, budget)[0]


def _decode_one(
    data: bytes, spec: InputSpec, options: DecodeOptions, index: int, budget: PixelBudget | None
) -> Laid:
    if not data:
        raise InvalidImage(f"image {index} is empty", image=index)
    pixels = _plain_png(data, spec.channels, options.max_pixels)
    if pixels is None:
        return _decode_with_pillow(data, spec, options, index, budget)
    if budget is not None:
        budget.charge(pixels.shape[0] * pixels.shape[1], index)
    return lay_out(pixels, spec, options)


def decode_batch(
    images: Sequence[bytes], spec: InputSpec, options: DecodeOptions
) -> NDArray[np.uint8]:
    """:func:`decode_images`' pixels alone."""
    return decode_images(images, spec, options).pixels


def decode_images(images: Sequence[bytes], spec: InputSpec, options: DecodeOptions) -> Decoded:
    """Decode every image into one ``uint8 [N, C, H, W]`` batch, within the request's budget.

    A request whose PNG headers already declare more than ``max_request_pixels`` is refused
    before any image is decoded; the others are charged image by image. Between images the
    request's deadline is checked (:mod:`service.deadline`), so an abandoned request stops.
    """
    declared = 0
    for i, data in enumerate(images):
        width, height = _png_size(data)
        if width * height > options.max_pixels:
            raise _over_image_limit(i, width, height, options.max_pixels)
        declared += width * height
    if declared > options.max_request_pixels:
        raise PayloadTooLarge(
            f"images: the request's {len(images)} images declare {declared} pixels, over the "
            f"limit of {options.max_request_pixels} per request; send fewer or smaller images",
            field="images",
        )
    budget = PixelBudget(options.max_request_pixels)
    batch = np.empty((len(images), spec.channels, spec.height, spec.width), dtype=np.uint8)
    blank: list[bool | None] = []
    for i, data in enumerate(images):
        deadline.check(f"decoding image {i}")
        batch[i], verdict = _decode_one(data, spec, options, i, budget)
        blank.append(verdict)
    if not options.frames(spec):
        return Decoded(batch, None)
    return Decoded(batch, tuple(bool(b) for b in blank))


def _png_size(data: bytes) -> tuple[int, int]:
    """The width and height a PNG's header declares ((0, 0) for anything else: Pillow's open
    tells those later)."""
    if len(data) < 24 or not data.startswith(_PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return 0, 0
    width, height = struct.unpack_from(">II", data, 16)
    return int(width), int(height)


def _over_image_limit(index: int, width: int, height: int, limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"image {index} is {width}x{height} = {width * height} pixels, over the limit of {limit}",
        image=index,
    )


def _decode_with_pillow(
    data: bytes,
    spec: InputSpec,
    options: DecodeOptions,
    index: int,
    budget: PixelBudget | None = None,
) -> Laid:
    where = f"image {index}"
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
    if image.format == "JPEG":
        _check_scans(data, options.max_jpeg_scans, where, index)
    if width * height > options.max_pixels:
        raise _over_image_limit(index, width, height, options.max_pixels)
    if budget is not None:
        budget.charge(width * height, index)
    try:
        return lay_out(_upright_and_flat(image, spec, options), spec, options)
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        # Truncated or corrupt data surfaces only when the pixels are read.
        raise InvalidImage(f"{where} cannot be decoded ({exc})", image=index) from None


_START_OF_SCAN = b"\xff\xda"


def _check_scans(data: bytes, limit: int, where: str, index: int) -> None:
    """Refuse a JPEG with more than ``limit`` scans before libjpeg decodes any of them.

    Entropy-coded data stuffs every 0xFF byte with a zero, so each SOS marker pair in the
    bytes starts a scan (or one of an embedded thumbnail's: an overestimate, never an under).
    """
    scans = data.count(_START_OF_SCAN)
    if scans > limit:
        raise PayloadTooLarge(
            f"{where} is a JPEG with {scans} scans, over the limit of {limit}", image=index
        )


def _upright_and_flat(image: Image.Image, spec: InputSpec, options: DecodeOptions) -> Image.Image:
    """Turn ``image`` by its EXIF orientation and convert it to the model's channels."""
    mode = "L" if spec.channels == 1 else "RGB"
    if image.format == "JPEG":
        # Let libjpeg scale a big photo down while decoding: far less work than a full decode.
        # Framing crops to the ink first, so it needs the detail of a larger picture.
        scale = _FRAMING_DETAIL if options.frames(spec) else 1
        image.draft(mode, (spec.width * scale, spec.height * scale))
    if image.format in _EXIF_FORMATS and image.getexif().get(_ORIENTATION, 1) != 1:
        # Phone photos are stored sideways with a tag saying how to turn them upright.
        image = ImageOps.exif_transpose(image)
    return _flatten(image, mode)


_FRAMING_DETAIL = 8
"""How many times the frame's size a JPEG is decoded at, at least, when it is to be framed."""


def lay_out(
    picture: Image.Image | NDArray[np.uint8], spec: InputSpec, options: DecodeOptions
) -> Laid:
    """Fit a decoded ``L``/``RGB`` picture into the spec (framed, when the model's images were;
    else scaled and padded), with its polarity fixed, as ``[C, H, W]``, and framing's blank
    verdict (None when not framed)."""
    if options.framing == "auto" and spec.framing is not None:
        pixels = np.asarray(picture, dtype=np.uint8)
        return _framed(pixels, spec, options.invert, spec.framing.box)
    invert = options.invert
    height, width = picture.shape[:2] if isinstance(picture, np.ndarray) else picture.size[::-1]
    if (width, height) != (spec.width, spec.height):
        image = Image.fromarray(picture) if isinstance(picture, np.ndarray) else picture
        scale = min(spec.width / width, spec.height / height)
        fitted = (max(1, round(width * scale)), max(1, round(height * scale)))
        picture = image.resize(fitted, Image.Resampling.BILINEAR)
    pixels = np.asarray(picture, dtype=np.uint8)  # [h, w] or [h, w, 3]
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
        return pixels[np.newaxis], None
    return np.ascontiguousarray(pixels.transpose(2, 0, 1)), None


# Pillow spends ~15 us of Python on every image before it reads a pixel, which is most of
# the cost of a small PNG; libspng decodes one in a few. libspng skips the checksums
# Pillow verifies, so the fast path checks them itself and leaves every PNG it cannot
# prove Pillow would decode to the same pixels (and every error) to Pillow.
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_FAST_PNG_PIXELS = 64 * 64
"""Above this, inflating the data twice (here, then in libspng) costs more than it saves."""
_NEUTRAL_CHUNKS = {b"gAMA": 4, b"cHRM": 32, b"sRGB": 1, b"pHYs": 9}
"""Chunks that change nothing in Pillow's pixels, with the length Pillow reads them at.

Neither decoder applies gamma or colour profiles; tRNS, eXIf and text (which may carry
an EXIF or XMP orientation) do change Pillow's result, so they leave the fast path."""


def _plain_png(data: bytes, channels: int, max_pixels: int) -> NDArray[np.uint8] | None:
    """Decode a small 8-bit grey or RGB PNG with libspng; None leaves it to Pillow."""
    if len(data) < 33 or not data.startswith(_PNG_SIGNATURE):
        return None
    length, kind, width, height, depth, colour, compression, filters, interlace, crc = (
        struct.unpack_from(">I4sIIBBBBBI", data, 8)
    )
    if (
        (length, kind, depth, compression, filters, interlace) != (13, b"IHDR", 8, 0, 0, 0)
        or colour not in (0, 2)
        # Over the limit: Pillow refuses it with the usual message, before any decoding.
        or not 0 < width * height <= min(max_pixels, _FAST_PNG_PIXELS)
        or zlib.crc32(data[12:29]) != crc
    ):
        return None
    stream = _image_data(data)
    if stream is None:
        return None
    # Filtered rows: a filter byte and the row's samples. Pillow refuses a stream whose
    # Adler-32 is wrong and libspng does not check it, so the stream is inflated here, but
    # never past what the image needs: one that goes on (a decompression bomb, or data
    # Pillow would ignore) is left to Pillow, which stops reading once the image is full.
    needed = height * (1 + width * (1 if colour == 0 else 3))
    inflater = zlib.decompressobj()
    try:
        rows = inflater.decompress(stream, needed + 1)
    except zlib.error:
        return None
    if len(rows) != needed or not inflater.eof:
        return None
    try:
        pixels: NDArray[np.uint8] = pyspng.load(data)
    except Exception:  # noqa: BLE001 -- whatever libspng dislikes, Pillow words its own error
        return None
    if colour == 0 and channels == 3:
        return np.repeat(pixels[:, :, np.newaxis], 3, axis=2)
    if colour == 2 and channels == 1:
        return _luma(pixels)
    return pixels


def _image_data(data: bytes) -> bytes | None:
    """The joined IDAT chunks, if every other chunk after IHDR is neutral and sound, else None."""
    parts: list[bytes] = []
    after_data = False
    offset = 33
    while offset + 12 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, offset)
        end = offset + 12 + length
        if end > len(data):
            return None
        if kind == b"IDAT":
            if after_data:
                return None
            parts.append(data[offset + 8 : end - 4])
        elif kind == b"IEND":
            return b"".join(parts) if parts else None
        elif _NEUTRAL_CHUNKS.get(kind) != length or zlib.crc32(
            data[offset + 4 : end - 4]
        ) != int.from_bytes(data[end - 4 : end], "big"):
            return None
        else:
            after_data = bool(parts)
        offset = end
    return None


def _luma(rgb: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Pillow's RGB to L: ITU-R 601-2 luma in 16-bit fixed point, rounded."""
    weighted = rgb.astype(np.uint32) @ np.array([19595, 38470, 7471], dtype=np.uint32)
    return ((weighted + 0x8000) >> 16).astype(np.uint8)


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


def encode_png(pixels: NDArray[np.uint8]) -> str:
    """A ``uint8 [C, H, W]`` image (C = 1 or 3) as a base64 PNG, as JSON carries it."""
    picture = pixels[0] if pixels.shape[0] == 1 else pixels.transpose(1, 2, 0)
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(picture)).save(out, "PNG")
    return base64.b64encode(out.getvalue()).decode("ascii")


def border_brightness(pixels: NDArray[np.uint8]) -> float:
    """Mean grey level of an ``[H, W]`` or ``[H, W, 3]`` image's outer ring (~1/14 of each side)."""
    h, w = pixels.shape[:2]
    ring = max(1, min(h, w) // 14)
    if 2 * ring >= min(h, w):
        return float(pixels.mean())
    # The four strips alone: on a photo the ring is a fraction of the picture.
    strips = (
        pixels[:ring],
        pixels[-ring:],
        pixels[ring:-ring, :ring],
        pixels[ring:-ring, -ring:],
    )
    total = sum(int(strip.sum(dtype=np.int64)) for strip in strips)
    return total / sum(int(strip.size) for strip in strips)


def _framed(pixels: NDArray[np.uint8], spec: InputSpec, invert: Invert, box: int) -> Laid:
    """Fix the polarity of a full-size picture, then frame it as the model's training data were."""
    if (
        pixels.shape == (spec.height, spec.width)
        and spec.polarity == "light_on_dark"
        and invert != "true"
        and already_framed(pixels, box)
    ):
        # Framed already, and its border is black (its ink spans at most box of the frame's
        # pixels, too few to make the outer ring read light): it stays as it is.
        return pixels[np.newaxis], False
    if _needs_inversion(pixels, spec.polarity, invert):
        pixels = 255 - pixels
    light_strokes = spec.polarity == "light_on_dark"
    framed = frame(pixels, spec.height, spec.width, light_strokes=light_strokes, box=box)
    if framed.pixels.ndim == 2:
        return framed.pixels[np.newaxis], framed.blank
    return np.ascontiguousarray(framed.pixels.transpose(2, 0, 1)), framed.blank


def _needs_inversion(pixels: NDArray[np.uint8], polarity: str, invert: Invert) -> bool:
    if invert != "auto":
        return invert == "true"
    light_border = border_brightness(pixels) > 127.5
    # The border is background: it should be dark for light_on_dark models and light otherwise.
    return light_border if polarity == "light_on_dark" else not light_border
