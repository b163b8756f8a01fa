"""Image sets and their deterministic, stratified splits.

Every source is loaded into one :class:`ImageSet` (``uint8 [N, C, H, W]`` images, integer
labels, class names). :func:`make_splits` then cuts it, per class and from a split seed, into a
held-out test split, a validation split and the unlabeled pool; the labeled training set is
``labels_per_class`` images per class drawn from the pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from models.errors import DataError
from service.manifest import Framing

Polarity = str  # "light_on_dark" | "dark_on_light", as in service.manifest


class ImageArray(Protocol):
    """What an image set's images must offer: an array, or one that reads from disk on demand."""

    @property
    def shape(self) -> tuple[int, ...]: ...

    @property
    def ndim(self) -> int: ...

    @property
    def dtype(self) -> np.dtype[Any]: ...

    def __len__(self) -> int: ...

    def __getitem__(self, index: Any) -> Any: ...


@dataclass(frozen=True)
class ImageSet:
    """Images ``uint8 [N, C, H, W]`` with labels ``int64 [N]`` in ``range(len(class_names))``."""

    name: str
    images: NDArray[np.uint8] | ImageArray
    """In memory, or (a ``folder:`` set) decoded only when indexed, batch by batch."""
    labels: NDArray[np.int64]
    class_names: tuple[str, ...]
    polarity: Polarity = "light_on_dark"
    framing: Framing | None = None
    """How the images were framed (MNIST's ink box and centre of mass), recorded in the
    manifest so the service frames what it is sent the same way; ``None``: not framed."""
    base: str = ""
    """The data set these images were taken from (a class subset's whole set); "" means
    ``name``. Two sets with the same base may share images."""
    base_index: NDArray[np.int64] | None = None
    """Each image's index in ``base``; ``None`` means ``range(len(self))``."""

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.images.dtype != np.uint8:
            raise DataError(f"{self.name}: images must be uint8 [N, C, H, W]")
        if self.labels.shape != (self.images.shape[0],):
            raise DataError(f"{self.name}: {self.labels.shape[0]} labels for {len(self)} images")
        if len(self.class_names) < 2:
            raise DataError(f"{self.name}: needs at least 2 classes, found {len(self.class_names)}")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def streamed(self) -> bool:
        """Whether the pixels stay on disk until a batch asks for them."""
        return not isinstance(self.images, np.ndarray)

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(channels, height, width)`` of one image."""
        _, c, h, w = self.images.shape
        return int(c), int(h), int(w)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def origin(self) -> tuple[str, NDArray[np.int64]]:
        """The base data set's name and each image's index in it."""
        index = np.arange(len(self), dtype=np.int64) if self.base_index is None else self.base_index
        return self.base or self.name, index


@dataclass(frozen=True)
class SplitConfig:
    """How an image set is cut; fractions are per class, so every split is stratified."""

    split_seed: int = 0
    test_fraction: float = 0.2
    val_fraction: float = 0.1

    def __post_init__(self) -> None:
        if self.split_seed < 0:
            raise DataError(f"split seed must be a non-negative integer, got {self.split_seed}")
        if not (0 < self.test_fraction < 1 and 0 < self.val_fraction < 1):
            raise DataError("test and validation fractions must lie in (0, 1)")
        if self.test_fraction + self.val_fraction >= 1:
            raise DataError("test and validation fractions leave no unlabeled pool")


@dataclass(frozen=True)
class Splits:
    """Index arrays into one :class:`ImageSet`; ``pool`` holds every non-test, non-val image."""

    test: NDArray[np.int64]
    val: NDArray[np.int64]
    pool: NDArray[np.int64]

    def labeled(self, data: ImageSet, labels_per_class: int, seed: int) -> NDArray[np.int64]:
        """Draw ``labels_per_class`` pool images per class (deterministic in ``seed``)."""
        if labels_per_class < 1:
            raise DataError(f"--labels-per-class must be at least 1, got {labels_per_class}")
        rng = np.random.default_rng([seed, 7919])
        chosen: list[NDArray[np.int64]] = []
        pool_labels = data.labels[self.pool]
        for cls in range(data.num_classes):
            members = self.pool[pool_labels == cls]
            if labels_per_class > len(members):
                raise DataError(
                    f"--labels-per-class {labels_per_class} is larger than the unlabeled pool "
                    f"of class {data.class_names[cls]!r} ({len(members)} images)"
                )
            chosen.append(rng.permutation(members)[:labels_per_class])
        return np.sort(np.concatenate(chosen))


def make_splits(data: ImageSet, config: SplitConfig) -> Splits:
    """Cut ``data`` per class into test, validation and pool, deterministically in the seed."""
    rng = np.random.default_rng([config.split_seed, 104729])
    test: list[NDArray[np.int64]] = []
    val: list[NDArray[np.int64]] = []
    pool: list[NDArray[np.int64]] = []
    for cls, name in enumerate(data.class_names):
        members = np.flatnonzero(data.labels == cls).astype(np.int64)
        n_test = round(len(members) * config.test_fraction)
        n_val = round(len(members) * config.val_fraction)
        if n_test < 1 or n_val < 1 or len(members) - n_test - n_val < 1:
            raise DataError(
                f"{data.name}: class {name!r} has {len(members)} images, too few to split "
                "into test, validation and unlabeled pool"
            )
        members = rng.permutation(members)
        test.append(members[:n_test])
        val.append(members[n_test : n_test + n_val])
        pool.append(members[n_test + n_val :])
    return Splits(
        test=np.sort(np.concatenate(test)),
        val=np.sort(np.concatenate(val)),
        pool=np.sort(np.concatenate(pool)),
    )
