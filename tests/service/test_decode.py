from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image, ImageFile, PngImagePlugin

from service import decode
from service.decode import DecodeOptions, border_brightness, decode_batch, decode_image
from service.errors import InvalidImage, PayloadTooLarge
from service.manifest import InputSpec
from tests.images import drawn_seven, encode, mnist, photo_of_digit, png, png_header

MNIST_SPEC = InputSpec(channels=1, height=28, width=28)
AUTO = DecodeOptions()


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_mnist_sized_light_on_dark_passes_through_unchanged() -> None:
    digit = mnist()[0][0]
    out = decode_image(png(digit), MNIST_SPEC, AUTO)
    assert out.shape == (1, 28, 28)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out[0], digit)


@pytest.mark.parametrize("index", [0, 1234, 4321])
def test_photo_of_a_digit_is_inverted_and_fitted_back(index: int) -> None:
    digit = mnist()[0][index]
    out = decode_image(photo_of_digit(digit), MNIST_SPEC, AUTO)[0]
    assert border_brightness(out) < 10  # black background, like MNIST
    assert _cosine(out, digit) > 0.9
    kept = decode_image(photo_of_digit(digit), MNIST_SPEC, DecodeOptions(invert="false"))[0]
    assert _cosine(kept, digit) < 0.6


def test_drawn_digit_keeps_its_aspect_and_is_centred() -> None:
    # 200x100: the fitted image is 28x14, padded above and below with the background (black).
    image = drawn_seven((200, 100))
    out = decode_image(encode(image), MNIST_SPEC, AUTO)[0]
    assert out[:7].max() == 0
    assert out[-7:].max() == 0
    assert out[7:21].max() > 200  # the strokes, now light on dark


def test_explicit_inversion_overrides_auto() -> None:
    light_on_dark = drawn_seven((56, 56), dark_on_light=False)
    auto = decode_image(encode(light_on_dark), MNIST_SPEC, AUTO)[0]
    forced = decode_image(encode(light_on_dark), MNIST_SPEC, DecodeOptions(invert="true"))[0]
    np.testing.assert_array_equal(forced, 255 - auto)


def test_dark_on_light_model_gets_dark_strokes() -> None:
    spec = InputSpec(channels=1, height=28, width=28, polarity="dark_on_light")
    out = decode_image(png(mnist()[0][0]), spec, AUTO)[0]
    np.testing.assert_array_equal(out, 255 - mnist()[0][0])


def test_rgb_model_gets_three_channels_and_grey_input_is_replicated() -> None:
    spec = InputSpec(channels=3, height=32, width=32)
    out = decode_image(encode(drawn_seven((64, 64), dark_on_light=False)), spec, AUTO)
    assert out.shape == (3, 32, 32)
    np.testing.assert_array_equal(out[0], out[1])
    np.testing.assert_array_equal(out[1], out[2])
    colour = np.zeros((40, 40, 3), dtype=np.uint8)
    colour[10:30, 10:30] = (255, 0, 0)
    red = decode_image(png(colour), spec, AUTO)
    assert red[0].max() == 255
    assert red[1].max() == 0


@pytest.mark.parametrize(
    ("fmt", "params"),
    [
        ("PNG", {}),
        ("JPEG", {"quality": 95}),
        ("WEBP", {"lossless": True}),
        ("BMP", {}),
        ("TIFF", {}),
    ],
)
def test_every_format_decodes(fmt: str, params: dict[str, object]) -> None:
    image = drawn_seven((84, 84))
    out = decode_image(encode(image, fmt, **params), MNIST_SPEC, AUTO)[0]
    reference = decode_image(encode(image), MNIST_SPEC, AUTO)[0]
    assert np.abs(out.astype(int) - reference.astype(int)).mean() < 3


def test_gif_uses_the_first_frame() -> None:
    first = drawn_seven((56, 56), dark_on_light=False)
    second = Image.new("L", (56, 56), 0)
    data = encode(first, "GIF", save_all=True, append_images=[second])
    assert Image.open(__import__("io").BytesIO(data)).n_frames == 2
    out = decode_image(data, MNIST_SPEC, AUTO)[0]
    assert out.max() > 200


