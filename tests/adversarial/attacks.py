"""Hostile request bodies and a raw HTTP client for what ``requests`` will not send."""

from __future__ import annotations

import base64
import io
import json
import socket
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from urllib.parse import urlsplit

import numpy as np
from PIL import Image

from tests.images import png_header

CLASSIFY = "/v1/models/tiny/classify"
INFER = "/v2/models/tiny-pretrained/infer"
MiB = 1024 * 1024


@dataclass(frozen=True)
class Attack:
    """One hostile request and the statuses that count as handling it."""

    path: str
    content_type: str
    body: Callable[[], bytes]
    statuses: frozenset[int]
    headers: dict[str, str] = field(default_factory=dict)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def zlib_bomb_png() -> bytes:
    """A 64x64 greyscale PNG whose image data inflate to 1 GiB (the body is about 1 MB)."""
    stream = zlib_zeros(1024)
    header = struct.pack(">IIBBBBB", 64, 64, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", stream)
        + _chunk(b"IEND", b"")
    )


def many_scan_jpeg(scans: int = 5000) -> bytes:
    """A progressive JPEG with ``scans`` copies of its smallest scan."""
    rng = np.random.default_rng(0)
    sink = io.BytesIO()
    image = Image.fromarray(rng.integers(0, 256, (256, 256), dtype=np.uint8))
    image.save(sink, "JPEG", progressive=True, quality=90)
    head, *parts = sink.getvalue().split(b"\xff\xda")
    smallest = min(parts[:-1], key=len)
    return b"\xff\xda".join([head, *parts[:-1], *[smallest] * scans, parts[-1]])


def many_frame_gif(frames: int = 2000) -> bytes:
    """An animated GIF of ``frames`` 64x64 frames: only the first may be decoded."""
    rng = np.random.default_rng(1)
    images = [Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8)) for _ in range(8)]
    sink = io.BytesIO()
    sequence = [images[i % 8] for i in range(frames)]
    sequence[0].save(sink, "GIF", save_all=True, append_images=sequence[1:], duration=1)
    return sink.getvalue()


def bmp_header(width: int, height: int) -> bytes:
    """A BMP that claims ``width x height`` 8-bit pixels and carries none."""
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 0, 0, 2835, 2835, 256, 0)
    palette = bytes(1024)
    offset = 14 + len(info) + len(palette)
    return b"BM" + struct.pack("<IHHI", offset + 16, 0, 0, offset) + info + palette + bytes(16)


def multipart(part_head: str, data: bytes, boundary: str = "bomb") -> tuple[str, bytes]:
    body = (
        f"--{boundary}\r\n{part_head}\r\n\r\n".encode() + data + f"\r\n--{boundary}--\r\n".encode()
    )
    return f"multipart/form-data; boundary={boundary}", body


def _multipart_image(data: bytes) -> bytes:
    return multipart('Content-Disposition: form-data; name="image"; filename="a.png"', data)[1]


def _json_image(data: bytes) -> bytes:
    return json.dumps({"images": [base64.b64encode(data).decode()]}).encode()


def _folded_part_headers() -> bytes:
    folds = "\r\n x" * 1_000_000
    head = f'Content-Disposition: form-data; name="image"; filename="a.png"\r\nX-Fold: x{folds}'
    return multipart(head, b"x")[1]


def _v2(inputs: str, parameters: str = "{}") -> bytes:
    return f'{{"parameters": {parameters}, "inputs": [{inputs}]}}'.encode()


_IMAGE = '{"name": "image", "datatype": "UINT8", "shape": [1, 1, 28, 28], "data": %s}'
_GIB_OF_ZEROS = 1024


@cache
def _raw_deflate_zeros(mib: int) -> bytes:
    """Raw deflate of ``mib`` MiB of zeros, built from one MiB's blocks repeated.

    After a full flush the compressor starts afresh, so every further MiB compresses to the
    same bytes: seconds of compression become one MiB's worth.
    """
    squeezer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    squeezer.compress(bytes(MiB))
    squeezer.flush(zlib.Z_FULL_FLUSH)  # the first block may differ: it has no history
    block = squeezer.compress(bytes(MiB)) + squeezer.flush(zlib.Z_FULL_FLUSH)
    return block * mib + b"\x03\x00"  # a final, empty fixed-Huffman block


def zlib_zeros(mib: int) -> bytes:
    """A zlib stream (with a correct Adler-32) of ``mib`` MiB of zeros."""
    adler = ((mib * MiB) % 65521) << 16 | 1  # zeros leave the low sum at 1
    return b"\x78\xda" + _raw_deflate_zeros(mib) + struct.pack(">I", adler)


