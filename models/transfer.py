"""Pre-training images from another data set, brought to the target's input and kept apart
from the target's held-out images.

``ExperimentConfig.pretrain_dataset`` names any spec :mod:`models.sources` reads. Its images
are conformed to what the target's network takes (:func:`conform`): channels, polarity and
size, framed the MNIST way (by the service's own :mod:`service.framing`) when the target's
images are MNIST-framed and the source's are not, so scikit-learn's 8x8 digits become 28x28
digits that look like MNIST's. No image of the target's test or validation split reaches
pre-training (:class:`Twins`), whether the source holds it by origin (a class subset of
the same set, or the set itself) or pixel for pixel (a copy read another way): the same set
as source leaves exactly the target's unlabeled pool.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from models.data import ImageSet, Splits
from models.errors import ConfigError
from models.sources import OnDemandImages, load_dataset
from service.framing import frame


@dataclass(frozen=True)
class Target:
    """The input a network takes: what source images must be brought to."""

    channels: int
    height: int
    width: int
    polarity: str
    framed: bool
    """Whether the target's images are MNIST-framed (and so the source's must be too)."""

    @classmethod
    def of(cls, data: ImageSet) -> Target:
        c, h, w = data.shape
        return cls(c, h, w, data.polarity, data.framing is not None)


def conform(images: NDArray[np.uint8], source: ImageSet, target: Target) -> NDArray[np.uint8]:
    """``uint8 [N, C, H, W]`` images of ``source`` as ``target``'s network takes them."""
    if len(images) == 0:
        return np.zeros((0, target.channels, target.height, target.width), np.uint8)
    light = source.polarity == "light_on_dark"
    size_differs = images.shape[2:] != (target.height, target.width)
    if target.framed and source.framing is None:
        out = np.stack([_framed(image, target, light) for image in images])
    elif size_differs:
        out = np.stack([_resized(image, target) for image in images])
    else:
        out = np.asarray(images, dtype=np.uint8)
    if out.shape[1] != target.channels:
        out = _channels(out, target.channels)
    if source.polarity != target.polarity:
        out = 255 - out
    return np.ascontiguousarray(out, dtype=np.uint8)


def _framed(image: NDArray[np.uint8], target: Target, light: bool) -> NDArray[np.uint8]:
    """One ``[C, h, w]`` image framed into the target's size; in the source's polarity."""
    pixels = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
    framed = frame(pixels, target.height, target.width, light_strokes=light).pixels
    return framed[None] if framed.ndim == 2 else framed.transpose(2, 0, 1)


def _resized(image: NDArray[np.uint8], target: Target) -> NDArray[np.uint8]:
    size = (target.width, target.height)
    planes = [
        np.asarray(Image.fromarray(plane).resize(size, Image.Resampling.LANCZOS), np.uint8)
        for plane in image
    ]
    return np.stack(planes)


def _channels(images: NDArray[np.uint8], channels: int) -> NDArray[np.uint8]:
    if images.shape[1] == 1:
        return np.repeat(images, channels, axis=1)
    grey = np.rint(images.astype(np.float32).mean(axis=1, keepdims=True))
    return grey.astype(np.uint8) if channels == 1 else np.repeat(grey, channels, 1).astype(np.uint8)


class ConformedImages(OnDemandImages):
    """A streamed source's images, conformed to the target batch by batch as they are read."""

    def __init__(self, source: ImageSet, rows: NDArray[np.int64], target: Target) -> None:
        self.source, self.rows, self.target = source, rows, target
        self._images: Any = source.images

    @property
    def shape(self) -> tuple[int, int, int, int]:
        t = self.target
        return (len(self.rows), t.channels, t.height, t.width)

    def load(self, index: NDArray[np.int64]) -> NDArray[np.uint8]:
        picked = np.asarray(self._images[self.rows[np.asarray(index, dtype=np.int64)]])
        return conform(picked.astype(np.uint8), self.source, self.target)


@dataclass(frozen=True)
class Twins:
    """Which source images are images of the target, by origin (a class subset of the same
    set, or the set itself) or pixel for pixel (a copy read another way, such as ``idx:``
    files written from it: names alone miss it)."""

    of_held: NDArray[np.bool_]
    """Per source image: one of the target's test or validation images."""
    of_target: NDArray[np.bool_] | None
    """Per source image: one of the target's images, whichever split; ``None`` unless asked
    for, since it costs hashing the whole target (a streamed one is decoded for it)."""

    @classmethod
    def find(cls, source: ImageSet, target: ImageSet, splits: Splits, *, whole: bool) -> Twins:
        """Each set is read once; ``whole``: compare with every target image, not only the
        held-out ones."""
        held = np.concatenate([splits.test, splits.val])
        among = np.arange(len(target), dtype=np.int64) if whole else held
        of_held = np.zeros(len(source), dtype=bool)
        of_among = np.zeros(len(source), dtype=bool)
        source_base, source_index = source.origin()
        target_base, target_index = target.origin()
        if source_base == target_base:
            of_held |= np.isin(source_index, target_index[held])
            of_among |= np.isin(source_index, target_index[among])
        # Only images of the same shape can be equal, so other sources cost no hashing.
        if len(source) and source.shape == target.shape:
            ours = _digests(target, among)
            held_here = np.isin(among, held)
            known, known_held = set(ours), {d for d, h in zip(ours, held_here, strict=True) if h}
            theirs = _digests(source, np.arange(len(source), dtype=np.int64))
            of_held |= np.array([d in known_held for d in theirs], dtype=bool)
            of_among |= np.array([d in known for d in theirs], dtype=bool)
        return cls(of_held, of_among if whole else None)


def _digests(images: ImageSet, rows: NDArray[np.int64], chunk: int = 4096) -> list[bytes]:
    """A short hash of each of ``rows``' pixels; a streamed set is read a chunk at a time."""
    found: list[bytes] = []
    for start in range(0, len(rows), chunk):
        pixels = np.asarray(images.images[rows[start : start + chunk]], dtype=np.uint8)
        found.extend(hashlib.blake2b(p.tobytes(), digest_size=16).digest() for p in pixels)
    return found


def pretraining_set(spec: str, target: ImageSet, splits: Splits, *, labelled: bool) -> ImageSet:
    """The images of ``spec`` that pre-training may see, conformed to ``target``'s input.

    ``labelled``: the caller trains on the source's labels, so it must share no image with the
    target at all; the target's labels beyond its labeled draw would leak in otherwise."""
    source = load_dataset(spec)
    twins = Twins.find(source, target, splits, whole=labelled)
    rows = np.flatnonzero(~twins.of_held).astype(np.int64)
    if len(rows) == 0:
        raise ConfigError(f"pre-training data set {spec!r} has no image outside the test split")
    if twins.of_target is not None and twins.of_target[rows].any():
        raise ConfigError(
            f"supervised pre-training on {spec!r} would train on labels of {target.name!r}'s "
            "own images; choose a source that shares no image with the target (another data "
            "set, or other classes such as mnist-5k:0-4 for mnist-5k:5-9)"
        )
    shape = Target.of(target)
    if source.streamed:
        images: Any = ConformedImages(source, rows, shape)
    else:
        images = conform(np.asarray(source.images[rows], dtype=np.uint8), source, shape)
    base, index = source.origin()
    return replace(
        source,
        images=images,
        labels=source.labels[rows],
        polarity=target.polarity,
        framing=target.framing,  # brought to the target's input, framing included
        base=base,
        base_index=index[rows],
    )
