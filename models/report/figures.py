"""The report's figures, drawn with matplotlib's Agg backend straight into PNG files."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import numpy as np
from matplotlib.figure import Figure
from numpy.typing import NDArray

from models.report.semi import CELLS, SemiStudy
from models.report.stats import t_interval
from models.report.tables import Comparison, Results
from models.report.transfer import ARMS, TransferComparison, source_words

COLOURS = {
    "none": "#444444",
    "rbm": "#1f77b4",
    "dae": "#2ca02c",
    "cae": "#d62728",
    "contrastive": "#9467bd",
    "supervised": "#ff7f0e",
    "source images": "#8c564b",
}
ARCH_TITLES = {"mlp": "MLP (sigmoid)", "cnn": "CNN (ReLU)"}
DPI = 100


def _legend(ax: Any) -> None:
    """A legend beside the axes: matplotlib's "best" spot is searched against a clock, and on
    a busy machine the search overruns it and warns, so no figure depends on it."""
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return path


def _band(ax: Any, xs: Sequence[float], intervals: Sequence[Any], method: str, label: str) -> None:
    means = [100 * i.mean for i in intervals]
    style = "--" if method == "none" else "-"
    ax.plot(xs, means, style, marker="o", color=COLOURS[method], label=label)
    lows = [100 * i.low for i in intervals]
    highs = [100 * i.high for i in intervals]
    if not any(math.isnan(v) for v in lows):
        ax.fill_between(xs, lows, highs, color=COLOURS[method], alpha=0.15, linewidth=0)


def accuracy_vs_labels(results: Results, path: Path) -> Path:
    """Test accuracy against labels per class, one line per method with its 95% band."""
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    study = results.label_study()
    for ax, arch in zip(fig.subplots(1, 2), ("mlp", "cnn"), strict=True):
        rows = [c for c in study if c.arch == arch]
        xs = results.labels()
        baseline = [next(c.baseline for c in rows if c.labels_per_class == k) for k in xs]
        _band(ax, xs, baseline, "none", "baseline (no pre-training)")
        for method in results.methods(arch):
            mine = [
                next(c for c in rows if c.method == method and c.labels_per_class == k) for k in xs
            ]
            _band(ax, xs, [c.pretrained for c in mine], method, f"pre-trained: {method}")
        ax.set_xscale("log")
        ax.minorticks_off()
        ax.set_xticks(xs, [str(k) for k in xs])
        ax.set_xlabel("labeled images per class (log scale)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(ARCH_TITLES[arch])
        ax.grid(alpha=0.3)
        _legend(ax)
    return _save(fig, path)


def gain_vs_labels(results: Results, path: Path) -> Path:
    """Pre-trained minus paired baseline, with 95% intervals and the paired test's p-value."""
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    study = results.label_study()
    for ax, arch in zip(fig.subplots(1, 2), ("mlp", "cnn"), strict=True):
        methods = results.methods(arch)
        for offset, method in zip(np.linspace(-0.04, 0.04, len(methods)), methods, strict=True):
            rows = [c for c in study if c.arch == arch and c.method == method]
            xs = [c.labels_per_class * 10**offset for c in rows]
            _gain_bars(ax, xs, rows, method)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xscale("log")
        ax.minorticks_off()
        ks = results.labels()
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.set_xlabel("labeled images per class (log scale)")
        ax.set_ylabel("gain in test accuracy (percentage points)")
        ax.set_title(f"{ARCH_TITLES[arch]}: gain over the paired baseline")
        ax.grid(alpha=0.3)
        _legend(ax)
    return _save(fig, path)


def _gain_bars(ax: Any, xs: Sequence[float], rows: Sequence[Comparison], method: str) -> None:
    means = np.array([100 * c.test.diff.mean for c in rows])
    lows = np.array([100 * c.test.diff.low for c in rows])
    highs = np.array([100 * c.test.diff.high for c in rows])
    errors = None if np.isnan(lows).any() else np.vstack([means - lows, highs - means])
    ax.errorbar(xs, means, yerr=errors, fmt="o-", capsize=4, color=COLOURS[method], label=method)
    for x, mean, c in zip(xs, means, rows, strict=True):
        if not math.isnan(c.test.p):
            ax.annotate(f"p={c.test.p:.2g}", (x, mean), textcoords="offset points",
                        xytext=(4, 4), fontsize=7, color=COLOURS[method])  # fmt: skip


