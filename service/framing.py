"""Frame a picture the way MNIST's digits were framed, and tell a blank picture from a digit.

MNIST's digits were cropped to their ink, scaled to fit a 20x20 box with their aspect ratio
kept, and placed in the 28x28 image so that their centre of mass sits at its centre. A model
trained on them has never seen a small digit in a corner or a digit filling the frame, so the
service frames every picture the same way before the model sees it, and the training side
frames folder data sets with this same code: the two cannot drift apart.

The steps, on a picture whose polarity already matches the model's:

1. ink strength per pixel (grey level, or its inverse for dark strokes on a light page);
2. a plane fitted to the background and subtracted, so uneven lighting leaves no haze;
3. blank test: too little ink contrast left means no digit, and an empty frame comes back;
4. crop to the bounding box of the pixels with at least :data:`INK_FRACTION` of the ink level;
5. stretch the levels so the strokes reach full strength, as MNIST's do;
6. fit into ``box`` x ``box`` with the aspect ratio kept, anti-aliased;
7. place in the ``height`` x ``width`` frame with the centre of mass at the centre.

Needs numpy and Pillow only (both serving dependencies), never torch.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

MNIST_BOX = 20
"""The side of the square MNIST fitted each digit's ink into (in a 28x28 frame)."""

BLANK_CONTRAST = 40.0
"""Ink contrast (0..255 grey levels, after the background is removed) below which a picture
is blank. Measured with ``python -m benchmarks.realistic_digits --model-repository DIR --count
200 --blank-levels``: blank pages (flat, sensor noise of 3 or 8 grey levels, unevenly lit; PNG
or JPEG) reach 0-12; the realistic test digits of every set, 99 or more (unevenly lit ones)."""

INK_FRACTION = 0.1
"""Pixels with at least this share of the ink level count for the bounding box: low enough
to keep a stroke's anti-aliased edge (as MNIST's crop did), high enough to skip page noise."""

WORKING_SIDE = 512
"""Larger pictures are scaled down to this longest side first: the digit keeps far more than
20 pixels of detail, and the per-pixel work stays bounded for phone photos."""

_STRONG = 0.5  # share of the ink level that certainly is stroke, not edge or noise
_NOISE_SIGMAS = 6.0  # a background pixel of Gaussian noise exceeds this about once in 10^9
_LEVEL_PERCENTILE = 90.0  # of the stroke pixels: "full strength" ink, robust to a few spikes
_SORT_BELOW = 4096  # values: fewer are sorted outright (see _ordered)
_FLAT_RING_SHARE = 0.75  # of each ring strip at the faintest level, for a flat background
_CONTRAST_RANK = 8  # ink contrast is the 8th highest value (see ink_contrast)
_FULL_STRENGTH = 250  # strongest ink of a picture already framed: MNIST's is 254 or 255


@dataclass(frozen=True)
class Framed:
    """The framed picture and whether it held any ink at all."""

    pixels: NDArray[np.uint8]
    """``[H, W]`` or ``[H, W, C]``, the frame's size, background 0 after :func:`frame`'s polarity."""
    blank: bool


def ink_strength(pixels: NDArray[np.uint8], light_strokes: bool) -> NDArray[np.float32]:
    """Per-pixel ink ``[H, W]`` in 0..255: the grey level, inverted for dark strokes."""
    grey = pixels.astype(np.float32)
    if grey.ndim == 3:
        grey = grey.mean(axis=2)
    return grey if light_strokes else 255.0 - grey


def remove_background(ink: NDArray[np.float32]) -> NDArray[np.float32]:
    """``ink`` minus a plane fitted to its background pixels, clipped at zero.

    A plane, not a constant, so that a page lit from one side comes out as flat as a scan.
    A picture whose background is exactly one level (:func:`flat_background`) needs no fit."""
    level = flat_background(ink)
    if level is not None:
        flat: NDArray[np.float32] = ink - np.float32(level)
        return flat
    return _minus_fitted_plane(ink)


def flat_background(ink: NDArray[np.float32]) -> float | None:
    """The background level when it is exactly flat, else ``None``.

    Flat: at least half of all pixels, and at least :data:`_FLAT_RING_SHARE` of each strip of
    the outer ring (as :func:`noise_sigma` reads it), sit at exactly the faintest level, as on
    a digital canvas, a scan with its black level clipped, or MNIST itself. The robust plane
    fit would land on that level too (give or take the faint edges of strokes), and skipping
    it keeps framing cheap for the small clean images most clients send. A stroke may reach
    into the ring, as a tenth of MNIST's own digits do; a page lit unevenly along an edge fills
    a strip, and gets the fit."""
    faintest = ink.min()
    at_faintest = ink == faintest
    if np.count_nonzero(at_faintest) * 2 < ink.size:
        return None
    for strip in _ring(at_faintest):
        if np.count_nonzero(strip) < _FLAT_RING_SHARE * strip.size:
            return None
    return float(faintest)


