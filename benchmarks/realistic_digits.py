"""Accuracy on digits as people send them: ``python -m benchmarks.realistic_digits``.

Takes the held-out test split of mnist-5k (the split the manifests' test accuracy comes
from), turns every digit into realistic image files — small and off-centre on a large light
page, slightly rotated, unevenly lit, JPEG-compressed, with thicker or thinner strokes, or
drawn with a pen on a pad — and classifies them through the service's own decoding (and
framing) and the repository's ONNX models, in-process. Each set is reported next to the
clean test images, with framing as the manifest records it (``auto``) and without
(``none``): the service before and after framing.

``--blank-levels`` instead prints the ink contrast that blank pages and real digits reach,
which is how :data:`service.framing.BLANK_CONTRAST` was chosen.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageFilter

from service.decode import DecodeOptions, FramingChoice, border_brightness, decode_batch
from service.framing import BLANK_CONTRAST, measure_contrast
from service.manifest import InputSpec
from service.runtime import LoadedVariant, ModelStore

PAGE = (800, 600)
"""A light page the size of a small scan or screenshot, in pixels (width, height)."""
PAD = 280
"""The web page's drawing pad, in pixels."""

Render = Callable[[NDArray[np.uint8], np.random.Generator], bytes]


@dataclass(frozen=True)
class Look:
    """How a digit is placed on its page and drawn."""

    rotate: float = 0.0
    """Largest rotation either way, in degrees."""
    lighting: float = 0.0
    """How much darker the page gets from one side to the other (0: evenly lit)."""
    stroke: int = 0
    """Pixels of pen added (>0) or taken away (<0) around every stroke."""
    jpeg: bool = False
    """Save as JPEG at quality 60-80 instead of PNG."""


def _ink(
    digit: NDArray[np.uint8], side: int, look: Look, rng: np.random.Generator
) -> NDArray[np.float64]:
    """The digit's ink (0..1) scaled to ``side`` pixels, rotated, strokes thickened or thinned."""
    picture = Image.fromarray(digit).resize((side, side), Image.Resampling.BICUBIC)
    if look.stroke:
        size = 2 * abs(look.stroke) + 1
        kind = ImageFilter.MaxFilter if look.stroke > 0 else ImageFilter.MinFilter
        picture = picture.filter(kind(size))
    if look.rotate:
        angle = float(rng.uniform(-look.rotate, look.rotate))
        picture = picture.rotate(angle, Image.Resampling.BICUBIC)
    return np.asarray(picture, dtype=np.float64) / 255.0


def on_page(look: Look) -> Render:
    """A dark digit 80-220 pixels tall, anywhere on a light 800x600 page."""

    def render(digit: NDArray[np.uint8], rng: np.random.Generator) -> bytes:
        side = int(rng.integers(80, 221))
        ink = _ink(digit, side, look, rng)
        width, height = PAGE
        paper = float(rng.uniform(215, 245))
        pen = float(rng.uniform(15, 60))
        page = np.full((height, width), paper)
        top, left = int(rng.integers(0, height - side)), int(rng.integers(0, width - side))
        page[top : top + side, left : left + side] -= (paper - pen) * ink
        if look.lighting:
            angle = float(rng.uniform(0, 2 * np.pi))
            ys, xs = np.mgrid[0:height, 0:width]
            ramp = np.cos(angle) * xs / width + np.sin(angle) * ys / height
            ramp = (ramp - ramp.min()) / (ramp.max() - ramp.min())
            page *= 1.0 - look.lighting * ramp
        page += rng.normal(0.0, 3.0, page.shape)
        grey = page.clip(0, 255).astype(np.uint8)
        # A slightly warm paper, as a phone or scanner gives it.
        rgb = np.stack([grey, grey, (grey * 0.96).astype(np.uint8)], axis=2)
        return _encode(Image.fromarray(rgb), look, rng)

    return render


