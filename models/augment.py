"""Batched random image transformations, drawn from an explicit generator for reproducibility."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from models.distributed import world


def _rows(n: int, global_rows: int | None) -> tuple[int, slice]:
    """How many rows to draw random numbers for, and which of them are this batch's.

    In data-parallel training a rank holds a slice of the global batch; it draws for the
    whole global batch and keeps its slice, so every image gets the numbers it would get in
    one process.
    """
    if global_rows is None:
        return n, slice(0, n)
    start, stop = world().part(global_rows)
    return global_rows, slice(start, stop)


def _uniform(
    generator: torch.Generator, rows: int, mine: slice, low: float = 0.0, high: float = 1.0
) -> torch.Tensor:
    """One uniform number in ``[low, high)`` per row of the global batch; this rank's rows."""
    draw = torch.rand(rows, generator=generator, device=generator.device)
    return (low + (high - low) * draw)[mine]


def random_affine(
    x: torch.Tensor,
    generator: torch.Generator,
    *,
    max_shift: float = 2.0,
    max_degrees: float = 0.0,
    scale: tuple[float, float] = (1.0, 1.0),
    global_rows: int | None = None,
) -> torch.Tensor:
    """Shift (pixels), rotate (degrees) and scale each image of ``[N, C, H, W]`` independently.

    ``global_rows``: ``x`` is this rank's slice of a global batch of that many images.
    """
    _, _, h, w = x.shape
    n, mine = _rows(x.shape[0], global_rows)
    angle = _uniform(generator, n, mine, -max_degrees, max_degrees) * (math.pi / 180)
    zoom = _uniform(generator, n, mine, *scale)
    # affine_grid works in [-1, 1] coordinates: a shift of s pixels is 2s/size.
    tx = _uniform(generator, n, mine, -max_shift, max_shift) * (2 / w)
    ty = _uniform(generator, n, mine, -max_shift, max_shift) * (2 / h)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack(
        [torch.stack([cos, -sin, tx], dim=1), torch.stack([sin, cos, ty], dim=1)], dim=1
    ).to(x.device, x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="zeros", align_corners=False)


def mask_noise(
    x: torch.Tensor, generator: torch.Generator, rate: float, *, global_rows: int | None = None
) -> torch.Tensor:
    """Zero each input value with probability ``rate`` (the denoising autoencoders' corruption)."""
    if rate <= 0:
        return x
    n, mine = _rows(x.shape[0], global_rows)
    draw = torch.rand((n, *x.shape[1:]), generator=generator, device=generator.device)
    keep = draw[mine] >= rate
    return x * keep.to(x.device, x.dtype)


def random_erase(
    x: torch.Tensor,
    generator: torch.Generator,
    *,
    size: float = 0.35,
    p: float = 0.5,
    global_rows: int | None = None,
) -> torch.Tensor:
    """Blank one random square of side ``size * H`` in each image with probability ``p``."""
    _, _, h, w = x.shape
    n, mine = _rows(x.shape[0], global_rows)
    side_h, side_w = max(1, round(h * size)), max(1, round(w * size))
    dev = generator.device
    top = torch.randint(0, h - side_h + 1, (n,), generator=generator, device=dev)[mine]
    left = torch.randint(0, w - side_w + 1, (n,), generator=generator, device=dev)[mine]
    apply = (torch.rand(n, generator=generator, device=dev) < p)[mine]
    rows = torch.arange(h, device=dev)[None, :]
    cols = torch.arange(w, device=dev)[None, :]
    in_rows = (rows >= top[:, None]) & (rows < top[:, None] + side_h)  # [N, H]
    in_cols = (cols >= left[:, None]) & (cols < left[:, None] + side_w)  # [N, W]
    hole = in_rows[:, :, None] & in_cols[:, None, :] & apply[:, None, None]  # [N, H, W]
    return x.masked_fill(hole[:, None].to(x.device), 0.0)


def random_stroke_width(
    x: torch.Tensor,
    generator: torch.Generator,
    *,
    p: float = 0.5,
    global_rows: int | None = None,
) -> torch.Tensor:
    """Thicken or thin the strokes of each image of light-on-dark ``[N, C, H, W]`` with
    probability ``p`` (half each), by a random fraction of a 3x3 dilation or erosion.

    People's pens and cameras draw strokes wider or narrower than the data set's; a model
    that has seen both reads them alike.
    """
    if p <= 0:
        return x
    n, mine = _rows(x.shape[0], global_rows)
    pick = _uniform(generator, n, mine).to(x.device)
    amount = _uniform(generator, n, mine).to(x.device, x.dtype)
    dilated = F.max_pool2d(x, 3, stride=1, padding=1)
    eroded = -F.max_pool2d(-x, 3, stride=1, padding=1)
    thicker = (pick < p / 2)[:, None, None, None]
    thinner = ((pick >= p / 2) & (pick < p))[:, None, None, None]
    target = torch.where(thicker, dilated, torch.where(thinner, eroded, x))
    return x + amount[:, None, None, None] * (target - x)


def random_contrast(
    x: torch.Tensor,
    generator: torch.Generator,
    *,
    low: float = 0.6,
    global_rows: int | None = None,
) -> torch.Tensor:
    """Scale each image's intensities by a random factor in ``[low, 1]`` times a random
    left-to-right or top-to-bottom ramp, as uneven lighting and faint ink do."""
    if low >= 1:
        return x
    n, mine = _rows(x.shape[0], global_rows)
    dev = generator.device
    _, _, h, w = x.shape
    start = _uniform(generator, n, mine, low, 1.0)
    end = _uniform(generator, n, mine, low, 1.0)
    across = _uniform(generator, n, mine) < 0.5
    steps_w = torch.linspace(0, 1, w, device=dev)[None, None, :]
    steps_h = torch.linspace(0, 1, h, device=dev)[None, :, None]
    steps = torch.where(across[:, None, None], steps_w, steps_h)  # [N, H, W]
    ramp = start[:, None, None] + (end - start)[:, None, None] * steps
    return x * ramp[:, None].to(x.device, x.dtype)