def test_transparent_canvas_with_dark_strokes_reads_as_a_digit() -> None:
    rgba = Image.new("RGBA", (56, 56), (0, 0, 0, 0))
    rgba.paste((0, 0, 0, 255), (20, 5, 30, 50))  # a black bar on a transparent canvas
    out = decode_image(encode(rgba), MNIST_SPEC, AUTO)[0]
    assert out[4:24, 11:14].min() > 200  # the bar is light on dark, as the model expects
    assert out[:, :5].max() == 0


def test_batch_stacks_in_order() -> None:
    digits = mnist()[0][:3]
    batch = decode_batch([png(d) for d in digits], MNIST_SPEC, AUTO)
    assert batch.shape == (3, 1, 28, 28)
    np.testing.assert_array_equal(batch[:, 0], digits)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "image 2 is empty"),
        (b"hello, not an image", "image 2 is not a PNG, JPEG, WebP, BMP, GIF or TIFF image"),
        (b"%PDF-1.4\n", "image 2 is not a PNG"),
    ],
)
def test_undecodable_bytes_name_the_image(data: bytes, message: str) -> None:
    with pytest.raises(InvalidImage, match=message) as caught:
        decode_image(data, MNIST_SPEC, AUTO, index=2)
    assert caught.value.status_code == 400
    assert caught.value.details == {"image": 2}