def _gzip_bomb() -> bytes:
    crc = 0
    zeros = bytes(MiB)
    for _ in range(_GIB_OF_ZEROS):
        crc = zlib.crc32(zeros, crc)
    head = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    tail = struct.pack("<II", crc, (_GIB_OF_ZEROS * MiB) & 0xFFFFFFFF)
    return head + _raw_deflate_zeros(_GIB_OF_ZEROS) + tail


def _deflate_bomb() -> bytes:
    return zlib_zeros(_GIB_OF_ZEROS)


_CLIENT_ERRORS = frozenset({400, 413, 422})
_TOO_LARGE = frozenset({413})
_BAD = frozenset({400})

ATTACKS: dict[str, Attack] = {
    "pixel-bomb-png-raw": Attack(
        CLASSIFY, "image/png", lambda: png_header(100_000, 100_000), _TOO_LARGE
    ),
    "pixel-bomb-png-multipart": Attack(
        CLASSIFY,
        "multipart/form-data; boundary=bomb",
        lambda: _multipart_image(png_header(100_000, 100_000)),
        _TOO_LARGE,
    ),
    "pixel-bomb-png-base64": Attack(
        CLASSIFY, "application/json", lambda: _json_image(png_header(100_000, 100_000)), _TOO_LARGE
    ),
    "pixel-bomb-bmp": Attack(CLASSIFY, "image/bmp", lambda: bmp_header(60_000, 60_000), _TOO_LARGE),
    # A valid 64x64 image once its rows are read: Pillow stops there, so it may be answered.
    "zlib-bomb-png": Attack(
        CLASSIFY, "image/png", zlib_bomb_png, frozenset({200}) | _CLIENT_ERRORS
    ),
    "progressive-scans-jpeg": Attack(CLASSIFY, "image/jpeg", many_scan_jpeg, _TOO_LARGE),
    "multi-frame-gif": Attack(CLASSIFY, "image/gif", many_frame_gif, frozenset({200})),
    "gzip-bomb-v2": Attack(
        INFER, "application/json", _gzip_bomb, _TOO_LARGE, {"Content-Encoding": "gzip"}
    ),
    "deflate-bomb-v2": Attack(
        INFER, "application/json", _deflate_bomb, _TOO_LARGE, {"Content-Encoding": "deflate"}
    ),
    "deep-json-v2": Attack(
        INFER, "application/json", lambda: _v2(_IMAGE % ("[" * 100_000 + "]" * 100_000)), _BAD
    ),
    "deep-json-v1": Attack(
        CLASSIFY,
        "application/json",
        lambda: b'{"images": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        _CLIENT_ERRORS,
    ),
    "wide-json-v2": Attack(
        INFER,
        "application/json",
        lambda: _v2(_IMAGE % ("[" + "[]," * (5 * MiB) + "[]]")),
        _TOO_LARGE,
    ),
    "wide-json-v1": Attack(
        CLASSIFY,
        "application/json",
        lambda: b'{"images": [' + b"[]," * (5 * MiB) + b"[]]}",
        _TOO_LARGE,
    ),
    "huge-integer-v2-shape": Attack(
        INFER,
        "application/json",
        lambda: _v2('{"name": "image", "datatype": "UINT8", "shape": [%s]}' % ("9" * 5000)),
        _BAD,
    ),
    "nan-parameters-v2": Attack(
        INFER, "application/json", lambda: _v2(_IMAGE % "[0]", '{"p": NaN}'), _BAD
    ),
    "folded-part-headers": Attack(
        CLASSIFY, "multipart/form-data; boundary=bomb", _folded_part_headers, _TOO_LARGE
    ),
}


def chunks(total: int, size: int = MiB) -> Iterator[bytes]:
    """``total`` bytes as a generator, which ``requests`` sends chunked."""
    block = bytes(size)
    sent = 0
    while sent < total:
        piece = block[: min(size, total - sent)]
        sent += len(piece)
        yield piece


def raw_request(url: str, request: bytes, timeout: float = 10.0) -> tuple[int, bytes, bytes]:
    """Send bytes as they are; return the status, the header block and the body."""
    address = urlsplit(url)
    with socket.create_connection((address.hostname, address.port), timeout=timeout) as conn:
        conn.sendall(request)
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
            head, sep, body = received.partition(b"\r\n\r\n")
            if sep and b"content-length:" in head.lower():
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                if len(body) >= length:
                    break
    head, _, body = received.partition(b"\r\n\r\n")
    return int(head.split()[1]), head, body