def _minus_fitted_plane(ink: NDArray[np.float32]) -> NDArray[np.float32]:
    """``ink`` minus a plane fitted robustly: the fit is repeated on the pixels it explains
    (strokes are outliers above it), on a subsample: a few thousand points fix three numbers."""
    h, w = ink.shape
    step = max(1, int(np.sqrt(h * w / 4096)))
    ys, xs = np.arange(0, h, step) / h, np.arange(0, w, step) / w
    values = ink[::step, ::step].ravel().astype(np.float64)
    design = np.empty((values.size, 3))
    design[:, 0] = 1.0
    design[:, 1] = np.repeat(ys, xs.size)
    design[:, 2] = np.tile(xs, ys.size)
    keep = np.ones(values.size, dtype=bool)
    coef = np.array([_percentile(values, 50.0), 0.0, 0.0])
    for _ in range(3):
        if np.count_nonzero(keep) < 3:
            break
        kept = design[keep]
        # The normal equations: three columns of 1, y and x are far from collinear.
        coef = np.linalg.solve(kept.T @ kept, kept.T @ values[keep])
        residual = values - design @ coef
        # Background residuals are noise around zero; strokes sit far above.
        spread = _percentile(np.abs(residual[keep]), 50.0) + 1.0
        keep = residual < 3.0 * spread
    # The plane as a column plus a row, subtracted in place: no full-size float64 plane.
    rows = (coef[0] + coef[1] * (np.arange(h) / h)).astype(np.float32)
    cols = (coef[2] * (np.arange(w) / w)).astype(np.float32)
    flat: NDArray[np.float32] = ink - rows[:, None]
    flat -= cols[None, :]
    np.maximum(flat, 0.0, out=flat)
    return flat


def noise_sigma(ink: NDArray[np.float32]) -> float:
    """The background's noise (standard deviation) in ink with the background removed.

    Measured on the picture's outer ring (1/14 of each side, as the polarity test reads it),
    which is background. Clipped at zero, background noise is half zeros and half the upper
    half of a normal distribution, whose 75th percentile is 0.674 sigma."""
    edges = np.concatenate([part.ravel() for part in _ring(ink)])
    if not edges.any():  # a flat background, taken as it is: no noise to estimate
        return 0.0
    return _percentile(edges, 75.0) / 0.674


def _percentile(values: NDArray[np.floating[Any]], q: float) -> float:
    """``np.percentile(values, q)`` (its default, linear method) on a 1-D array, without the
    generic machinery that costs more than the selection itself on a few hundred values."""
    position = q / 100.0 * (values.size - 1)
    below = int(position)
    above = min(below + 1, values.size - 1)
    picked = _ordered(values, (below, above))
    low, high = float(picked[below]), float(picked[above])
    share = position - below
    if share >= 0.5:  # as numpy interpolates: from the nearer end
        return high - (high - low) * (1.0 - share)
    return low + (high - low) * share


def _ordered(values: NDArray[np.floating[Any]], kth: tuple[int, ...]) -> NDArray[np.floating[Any]]:
    """``values`` with the ``kth`` places holding what a sort would put there.

    A small picture is sorted outright: selection is linear in theory, but numpy's slows
    tenfold on the hundreds of equal background values of a digit, past a whole sort's cost."""
    if values.size <= _SORT_BELOW:
        return np.sort(values)
    return np.partition(values, kth)