def test_truncated_image_is_a_client_error() -> None:
    data = encode(drawn_seven((300, 300)), "PNG")
    with pytest.raises(InvalidImage, match="image 1 cannot be decoded"):
        decode_image(data[: len(data) // 2], MNIST_SPEC, AUTO, index=1)


def test_image_over_the_pixel_limit_is_413() -> None:
    data = encode(Image.new("L", (120, 100)))
    with pytest.raises(
        PayloadTooLarge, match=r"image 0 is 120x100 = 12000 pixels, over the limit of 10000"
    ):
        decode_image(data, MNIST_SPEC, DecodeOptions(max_pixels=10_000))


@pytest.mark.parametrize("side", [5_000, 10_000, 20_000, 100_000])
def test_decompression_bombs_are_refused_before_decoding(side: int) -> None:
    bomb = png_header(side, side)
    assert len(bomb) < 200
    with pytest.raises(PayloadTooLarge, match=r"image 0 is .*(too large|over the limit)"):
        decode_image(bomb, MNIST_SPEC, AUTO)


def test_border_brightness_reads_the_outer_ring() -> None:
    page = np.full((56, 56), 200, dtype=np.uint8)
    page[4:52, 4:52] = 0  # a dark middle does not count
    assert border_brightness(page) == 200.0
    rgb = np.zeros((28, 28, 3), dtype=np.uint8)
    rgb[:, :, 0] = 90
    assert border_brightness(rgb) == 30.0


@pytest.mark.parametrize("dtype", [np.uint16, np.int32, np.float32])
def test_deep_greyscale_is_stretched_not_clipped(dtype: type) -> None:
    digit = mnist()[0][7].astype(np.float64)
    deep = (digit * {np.uint16: 257.0, np.int32: 1e5, np.float32: 1 / 255}[dtype]).astype(dtype)
    fmt = "PNG" if dtype is np.uint16 else "TIFF"
    out = decode_image(encode(Image.fromarray(deep), fmt), MNIST_SPEC, AUTO)[0]
    assert np.abs(out.astype(int) - mnist()[0][7].astype(int)).max() <= 1


def test_exif_orientation_is_applied() -> None:
    upright = drawn_seven((60, 60))
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # how a sideways camera stores it
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    tagged = encode(stored.convert("RGB"), "JPEG", quality=95, exif=exif.tobytes())
    out = decode_image(tagged, MNIST_SPEC, AUTO)[0]
    reference = decode_image(encode(upright, "PNG"), MNIST_SPEC, AUTO)[0]
    assert np.abs(out.astype(int) - reference.astype(int)).mean() < 4
    untagged = decode_image(encode(stored.convert("RGB"), "JPEG", quality=95), MNIST_SPEC, AUTO)[0]
    assert np.abs(untagged.astype(int) - reference.astype(int)).mean() > 20


# The fast PNG path must give exactly what Pillow gives. These tests compare decode_image
# with service.decode._decode_with_pillow, the Pillow-only path it falls back to.


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _with_chunks(data: bytes, *chunks: bytes) -> bytes:
    """``data`` with ``chunks`` inserted right after its IHDR."""
    return data[:33] + b"".join(chunks) + data[33:]


NEUTRAL = (
    _chunk(b"gAMA", struct.pack(">I", 45455)),
    _chunk(b"sRGB", b"\x00"),
    _chunk(b"cHRM", struct.pack(">8I", *range(31270, 31278))),
)


def _random_picture(rng: np.random.Generator, size: tuple[int, int], rgb: bool) -> NDArray:
    """Strokes on a light or dark page with some noise, as ``[h, w]`` or ``[h, w, 3]``."""
    h, w = size
    shape = (h, w, 3) if rgb else (h, w)
    light = bool(rng.integers(2))
    page = rng.integers(180, 256) if light else rng.integers(0, 60)
    pixels = np.full(shape, page, dtype=np.int64)
    for _ in range(int(rng.integers(1, 4))):
        top, left = int(rng.integers(0, h)), int(rng.integers(0, w))
        ink = rng.integers(0, 80, size=shape[2:]) if light else rng.integers(170, 256, shape[2:])
        pixels[top : top + int(rng.integers(1, h + 1)), left : left + int(rng.integers(1, 4))] = ink
    pixels += rng.integers(-20, 21, size=shape)
    return pixels.clip(0, 255).astype(np.uint8)


SIZES = [(28, 28), (28, 28), (1, 1), (20, 20), (10, 35), (50, 13), (64, 64), (63, 65), (90, 70)]
SPECS = [
    MNIST_SPEC,
    InputSpec(channels=1, height=28, width=28, polarity="dark_on_light"),
    InputSpec(channels=3, height=28, width=28),
    InputSpec(channels=3, height=24, width=32, polarity="dark_on_light"),
]


def test_fast_path_matches_pillow_on_random_pngs() -> None:
    rng = np.random.default_rng(7)
    fast = small = 0
    for trial in range(240):
        size = SIZES[trial % len(SIZES)]
        params: dict[str, object] = {"compress_level": int(rng.integers(0, 10))}
        if rng.random() < 0.2:
            params = {"optimize": True}
        picture = _random_picture(rng, size, rgb=rng.random() < 0.4)
        data = encode(Image.fromarray(picture), "PNG", **params)
        if rng.random() < 0.2:
            data = _with_chunks(data, *NEUTRAL)
        spec = SPECS[trial % len(SPECS)]
        options = DecodeOptions(invert=("auto", "true", "false")[int(rng.integers(3))])
        out = decode_image(data, spec, options)
        np.testing.assert_array_equal(out, decode._decode_with_pillow(data, spec, options, 0)[0])
        assert out.shape == (spec.channels, spec.height, spec.width)
        fast += decode._plain_png(data, spec.channels, options.max_pixels) is not None
        small += size[0] * size[1] <= 64 * 64
    assert fast == small  # every image of up to 64 x 64 pixels took the fast path


def test_luma_is_pillows_for_every_colour() -> None:
    every = np.arange(1 << 24, dtype=np.uint32)
    for block in np.split(every, 16):
        rgb = np.stack([block >> 16, (block >> 8) & 255, block & 255], axis=-1).astype(np.uint8)
        rgb = rgb.reshape(1024, 1024, 3)
        expected = np.asarray(Image.fromarray(rgb).convert("L"))
        np.testing.assert_array_equal(decode._luma(rgb), expected)


@pytest.fixture
def libspng_calls(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every call of ``pyspng.load`` from ``service.decode``, recorded."""
    calls: list[bytes] = []
    load = decode.pyspng.load

    def recording(data: bytes) -> NDArray:
        calls.append(data)
        return load(data)

    monkeypatch.setattr(decode.pyspng, "load", recording)
    return calls


def test_plain_small_png_never_reaches_pillow(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("Pillow opened a plain 28x28 PNG")

    monkeypatch.setattr(decode.Image, "open", refuse)
    digit = mnist()[0][3]
    for data in (
        png(digit),
        _with_chunks(png(digit), *NEUTRAL),
        encode(Image.fromarray(digit), dpi=(300, 300)),
    ):
        np.testing.assert_array_equal(decode_image(data, MNIST_SPEC, AUTO)[0], digit)


def test_gamma_and_colour_chunks_change_no_pixel(libspng_calls: list[bytes]) -> None:
    digit = mnist()[0][5]
    data = _with_chunks(png(digit), *NEUTRAL)
    np.testing.assert_array_equal(decode_image(data, MNIST_SPEC, AUTO)[0], digit)
    assert libspng_calls == [data]


def _xmp_orientation(image: Image.Image) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", '<x:xmpmeta><rdf:Description tiff:Orientation="6"/>')
    return encode(image, "PNG", pnginfo=info)


def _raw_exif_orientation(image: Image.Image) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6
    raw = b"Exif\x00\x00" + exif.tobytes()
    info = PngImagePlugin.PngInfo()
    info.add_text("Raw profile type exif", f"\nexif\n{len(raw)}\n{raw.hex()}\n")
    return encode(image, "PNG", pnginfo=info)


def _exif_orientation(image: Image.Image) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(image, "PNG", exif=exif.tobytes())


def _interlaced(image: Image.Image) -> bytes:
    """``image`` (L or RGB) as an Adam7-interlaced PNG, which Pillow cannot write."""
    pixels = np.asarray(image)
    colour = 0 if pixels.ndim == 2 else 2
    passes = [(0, 0, 8, 8), (0, 4, 8, 8), (4, 0, 8, 4), (0, 2, 4, 4), (2, 0, 4, 2), (0, 1, 2, 2)]
    rows = b""
    for top, left, down, across in [*passes, (1, 0, 2, 1)]:
        sub = pixels[top::down, left::across]
        rows += b"".join(b"\x00" + row.tobytes() for row in sub if sub.shape[1])
    header = struct.pack(">IIBBBBB", image.width, image.height, 8, colour, 0, 0, 1)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(rows))
        + _chunk(b"IEND", b"")
    )


def _sixteen_bits(image: Image.Image) -> bytes:
    return encode(Image.fromarray(np.asarray(image.convert("L")).astype(np.uint16) * 257))


ORIENTED = [_exif_orientation, _raw_exif_orientation, _xmp_orientation]


@pytest.mark.parametrize(
    "save",
    [
        pytest.param(
            lambda im: encode(im, transparency=235 if im.mode == "L" else (235,) * 3), id="tRNS"
        ),
        pytest.param(_exif_orientation, id="eXIf"),
        pytest.param(_raw_exif_orientation, id="text-exif"),
        pytest.param(_xmp_orientation, id="xmp"),
        pytest.param(lambda im: encode(im.convert("P"), "PNG"), id="palette"),
        pytest.param(lambda im: encode(im.convert("LA"), "PNG"), id="grey-alpha"),
        pytest.param(lambda im: encode(im.convert("RGBA"), "PNG"), id="rgb-alpha"),
        pytest.param(_sixteen_bits, id="16-bit"),
        pytest.param(_interlaced, id="interlaced"),
    ],
)
@pytest.mark.parametrize("rgb", [False, True], ids=["grey", "rgb"])
def test_pngs_off_the_fast_path_are_left_to_pillow(
    save: Callable[[Image.Image], bytes], rgb: bool, libspng_calls: list[bytes]
) -> None:
    image = drawn_seven((40, 56))
    image = image.convert("RGB") if rgb else image
    data = save(image)
    for spec in (MNIST_SPEC, SPECS[2]):
        out = decode_image(data, spec, AUTO)
        np.testing.assert_array_equal(out, decode._decode_with_pillow(data, spec, AUTO, 0)[0])
    assert libspng_calls == []


def test_interlaced_png_is_read_as_the_plain_one() -> None:
    image = drawn_seven((40, 56)).convert("RGB")
    np.testing.assert_array_equal(
        decode_image(_interlaced(image), SPECS[2], AUTO),
        decode_image(encode(image), SPECS[2], AUTO),
    )


@pytest.mark.parametrize("save", ORIENTED, ids=["eXIf", "text-exif", "xmp"])
def test_orientation_metadata_turns_the_image(save: Callable[[Image.Image], bytes]) -> None:
    # Why such PNGs must stay off the fast path: Pillow turns them a quarter.
    image = drawn_seven((40, 56))
    turned = decode_image(save(image), MNIST_SPEC, AUTO)
    upright = decode_image(encode(image.transpose(Image.Transpose.ROTATE_270)), MNIST_SPEC, AUTO)
    np.testing.assert_array_equal(turned, upright)


def _outcome(decoder: Callable[[], NDArray]) -> tuple[object, ...]:
    try:
        return ("decoded", decoder().tobytes())
    except (InvalidImage, PayloadTooLarge) as exc:
        return (type(exc).__name__, exc.message, exc.details)


@pytest.mark.parametrize("case", ["grey", "grey-with-gamma-chunks", "rgb-with-srgb-chunk"])
def test_every_damaged_byte_and_cut_gives_pillows_result(case: str) -> None:
    # Pillow checks the CRCs of the chunks before the image data and the zlib stream's own
    # checksum; libspng checks neither. Every corruption must end as Pillow ends it.
    data = {
        "grey": png(mnist()[0][11]),
        "grey-with-gamma-chunks": _with_chunks(png(mnist()[0][11]), *NEUTRAL),
        "rgb-with-srgb-chunk": _with_chunks(
            png(np.random.default_rng(3).integers(0, 256, (9, 11, 3), dtype=np.uint8)), NEUTRAL[1]
        ),
    }[case]
    assert decode._plain_png(data, 1, AUTO.max_pixels) is not None
    damaged = [data[:cut] for cut in range(1, len(data))]
    for position in range(8, len(data)):
        for flip in (0x01, 0x80):
            copy = bytearray(data)
            copy[position] ^= flip
            damaged.append(bytes(copy))
    errors = 0
    for sample in damaged:
        fast = _outcome(lambda sample=sample: decode_image(sample, MNIST_SPEC, AUTO, index=3))
        slow = _outcome(
            lambda sample=sample: decode._decode_with_pillow(sample, MNIST_SPEC, AUTO, 3)[0]
        )
        assert fast == slow
        errors += fast[0] != "decoded"
    assert errors > len(data)  # most damage is an error, not a silent decode


def _grey_png(pixels: NDArray, *idats: bytes, between: bytes = b"") -> bytes:
    """A greyscale PNG of ``pixels``'s size whose image data are ``idats``, as given."""
    header = struct.pack(">IIBBBBB", pixels.shape[1], pixels.shape[0], 8, 0, 0, 0, 0)
    chunks = [_chunk(b"IDAT", idat) for idat in idats]
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + chunks[0]
        + between
        + b"".join(chunks[1:])
        + _chunk(b"IEND", b"")
    )


def _odd_streams() -> dict[str, bytes]:
    pixels = mnist()[0][12]
    rows = b"".join(b"\x00" + row.tobytes() for row in pixels)
    stream = zlib.compress(rows)
    return {
        "no-checksum": _grey_png(pixels, stream[:-4]),
        "bad-checksum": _grey_png(pixels, stream[:-4] + bytes(4)),
        "junk-after-stream": _grey_png(pixels, stream + b"junk"),
        "a-row-too-many": _grey_png(pixels, zlib.compress(rows + rows[:29])),
        "a-row-short": _grey_png(pixels, zlib.compress(rows[:-29])),
        "bad-filter-type": _grey_png(pixels, zlib.compress(b"\x09" + rows[1:])),
        "split-data": _grey_png(pixels, stream[:50], b"", stream[50:60], stream[60:]),
        "chunk-inside-data": _grey_png(pixels, stream[:50], stream[50:], between=NEUTRAL[0]),
        "data-after-end": _grey_png(pixels, stream) + b"\x00" * 20,
        "no-end": _grey_png(pixels, stream)[:-12],
    }


@pytest.mark.parametrize("name", list(_odd_streams()))
def test_odd_image_data_gives_pillows_result(name: str) -> None:
    data = _odd_streams()[name]
    fast = _outcome(lambda: decode_image(data, MNIST_SPEC, AUTO))
    assert fast == _outcome(lambda: decode._decode_with_pillow(data, MNIST_SPEC, AUTO, 0)[0])
    if name == "split-data":
        assert decode._plain_png(data, 1, AUTO.max_pixels) is not None
        assert fast == ("decoded", mnist()[0][12][np.newaxis].tobytes())


def test_over_limit_header_is_refused_before_any_decoding(
    monkeypatch: pytest.MonkeyPatch, libspng_calls: list[bytes]
) -> None:
    def refuse(self: ImageFile.ImageFile) -> None:
        raise AssertionError("pixels decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)
    data = png(np.zeros((40, 30), dtype=np.uint8))
    with pytest.raises(
        PayloadTooLarge, match=r"^image 4 is 30x40 = 1200 pixels, over the limit of 1000$"
    ):
        decode_image(data, MNIST_SPEC, DecodeOptions(max_pixels=1000), index=4)
    assert libspng_calls == []


def test_png_bomb_is_never_inflated_past_what_the_image_needs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 64x64 grey needs 64 * 65 bytes of rows; this stream inflates to 64 MiB.
    squeezer = zlib.compressobj(9)
    bomb_stream = b"".join(squeezer.compress(bytes(1 << 20)) for _ in range(64))
    bomb = _grey_png(np.zeros((64, 64), dtype=np.uint8), bomb_stream + squeezer.flush())
    produced: list[int] = []
    real = zlib.decompressobj

    class Counting:
        def __init__(self) -> None:
            self.inner = real()
            self.eof = False

        def decompress(self, data: bytes, max_length: int = 0) -> bytes:
            out = self.inner.decompress(data, max_length)
            self.eof = self.inner.eof
            produced.append(len(out))
            return out

    monkeypatch.setattr(decode.zlib, "decompressobj", Counting)
    out = decode_image(bomb, MNIST_SPEC, AUTO)  # Pillow reads only the rows it needs
    assert out.shape == (1, 28, 28)
    assert produced == [64 * 65 + 1]


def _progressive_jpeg(extra_scans: int) -> bytes:
    """A progressive JPEG with its smallest scan repeated ``extra_scans`` more times."""
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8))
    sink = io.BytesIO()
    image.save(sink, "JPEG", progressive=True, quality=90)
    head, *scans = sink.getvalue().split(b"\xff\xda")
    smallest = min(scans[:-1], key=len)
    return b"\xff\xda".join([head, *scans[:-1], *[smallest] * extra_scans, scans[-1]])


def test_jpeg_with_too_many_scans_is_refused_before_decoding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    decode_image(_progressive_jpeg(0), MNIST_SPEC, AUTO)
    data = _progressive_jpeg(AUTO.max_jpeg_scans)

    def refuse(self: ImageFile.ImageFile) -> None:
        raise AssertionError("pixels decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)
    with pytest.raises(
        PayloadTooLarge, match=r"^image 2 is a JPEG with \d+ scans, over the limit of 64$"
    ):
        decode_image(data, MNIST_SPEC, AUTO, index=2)


def test_a_request_whose_png_headers_declare_too_many_pixels_is_refused_up_front(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    decoded: list[int] = []
    monkeypatch.setattr(decode, "decode_image", lambda *a, **k: decoded.append(1))
    images = [png(np.zeros((100, 100), np.uint8))] * 3
    with pytest.raises(
        PayloadTooLarge, match=r"3 images declare 30000 pixels, over the limit of 25000 per request"
    ):
        decode_batch(images, MNIST_SPEC, DecodeOptions(max_request_pixels=25_000))
    assert decoded == []


def test_other_formats_are_charged_to_the_request_before_each_is_decoded() -> None:
    images = [encode(Image.new("L", (100, 100)), "BMP")] * 3
    with pytest.raises(
        PayloadTooLarge,
        match=r"image 2 brings the request's images to 30000 pixels, over the limit of 25000",
    ):
        decode_batch(images, MNIST_SPEC, DecodeOptions(max_request_pixels=25_000))
    assert decode_batch(images, MNIST_SPEC, DecodeOptions(max_request_pixels=30_000)).shape == (
        3,
        1,
        28,
        28,
    )


def test_a_batch_past_its_deadline_stops_before_the_next_image() -> None:
    import time

    from service import deadline

    images = [png(np.zeros((28, 28), np.uint8))] * 2
    with (
        deadline.running_until(time.monotonic() - 1.0),
        pytest.raises(deadline.DeadlinePassed, match="before decoding image 0"),
    ):
        decode_batch(images, MNIST_SPEC, AUTO)
    assert decode_batch(images, MNIST_SPEC, AUTO).shape[0] == 2  # no deadline outside


@pytest.mark.parametrize("shape", [(28, 28), (64, 64), (65, 64), (600, 800), (300, 200, 3), (5, 3)])
def test_border_brightness_is_the_mean_of_the_outer_ring_at_any_size(
    shape: tuple[int, ...],
) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, shape).astype(np.uint8)
    ring = max(1, min(shape[:2]) // 14)
    outer = np.ones(shape[:2], dtype=bool)
    if 2 * ring < min(shape[:2]):
        outer[ring:-ring, ring:-ring] = False
    assert border_brightness(pixels) == pytest.approx(float(pixels[outer].mean()), abs=1e-9)
