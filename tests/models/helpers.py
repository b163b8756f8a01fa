"""Tiny real data for the offline side's tests: sklearn digits, written as IDX or image files."""

from __future__ import annotations

import gzip
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from models.data import ImageSet
from models.sources import load_dataset


def tiny_digits(per_class: int = 30) -> ImageSet:
    """The first ``per_class`` sklearn digits of each class (8x8, light strokes on dark)."""
    full = load_dataset("digits")
    keep = np.concatenate([np.flatnonzero(full.labels == c)[:per_class] for c in range(10)])
    return ImageSet("tiny-digits", full.images[keep], full.labels[keep], full.class_names)


def idx_bytes(array: NDArray[np.uint8]) -> bytes:
    """Encode an unsigned-byte array in the IDX format MNIST uses."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_idx(
    folder: Path, data: ImageSet, *, prefix: str = "train", gz: bool = True
) -> tuple[Path, Path]:
    """Write ``data`` as ``<prefix>-images-idx3-ubyte[.gz]`` and its labels file."""
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    images = folder / f"{prefix}-images-idx3-ubyte{suffix}"
    labels = folder / f"{prefix}-labels-idx1-ubyte{suffix}"
    for path, payload in (
        (images, idx_bytes(data.images[:, 0])),
        (labels, idx_bytes(data.labels.astype(np.uint8))),
    ):
        path.write_bytes(gzip.compress(payload, mtime=0) if gz else payload)
    return images, labels


def write_image_folder(root: Path, data: ImageSet, *, invert: bool = False) -> Path:
    """Write one sub-folder per class, PNG for even and JPEG for odd indices."""
    from PIL import Image

    for i, (image, label) in enumerate(zip(data.images, data.labels, strict=True)):
        folder = root / data.class_names[label]
        folder.mkdir(parents=True, exist_ok=True)
        pixels = 255 - image[0] if invert else image[0]
        suffix = "png" if i % 2 == 0 else "jpg"
        Image.fromarray(pixels).save(folder / f"{i:04d}.{suffix}")
    return root


ROOT = Path(__file__).resolve().parents[2]


def torchrun(module: str, nproc: int, out: Path) -> dict[str, object]:
    """Run ``python -m module OUT`` under torch's own launcher with ``nproc`` gloo processes
    (rendezvous on 127.0.0.1) and return the ``result.json`` its rank 0 wrote to ``OUT``."""
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    command = [
        "nice", "-n", "10", sys.executable, "-m", "torch.distributed.run",
        "--nnodes=1", f"--nproc-per-node={nproc}",
        "--rdzv-backend=c10d", "--rdzv-endpoint=127.0.0.1:0",
        "-m", module, str(out),
    ]  # fmt: skip
    done = subprocess.run(
        command, check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, object] = json.loads((out / "result.json").read_text())
    return result