def drawn(digit: NDArray[np.uint8], rng: np.random.Generator) -> bytes:
    """Hard-edged pen strokes on the white drawing pad, anywhere from small in a corner to full."""
    side = int(rng.integers(70, PAD + 1))
    pen = Look(stroke=int(rng.integers(0, 3)))
    ink = _ink(digit, side, pen, rng) > 0.45
    pad = np.full((PAD, PAD), 255, np.uint8)
    top, left = (int(rng.integers(0, PAD - side + 1)) for _ in range(2))
    pad[top : top + side, left : left + side][ink] = 0
    # The page's canvas is transparent where nothing was drawn: a PNG with alpha.
    rgba = np.zeros((PAD, PAD, 4), np.uint8)
    rgba[:, :, 3] = 255 - pad
    return _encode(Image.fromarray(rgba, "RGBA"), Look(), rng)


def clean(digit: NDArray[np.uint8], rng: np.random.Generator) -> bytes:
    """The test image itself, as a 28x28 PNG."""
    return _encode(Image.fromarray(digit), Look(), rng)


def _encode(image: Image.Image, look: Look, rng: np.random.Generator) -> bytes:
    out = io.BytesIO()
    if look.jpeg:
        image.convert("RGB").save(out, "JPEG", quality=int(rng.integers(60, 81)))
    else:
        image.save(out, "PNG", compress_level=1)  # a screenshot tool's speed, not an optimiser's
    return out.getvalue()


SETS: dict[str, Render] = {
    "clean test images (28x28)": clean,
    "small, off-centre on an 800x600 page": on_page(Look()),
    "... rotated up to 12 degrees": on_page(Look(rotate=12)),
    "... unevenly lit (45% darker across)": on_page(Look(lighting=0.45)),
    "... JPEG quality 60-80": on_page(Look(jpeg=True)),
    "... thicker strokes": on_page(Look(stroke=3)),
    "... thinner strokes": on_page(Look(stroke=-1)),
    "... all of these at once (but thickness)": on_page(Look(rotate=12, lighting=0.45, jpeg=True)),
    "drawn with a pen on the 280x280 pad": drawn,
}


def held_out_digits(
    store: ModelStore, model: str, dataset: str | None = None
) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """The held-out test split of the model's data set, cut with the split seed it records."""
    from models.data import SplitConfig, make_splits
    from models.sources import load_dataset

    manifest = next(iter(store.model(model).values())).manifest
    data = load_dataset(dataset or manifest.training.dataset)
    splits = make_splits(data, SplitConfig(split_seed=manifest.training.split_seed))
    return data.images[splits.test, 0], data.labels[splits.test]


def accuracies(
    variants: dict[str, LoadedVariant],
    images: Sequence[bytes],
    labels: NDArray[np.int64],
    framing: FramingChoice,
) -> dict[str, float]:
    """Each variant's accuracy on the images decoded (and framed, or not) as the service does."""
    correct = dict.fromkeys(variants, 0)
    decoded: dict[InputSpec, NDArray[np.uint8]] = {}
    for name, variant in variants.items():
        spec = variant.manifest.input
        if spec not in decoded:
            # One call decodes the whole set, which is no request: each image keeps the
            # service's own limit, and the per-request pixel budget covers them all.
            whole = DecodeOptions(framing=framing)
            whole = replace(whole, max_request_pixels=len(images) * whole.max_pixels)
            decoded[spec] = decode_batch(images, spec, whole)
        probabilities = variant.run_now(decoded[spec], ("probabilities",))["probabilities"]
        correct[name] = int((probabilities.argmax(axis=1) == labels).sum())
    return {f"{name} framing={framing}": correct[name] / len(images) for name in variants}


def measure(
    root: Path, model: str, count: int, seed: int, dataset: str | None = None
) -> tuple[dict[str, dict[str, float]], int]:
    """Accuracy per set, per ``<variant> framing=<choice>``, and the number of test digits."""
    store = ModelStore.load(root)
    if not store.ready:
        raise SystemExit(f"{root}: no model could be loaded ({store.not_ready_reason})")
    digits, labels = held_out_digits(store, model, dataset)
    # The split lists its images class by class: a subset must be drawn, not cut off the top.
    chosen = np.sort(np.random.default_rng(seed).permutation(len(digits))[:count])
    digits, labels = digits[chosen], labels[chosen]
    results: dict[str, dict[str, float]] = {}
    choices: tuple[FramingChoice, ...] = ("none", "auto")
    for name, render in SETS.items():
        rng = np.random.default_rng(seed)
        files = [render(digit, rng) for digit in digits]
        row: dict[str, float] = {}
        for choice in choices:
            row.update(accuracies(store.model(model), files, labels, choice))
        results[name] = row
        print(f"  measured {name}", file=sys.stderr)
    return results, len(digits)


