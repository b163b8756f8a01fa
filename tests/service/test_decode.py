from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

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