def _tiles(weights: NDArray[Any], shape: tuple[int, int]) -> NDArray[np.float64]:
    """Lay out rows of ``weights`` as ``shape`` images in a square grid, each scaled to [0, 1]."""
    count = len(weights)
    columns = math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    h, w = shape
    canvas = np.full((rows * (h + 1) + 1, columns * (w + 1) + 1), 0.5)
    for i, unit in enumerate(weights):
        image = unit.reshape(-1, h, w).mean(0)
        span = float(np.abs(image).max()) or 1.0
        r, c = divmod(i, columns)
        canvas[1 + r * (h + 1) : 1 + r * (h + 1) + h, 1 + c * (w + 1) : 1 + c * (w + 1) + w] = (
            0.5 + 0.5 * image / span
        )
    return canvas


def weight_tiles(
    panels: Sequence[tuple[str, NDArray[Any]]],
    shape: tuple[int, int],
    path: Path,
    title: str,
    per_row: int = 4,
) -> Path:
    """One grid of tiles per panel (first-layer units or kernels), grey = 0."""
    columns = min(per_row, len(panels))
    rows = math.ceil(len(panels) / columns)
    fig = Figure(figsize=(3.2 * columns, 3.4 * rows), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax, (label, weights) in zip(axes, panels, strict=False):
        ax.imshow(_tiles(weights, shape), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(label, fontsize=9)
    for ax in axes:
        ax.axis("off")
    fig.suptitle(title, fontsize=11)
    return _save(fig, path)


def reconstructions(
    originals: NDArray[np.uint8], rows: Sequence[tuple[str, NDArray[np.float32]]], path: Path
) -> Path:
    """Test images (top row) and each autoencoder's reconstruction of them."""
    count = len(originals)
    fig = Figure(figsize=(1.0 * count, 1.1 * (len(rows) + 1)), layout="constrained")
    axes = fig.subplots(len(rows) + 1, count, squeeze=False)
    pictures = [("test image", originals.astype(np.float32) / 255.0), *rows]
    for r, (label, images) in enumerate(pictures):
        for c in range(count):
            ax = axes[r][c]
            ax.imshow(images[c].mean(0), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(label, fontsize=8, rotation=0, ha="right", va="center")
    return _save(fig, path)


def weight_drift(
    panels: Sequence[tuple[str, dict[str, list[dict[str, float]]]]], path: Path
) -> Path:
    """Per layer ``||W_end - W_start|| / ||W_start||``, mean and 95% interval over seeds."""
    rows = math.ceil(len(panels) / 2)
    fig = Figure(figsize=(11, 3.8 * rows), layout="constrained")
    axes = fig.subplots(rows, 2, squeeze=False).ravel()
    for ax in axes[len(panels) :]:
        ax.axis("off")
    for ax, (title, by_method) in zip(axes, panels, strict=False):
        # The cache stores layers alphabetically; show them input side first, head last.
        layers = sorted(next(iter(by_method.values()))[0], key=lambda n: (n == "head", n))
        width = 0.8 / len(by_method)
        for i, (method, drifts) in enumerate(by_method.items()):
            intervals = [t_interval([d[layer] for d in drifts]) for layer in layers]
            xs = np.arange(len(layers)) + (i - (len(by_method) - 1) / 2) * width
            means = np.array([v.mean for v in intervals])
            lows = np.array([v.low for v in intervals])
            highs = np.array([v.high for v in intervals])
            errors = None if np.isnan(lows).any() else np.vstack([means - lows, highs - means])
            label = "baseline" if method == "none" else method
            ax.bar(xs, means, width, yerr=errors, capsize=3, color=COLOURS[method], label=label)
        ax.set_xticks(np.arange(len(layers)), layers, fontsize=8)
        ax.set_ylabel("relative weight change in fine-tuning")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3, axis="y")
        _legend(ax)
    return _save(fig, path)


def curves(panels: Sequence[tuple[str, dict[str, list[dict[str, float]]]]], path: Path) -> Path:
    """Validation loss and accuracy per fine-tuning epoch, one line per variant."""
    fig = Figure(figsize=(11, 3.6 * len(panels)), layout="constrained")
    axes = fig.subplots(len(panels), 2, squeeze=False)
    for row, (title, by_method) in enumerate(panels):
        for method, history in by_method.items():
            epochs = [h["epoch"] for h in history]
            style = "--" if method == "none" else "-"
            label = "baseline" if method == "none" else method
            colour = COLOURS[method]
            axes[row][0].plot(epochs, [h["val_loss"] for h in history], style, color=colour,
                              label=label)  # fmt: skip
            axes[row][1].plot(epochs, [100 * h["val_accuracy"] for h in history], style,
                              color=colour, label=label)  # fmt: skip
        axes[row][0].set_ylabel("validation loss")
        axes[row][1].set_ylabel("validation accuracy (%)")
        for ax in axes[row]:
            ax.set_xlabel("fine-tuning epoch")
            ax.set_title(title, fontsize=10)
            ax.grid(alpha=0.3)
            _legend(ax)
    return _save(fig, path)


def embeddings(
    panels: Sequence[tuple[str, NDArray[np.float32], NDArray[np.int64]]],
    path: Path,
    columns: int = 3,
) -> Path:
    """A 2-D t-SNE map of each variant's test embeddings, coloured by true class."""
    from sklearn.manifold import TSNE

    rows = math.ceil(len(panels) / columns)
    fig = Figure(figsize=(4 * columns, 4 * rows), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax, (title, points, labels) in zip(axes, panels, strict=False):
        perplexity = min(30.0, (len(points) - 1) / 3)
        tsne = TSNE(n_components=2, init="pca", perplexity=perplexity, random_state=0)
        xy = tsne.fit_transform(points.astype(np.float64))
        scatter = ax.scatter(xy[:, 0], xy[:, 1], c=labels, cmap="tab10", s=5, vmin=-0.5,
                             vmax=9.5)  # fmt: skip
        ax.set_title(title, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes[len(panels) :]:
        ax.axis("off")
    fig.colorbar(scatter, ax=list(axes), ticks=range(10), label="class", shrink=0.6)
    return _save(fig, path)


def depth(results: Results, path: Path) -> Path:
    """Test accuracy against the MLP's depth, pre-trained and not."""
    fig = Figure(figsize=(11, 4), layout="constrained")
    left, right = fig.subplots(1, 2)
    study = results.depth_study()
    xs = list(results.budget.depths)
    baseline = [next(c.baseline for c in study if c.depth == d) for d in xs]
    _band(left, xs, baseline, "none", "baseline")
    for method in results.budget.depth_methods:
        rows = [c for c in study if c.method == method]
        _band(left, xs, [c.pretrained for c in rows], method, f"pre-trained: {method}")
        _gain_bars(right, xs, rows, method)
    k = study[0].labels_per_class
    left.set_ylabel("test accuracy (%)")
    left.set_title(f"MLP depth, {k} labels per class")
    right.axhline(0, color="black", linewidth=0.8)
    right.set_ylabel("gain over paired baseline (pp)")
    right.set_title("gain from pre-training by depth")
    for ax in (left, right):
        ax.set_xticks(xs, [str(d) for d in xs])
        ax.set_xlabel("hidden layers")
        ax.grid(alpha=0.3)
        _legend(ax)
    return _save(fig, path)


def optimizers(results: Results, path: Path) -> Path:
    """Baseline and pre-trained accuracy for each fine-tuning optimiser, with 95% intervals."""
    fig = Figure(figsize=(8, 4), layout="constrained")
    ax = fig.subplots()
    study = results.optimizer_study()
    xs = np.arange(len(study))
    for shift, variant, method in ((-0.2, "baseline", "none"), (0.2, "pretrained", None)):
        intervals = [c.baseline if variant == "baseline" else c.pretrained for c in study]
        means = np.array([100 * i.mean for i in intervals])
        lows = np.array([100 * i.low for i in intervals])
        highs = np.array([100 * i.high for i in intervals])
        errors = None if np.isnan(lows).any() else np.vstack([means - lows, highs - means])
        name = method or study[0].method
        label = "baseline" if variant == "baseline" else f"pre-trained: {name}"
        ax.bar(xs + shift, means, 0.4, yerr=errors, capsize=4, color=COLOURS[name], label=label)
    ax.set_xticks(xs, [c.optimizer for c in study])
    ax.set_ylabel("test accuracy (%)")
    low = min(100 * min(c.baseline.mean, c.pretrained.mean) for c in study)
    ax.set_ylim(max(0.0, low - 15), 100)
    ax.set_title(f"fine-tuning optimiser, MLP, {study[0].labels_per_class} labels per class")
    ax.grid(alpha=0.3, axis="y")
    _legend(ax)
    return _save(fig, path)


def transfer(comparisons: Sequence[TransferComparison], dataset: str, path: Path) -> Path:
    """Test accuracy against labels for each start of the transfer panel, one panel per
    setting, with 95% bands over seeds."""
    settings = list(dict.fromkeys(c.setting for c in comparisons))
    fig = Figure(figsize=(5.5 * len(settings) + 2, 4.2), layout="constrained")
    axes = fig.subplots(1, len(settings), squeeze=False)[0]
    colour_keys = {ARMS[1]: None, ARMS[2]: "supervised", ARMS[3]: "source images"}
    for ax, setting in zip(axes, settings, strict=True):
        rows = [c for c in comparisons if c.setting == setting]
        xs = sorted({c.labels_per_class for c in rows})
        baseline = [next(c.baseline for c in rows if c.labels_per_class == k) for k in xs]
        _band(ax, xs, baseline, "none", ARMS[0].name)
        for arm, key in colour_keys.items():
            mine = [next(c for c in rows if c.arm == arm and c.labels_per_class == k) for k in xs]
            _band(ax, xs, [c.pretrained for c in mine], key or mine[0].method, arm.name)
        ax.set_xscale("log")
        ax.minorticks_off()
        ax.set_xticks(xs, [str(k) for k in xs])
        ax.set_xlabel("labeled target images per class (log scale)")
        ax.set_ylabel("test accuracy (%)")
        # Bands of few seeds can reach past 0-100%: the axis shows only possible accuracies.
        lowest = min(100 * min(c.pretrained.mean, c.baseline.mean) for c in rows)
        ax.set_ylim(max(0.0, lowest - 10), 100)
        ax.set_title(source_words(setting, dataset), fontsize=10)
        ax.grid(alpha=0.3)
        _legend(ax)
    return _save(fig, path)


def semi_panel(found: SemiStudy, path: Path) -> Path:
    """Test accuracy against labels for the 2 x 2 panel's four cells, with 95% bands over
    seeds: colour says the start (random or pre-trained), a dashed line supervised fine-tuning,
    a solid one FixMatch."""
    fig = Figure(figsize=(7.5, 4.2), layout="constrained")
    ax = fig.subplots()
    method = found.panel.method
    xs = found.panel.labels()
    for cell in CELLS:
        colour = COLOURS[method if cell.pretrained else "none"]
        intervals = [found.cell(cell, k) for k in xs]
        means = [100 * i.mean for i in intervals]
        style = "-" if cell.semi else "--"
        marker = "s" if cell.semi else "o"
        ax.plot(xs, means, style, marker=marker, color=colour, label=cell.name(method))
        lows = [100 * i.low for i in intervals]
        highs = [100 * i.high for i in intervals]
        if not any(math.isnan(v) for v in lows):
            ax.fill_between(xs, lows, highs, color=colour, alpha=0.12, linewidth=0)
    ax.set_xscale("log")
    ax.minorticks_off()
    ax.set_xticks(xs, [str(k) for k in xs])
    ax.set_xlabel("labeled images per class (log scale)")
    ax.set_ylabel("test accuracy (%)")
    lowest = min(100 * found.cell(cell, k).mean for cell in CELLS for k in xs)
    ax.set_ylim(max(0.0, lowest - 10), 100)
    ax.set_title("CNN, augmented: pre-training x semi-supervised fine-tuning", fontsize=10)
    ax.grid(alpha=0.3)
    _legend(ax)
    return _save(fig, path)
