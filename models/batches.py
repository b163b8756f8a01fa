"""Shuffled global batches of unlabeled images, each cut into this rank's slice.

Pre-training walks the pool through :class:`Pool`: the images either sit in one tensor on the
device, or stay on disk (a streamed ``folder:`` or ``idx:`` set) and are decoded batch by batch
by ``DataLoader`` workers, so memory does not grow with the data set. Either way every rank
draws the same order from the shared generator and keeps its contiguous slice of each global
batch (:meth:`models.distributed.World.local`), so N processes see exactly the batches one
process sees.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from numpy.typing import NDArray

from models.distributed import World, world
from models.errors import ConfigError


def minibatches(
    n: int, batch_size: int, generator: torch.Generator, *, drop_last: bool = False
) -> Iterator[torch.Tensor]:
    """Yield shuffled index batches covering ``range(n)`` once."""
    order = torch.randperm(n, generator=generator, device=generator.device)
    stop = n - n % batch_size if drop_last and n >= batch_size else n
    for begin in range(0, stop, batch_size):
        yield order[begin : begin + batch_size]


def loader_workers() -> int:
    """DataLoader workers per training process for a streamed set.

    ``HEADSTART_LOADER_WORKERS`` overrides; by default the cores shared among the local ranks,
    at most 4 each.
    """
    raw = os.environ.get("HEADSTART_LOADER_WORKERS")
    if raw is not None:
        try:
            return max(0, int(raw))
        except ValueError:
            raise ConfigError(
                f"HEADSTART_LOADER_WORKERS={raw!r} is not a whole number of workers"
            ) from None
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return max(1, min(4, (os.cpu_count() or 1) // local))


class LazyImages(Protocol):
    """Images read on demand: ``uint8 [C, H, W]`` per index, never all at once."""

    def __len__(self) -> int: ...

    def load(self, index: NDArray[np.int64]) -> NDArray[np.uint8]:
        """Images ``uint8 [len(index), C, H, W]`` in the order of ``index``."""
        ...


@dataclass(frozen=True)
class Batch:
    """This rank's rows of one global batch."""

    images: torch.Tensor
    """``uint8 [local rows, C, H, W]`` on the training device."""
    rows: int
    """Rows in the global batch (what one process would hold)."""
    labels: torch.Tensor | None = None
    """``int64 [local rows]`` on the device, when the pool is labelled (a source task's)."""


class _Reader(torch.utils.data.Dataset[torch.Tensor]):
    """A DataLoader view of lazy images: one item is one whole index batch."""

    def __init__(self, images: LazyImages) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: Any) -> torch.Tensor:
        return torch.from_numpy(self.images.load(np.asarray(index, dtype=np.int64)))


class _Slices(torch.utils.data.Sampler[list[int]]):
    """Index lists the loader hands its workers, computed up front in the main process."""

    def __init__(self, slices: list[NDArray[np.int64]]) -> None:
        self.slices = slices

    def __len__(self) -> int:
        return len(self.slices)

    def __iter__(self) -> Iterator[list[int]]:
        for index in self.slices:
            yield [int(i) for i in index]


class Pool:
    """The pre-training images, in memory (a tensor) or streamed (:class:`LazyImages`).

    A pool may carry labels (a source task's, for supervised pre-training): one per pool row,
    ``classes`` of them. The target's own unlabeled pool never does."""

    def __init__(
        self,
        images: torch.Tensor | LazyImages,
        device: torch.device,
        *,
        workers: int = 0,
        subset: NDArray[np.int64] | None = None,
        labels: torch.Tensor | None = None,
        classes: int = 0,
    ) -> None:
        self.device = device
        self.workers = workers
        self.labels = None if labels is None else labels.to(device)
        self.classes = classes
        if isinstance(images, torch.Tensor):
            self._memory: torch.Tensor | None = images.to(device)
            self._lazy: LazyImages | None = None
            self._subset = np.arange(len(images), dtype=np.int64)
        else:
            self._memory, self._lazy = None, images
            self._subset = (
                np.arange(len(images), dtype=np.int64) if subset is None else np.asarray(subset)
            )
        if self.labels is not None and len(self.labels) != len(self._subset):
            raise ValueError(f"{len(self.labels)} labels for a pool of {len(self._subset)} images")

    def __len__(self) -> int:
        return len(self._subset)

    @property
    def world(self) -> World:
        return world()

    def batches(
        self, batch_size: int, generator: torch.Generator, *, drop_last: bool = False
    ) -> Iterator[Batch]:
        """One shuffled pass: this rank's slice of each global batch of ``batch_size``."""
        # The whole order is drawn before the first batch, as a one-process pass draws it.
        order = list(minibatches(len(self), batch_size, generator, drop_last=drop_last))
        return self._walk(order)

    def in_order(self, batch_size: int = 1000) -> Iterator[Batch]:
        """One pass in index order (for statistics summed over every rank's rows)."""
        index = torch.arange(len(self))
        return self._walk([index[i : i + batch_size] for i in range(0, len(self), batch_size)])

    def _walk(self, order: list[torch.Tensor]) -> Iterator[Batch]:
        w = world()
        if self._memory is not None:
            for idx in order:
                mine = w.local(idx).to(self._memory.device)
                yield Batch(self._memory[mine], len(idx), self._labels_of(mine))
            return
        assert self._lazy is not None
        local = [self._subset[w.local(idx).cpu().numpy()] for idx in order]
        loader = torch.utils.data.DataLoader(
            _Reader(self._lazy),
            batch_size=None,
            sampler=_Slices(local),
            num_workers=self.workers,
            pin_memory=self.device.type == "cuda",
        )
        for idx, images in zip(order, loader, strict=True):
            labels = self._labels_of(w.local(idx))
            yield Batch(images.to(self.device, non_blocking=True), len(idx), labels)

    def _labels_of(self, rows: torch.Tensor) -> torch.Tensor | None:
        return None if self.labels is None else self.labels[rows.to(self.labels.device)]
