"""Read MNIST-format IDX files (plain or gzipped)."""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from models.errors import DataError

_UBYTE = 0x08


def read_idx(path: Path) -> NDArray[np.uint8]:
    """Read an unsigned-byte IDX file into an array of its declared shape."""
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
        raise DataError(f"{path}: cannot be read ({exc})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{path}: not an IDX file (bad magic number)")
    dtype, ndim = raw[2], raw[3]
    if dtype != _UBYTE or ndim < 1:
        raise DataError(f"{path}: unsupported IDX data type 0x{dtype:02x} or rank {ndim}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(shape))
    if len(raw) - header != expected:
        raise DataError(
            f"{path}: IDX header declares {expected} bytes of data, file holds {len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape).copy()


def read_idx_header(path: Path) -> tuple[tuple[int, ...], int]:
    """Shape and data offset of a plain (not gzipped) unsigned-byte IDX file, reading only its
    header; the file's size must match the declared shape."""
    try:
        with path.open("rb") as fh:
            head = fh.read(4)
            if len(head) < 4 or head[0] != 0 or head[1] != 0:
                raise DataError(f"{path}: not an IDX file (bad magic number)")
            dtype, ndim = head[2], head[3]
            if dtype != _UBYTE or ndim < 1:
                raise DataError(f"{path}: unsupported IDX data type 0x{dtype:02x} or rank {ndim}")
            dims = fh.read(4 * ndim)
        size = path.stat().st_size
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc})") from None
    if len(dims) < 4 * ndim:
        raise DataError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", dims)
    header = 4 + 4 * ndim
    expected = int(np.prod(shape))
    if size - header != expected:
        raise DataError(
            f"{path}: IDX header declares {expected} bytes of data, file holds {size - header}"
        )
    return tuple(int(v) for v in shape), header


def idx_pairs(folder: Path) -> list[tuple[Path, Path]]:
    """Find ``*-images-idx3-ubyte[.gz]`` files and their ``*-labels-idx1-ubyte[.gz]`` twins."""
    pairs: list[tuple[Path, Path]] = []
    # train before t10k, so a canonical download keeps its published order
    found = sorted(
        folder.glob("*-images-idx3-ubyte*"), key=lambda p: (not p.name.startswith("train"), p.name)
    )
    for images in found:
        stem = images.name.split("-images-idx3-ubyte")[0]
        suffix = images.name.split("-images-idx3-ubyte")[1]
        if suffix not in ("", ".gz"):
            continue
        candidates = [folder / f"{stem}-labels-idx1-ubyte{s}" for s in (suffix, "", ".gz")]
        labels = next((c for c in candidates if c.is_file()), None)
        if labels is None:
            raise DataError(f"{images}: no matching labels file {candidates[0].name} beside it")
        pairs.append((images, labels))
    return pairs