def _ring(ink: NDArray[np.float32]) -> tuple[NDArray[np.float32], ...]:
    """The picture's outer ring, 1/14 of each side wide: top, bottom, left and right strips."""
    ring = max(1, min(ink.shape) // 14)
    return ink[:ring], ink[-ring:], ink[:, :ring], ink[:, -ring:]


def ink_contrast(ink: NDArray[np.float32]) -> float:
    """How far the strongest ink rises above the background: the 8th highest value.

    The 8th, not the highest, so that a few noisy pixels (JPEG ringing, dust) are not ink;
    on pictures larger than MNIST's, of 2x2 averages, which halve sensor noise and leave a
    stroke wider than a pixel as strong as it was."""
    h, w = ink.shape
    if min(h, w) >= 56:
        h, w = h - h % 2, w - w % 2
        pairs = ink[0:h:2, 0:w:2] + ink[1:h:2, 0:w:2] + ink[0:h:2, 1:w:2] + ink[1:h:2, 1:w:2]
        ink = pairs * np.float32(0.25)
    flat = ink.ravel()
    if flat.size > _SORT_BELOW:
        # Only the values over half the strongest can be the 8th highest, if 8 are: on a
        # page, a few strokes' worth instead of every pixel to select among.
        strong = flat[flat >= flat.max() * np.float32(0.5)]
        if strong.size >= _CONTRAST_RANK:
            flat = strong
    k = min(_CONTRAST_RANK, flat.size)
    return float(_ordered(flat, (flat.size - k,))[flat.size - k])


def measure_contrast(pixels: NDArray[np.uint8], light_strokes: bool = True) -> float:
    """The ink contrast :func:`frame` compares with :data:`BLANK_CONTRAST`, for ``[h, w(, C)]``."""
    pixels = _working_size(pixels)
    return ink_contrast(remove_background(ink_strength(pixels, light_strokes)))


def is_blank(pixels: NDArray[np.uint8], light_strokes: bool = True) -> bool:
    """Whether a picture (``[H, W]``, ``[H, W, C]`` or ``[C, H, W]`` with C in 1, 3) holds no ink."""
    if pixels.ndim == 3 and pixels.shape[0] in (1, 3) and pixels.shape[2] not in (1, 3):
        pixels = np.moveaxis(pixels, 0, 2)
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    return ink_contrast(remove_background(ink_strength(pixels, light_strokes))) < BLANK_CONTRAST


def frame(
    pixels: NDArray[np.uint8],
    height: int,
    width: int,
    *,
    light_strokes: bool = True,
    box: int = MNIST_BOX,
) -> Framed:
    """Frame ``pixels`` (``[h, w]`` or ``[h, w, C]``, any size) into ``height`` x ``width``.

    ``light_strokes`` says the polarity the picture already has (MNIST's light strokes on
    black by default); the result keeps it, with the background at full strength (0 for
    light strokes, 255 for dark). ``box`` is the side the ink is fitted into."""
    pixels = _working_size(pixels)
    ink = ink_strength(pixels, light_strokes)
    background = flat_background(ink)
    # An exactly flat background has no noise; a fitted one's is read from the ring below.
    ink = _minus_fitted_plane(ink) if background is None else ink - np.float32(background)
    shape = (height, width, *pixels.shape[2:])
    contrast = ink_contrast(ink)  # as measure_contrast, keeping the ink for what follows
    if contrast < BLANK_CONTRAST:
        return Framed(np.full(shape, 0 if light_strokes else 255, np.uint8), blank=True)
    strong = ink >= _STRONG * contrast
    level = _percentile(ink[strong], _LEVEL_PERCENTILE)
    # Sensor noise must not stretch the box across the page: stay 6 sigmas above it.
    noise = 0.0 if background is not None else noise_sigma(ink)
    floor = min(_NOISE_SIGMAS * noise, _STRONG * level)
    top, bottom, left, right = _bounding_box(
        _without_specks(ink >= max(INK_FRACTION * level, floor))
    )
    strength = np.clip(ink[top:bottom, left:right] * (255.0 / level), 0.0, 255.0)
    if pixels.ndim == 3:
        # Colour pictures keep their hue: each channel is blended from background to stroke.
        crop = pixels[top:bottom, left:right].astype(np.float32)
        share = (strength / 255.0)[:, :, None]
        paper = 0.0 if light_strokes else 255.0
        patch = np.rint(paper + share * (crop - paper)).clip(0, 255).astype(np.uint8)
    else:
        patch = np.rint(strength).astype(np.uint8)  # ink strength: light on dark for now
    fitted = _fit(patch, box)
    placed = _place_by_mass(fitted, height, width, light_strokes or pixels.ndim == 2)
    if pixels.ndim == 2 and not light_strokes:
        placed = 255 - placed
    return Framed(placed, blank=False)


def already_framed(pixels: NDArray[np.uint8], box: int = MNIST_BOX) -> bool:
    """Whether a grey picture of light strokes on black is framed as MNIST's digits are, so
    that :func:`frame` would only trim its faintest edge and resample it: the background
    exactly black, the ink ``box`` pixels (or one fewer) across on its longer side, its
    centre of mass within half a pixel of the picture's centre, its strongest ink at full
    strength (250 or more) and enough of it (:data:`BLANK_CONTRAST` or more) for a digit.

    Every one of MNIST's own digits is; a few numpy reductions tell, where framing takes
    dozens. The caller checks the picture is the frame's size."""
    h, w = pixels.shape
    ink = pixels.astype(np.float32)  # sums of moments stay exact integers in float32
    rows, cols = ink @ _moments(w), ink.T @ _moments(h)  # [sum, sum of x * value] per row...
    inked_rows, inked_cols = rows[:, 0].nonzero()[0], cols[:, 0].nonzero()[0]
    if inked_rows.size == 0:
        return False
    extent = max(inked_rows[-1] - inked_rows[0], inked_cols[-1] - inked_cols[0]) + 1
    if not box - 1 <= extent <= box or pixels.max() < _FULL_STRENGTH:
        return False
    (total, x_moment), (y_moment, _) = (_moments(h).T @ rows).tolist()
    cy, cx = y_moment / total, x_moment / total
    return bool(
        abs(cy - h / 2) <= 0.5
        and abs(cx - w / 2) <= 0.5
        and np.count_nonzero(pixels >= math.ceil(BLANK_CONTRAST)) >= _CONTRAST_RANK
    )


@functools.cache
def _moments(size: int) -> NDArray[np.float32]:
    """``[size, 2]``: ones, and each place's index; a picture times it sums and weighs its lines."""
    return np.stack([np.ones(size), np.arange(size)], axis=1).astype(np.float32)


def _working_size(pixels: NDArray[np.uint8]) -> NDArray[np.uint8]:
    h, w = pixels.shape[:2]
    if max(h, w) <= WORKING_SIDE:
        return pixels
    scale = WORKING_SIDE / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    # BOX averages every source pixel: a thin stroke fades a little but never vanishes.
    shrunk = Image.fromarray(pixels).resize(size, Image.Resampling.BOX)
    return np.asarray(shrunk, dtype=np.uint8)


def _without_specks(mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """``mask`` less the pixels none of whose eight neighbours is set.

    A stroke's pixels always have stroke beside them; a lone pixel above the threshold is
    noise. Sensor noise on a real page has heavier tails than a Gaussian's, and a page has
    hundreds of thousands of pixels: on a faint (unevenly lit) page a few of them pass the
    6-sigma floor and would stretch the box across the page. With nothing left (a single
    dot), the mask stays as it was."""
    h, w = mask.shape
    padded = np.zeros((h + 2, w + 2), dtype=np.uint8)
    padded[1:-1, 1:-1] = mask
    # The eight neighbours of every pixel, as sums of shifted rows and then of shifted columns.
    rows = padded[:-2] + padded[1:-1] + padded[2:]
    neighbours = rows[:, :-2] + rows[:, 1:-1] + rows[:, 2:] - padded[1:-1, 1:-1]
    kept: NDArray[np.bool_] = mask & (neighbours > 0)
    return kept if kept.any() else mask


def _bounding_box(mask: NDArray[np.bool_]) -> tuple[int, int, int, int]:
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _fit(patch: NDArray[np.uint8], box: int) -> NDArray[np.uint8]:
    """Scale so the longer side is ``box``, aspect ratio kept, anti-aliased like MNIST's."""
    h, w = patch.shape[:2]
    scale = box / max(h, w)
    size = (max(1, min(box, round(w * scale))), max(1, min(box, round(h * scale))))
    if size == (w, h):
        return patch
    return np.asarray(Image.fromarray(patch).resize(size, Image.Resampling.LANCZOS), dtype=np.uint8)


def _place_by_mass(
    patch: NDArray[np.uint8], height: int, width: int, dark_background: bool
) -> NDArray[np.uint8]:
    """Put ``patch`` into a blank frame so its centre of mass lands on the frame's centre."""
    ink = patch.astype(np.float64)
    if ink.ndim == 3:
        ink = ink.mean(axis=2)
    if not dark_background:
        ink = 255.0 - ink
    total = float(ink.sum())
    h, w = patch.shape[:2]
    cy = float((ink.sum(axis=1) * np.arange(h)).sum() / total) if total else (h - 1) / 2
    cx = float((ink.sum(axis=0) * np.arange(w)).sum() / total) if total else (w - 1) / 2
    # MNIST's digits have their centre of mass at pixel (14, 14) of 28x28: (h / 2, w / 2).
    top = min(max(round(height / 2 - cy), 0), max(height - h, 0))
    left = min(max(round(width / 2 - cx), 0), max(width - w, 0))
    canvas = np.full((height, width, *patch.shape[2:]), 0 if dark_background else 255, np.uint8)
    part = patch[: height - top, : width - left]
    canvas[top : top + part.shape[0], left : left + part.shape[1]] = part
    return canvas