def table(results: dict[str, dict[str, float]], count: int) -> str:
    columns = list(next(iter(results.values())))
    lines = [
        f"| images ({count} test digits each) | " + " | ".join(columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for name, row in results.items():
        cells = " | ".join(f"{100 * row[c]:.1f}%" for c in columns)
        lines.append(f"| {name} | {cells} |")
    return "\n".join(lines)


BLANKS: dict[str, Callable[[np.random.Generator], Image.Image]] = {}


def _blank_page(lighting: float, noise: float) -> Callable[[np.random.Generator], Image.Image]:
    def make(rng: np.random.Generator) -> Image.Image:
        width, height = PAGE
        page = np.full((height, width), float(rng.uniform(200, 250)))
        if lighting:
            ys, xs = np.mgrid[0:height, 0:width]
            page *= 1.0 - lighting * (xs / width + ys / height) / 2
        page += rng.normal(0.0, noise, page.shape)
        return Image.fromarray(page.clip(0, 255).astype(np.uint8))

    return make


BLANKS.update(
    {
        "empty pad": lambda rng: Image.new("L", (PAD, PAD), 255),
        "page, sensor noise 3": _blank_page(0.0, 3.0),
        "page, sensor noise 8": _blank_page(0.0, 8.0),
        "page, unevenly lit 45%": _blank_page(0.45, 3.0),
    }
)


def _contrast(data: bytes) -> float:
    with Image.open(io.BytesIO(data)) as opened:
        image: Image.Image = opened
        if image.mode == "RGBA":  # the pad's strokes on transparency: put them on white
            image = Image.alpha_composite(Image.new("RGBA", image.size, (255,) * 4), image)
        pixels = np.asarray(image.convert("L"), dtype=np.uint8)
    if border_brightness(pixels) > 127.5:
        pixels = 255 - pixels
    return measure_contrast(pixels)


def blank_levels(count: int, seed: int, root: Path, model: str) -> str:
    """The ink contrast of blank pages and of every realistic digit set, as a table."""
    rng = np.random.default_rng(seed)
    lines = ["| images | lowest | 1st percentile | median | highest |", "|---|---:|---:|---:|---:|"]

    def row(name: str, values: list[float]) -> None:
        low, p1, mid, high = (float(np.percentile(values, q)) for q in (0, 1, 50, 100))
        lines.append(f"| {name} | {low:.0f} | {p1:.0f} | {mid:.0f} | {high:.0f} |")

    for name, make in BLANKS.items():
        pages = [make(rng) for _ in range(max(1, count // 10))]
        row(f"blank: {name} (PNG)", [_contrast(_encode(p, Look(), rng)) for p in pages])
        row(f"blank: {name} (JPEG)", [_contrast(_encode(p, Look(jpeg=True), rng)) for p in pages])
    store = ModelStore.load(root)
    digits, _ = held_out_digits(store, model)
    chosen = np.random.default_rng(seed).permutation(len(digits))[:count]
    for name, render in SETS.items():
        row(f"digit: {name}", [_contrast(render(d, rng)) for d in digits[chosen]])
    lines.append(f"\nBLANK_CONTRAST = {BLANK_CONTRAST:g}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.realistic_digits", description=__doc__
    )
    parser.add_argument(
        "--model-repository", type=Path, required=True, help="repository holding the model"
    )
    parser.add_argument("--model", default="mnist", help="model name (default: mnist)")
    parser.add_argument(
        "--count", type=int, default=1000, help="test digits per set (default: 1000, all of them)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the distortions (default: 0)")
    parser.add_argument(
        "--dataset", help="the digits' data set (default: the one the manifest records)"
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument(
        "--blank-levels", action="store_true", help="print the ink contrast table instead"
    )
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error(f"--count must be at least 1, got {args.count}")
    if args.blank_levels:
        print(blank_levels(args.count, args.seed, args.model_repository, args.model))
        return 0
    results, count = measure(args.model_repository, args.model, args.count, args.seed, args.dataset)
    print(table(results, count))
    if args.json:
        figures = {"count": count, "sets": results}
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
