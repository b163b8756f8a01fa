"""The report's figures: which runs each one shows, drawn into the output folder."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from models.methods import Method
from models.report import figures
from models.report.cache import Arrays
from models.report.measure import Measured, ReportOptions
from models.report.plan import experiment
from models.report.sweep import recon_key
from models.report.tables import Results

FIGURES = (
    "accuracy_vs_labels.png",
    "gain_vs_labels.png",
    "mlp_first_layer.png",
    "cnn_kernels.png",
    "reconstructions.png",
    "weight_drift.png",
    "finetune_curves.png",
    "embeddings.png",
    "depth.png",
    "optimizers.png",
    "transfer.png",
    "semi.png",
)

Showcased = dict[tuple[str, Method], Arrays]
"""The arrays (weights, embeddings) of each (arch, method)'s showcase run."""


def _methods(results: Results, arch: str) -> tuple[Method, ...]:
    """The budget's methods for ``arch``, the baseline's ``none`` included."""
    budget = results.budget
    return budget.mlp_methods if arch == "mlp" else budget.cnn_methods


def draw_figures(options: ReportOptions, measured: Measured) -> tuple[Path, ...]:
    """Draw every figure into ``options.out``; return the paths written."""
    out, results = options.out, measured.results
    showcased: Showcased = {
        (arch, method): measured.cache.arrays(measured.main_keys[results.showcase(arch, method)])
        for arch in ("mlp", "cnn")
        for method in _methods(results, arch)
    }
    paths = [
        figures.accuracy_vs_labels(results, out / FIGURES[0]),
        figures.gain_vs_labels(results, out / FIGURES[1]),
        _mlp_first_layer(results, showcased, measured, out / FIGURES[2]),
        _cnn_kernels(results, showcased, out / FIGURES[3]),
    ]
    recon = _reconstructions(options, measured, out / FIGURES[4])
    if recon is not None:
        paths.append(recon)
    paths += [
        _weight_drift(results, out / FIGURES[5]),
        _curves(results, out / FIGURES[6]),
        _embeddings(results, showcased, out / FIGURES[7]),
        figures.depth(results, out / FIGURES[8]),
        figures.optimizers(results, out / FIGURES[9]),
        figures.transfer(measured.transfer_study(), options.dataset, out / FIGURES[10]),
        figures.semi_panel(measured.semi_study(), out / FIGURES[11]),
    ]
    return tuple(paths)


def _mlp_first_layer(
    results: Results, showcased: Showcased, measured: Measured, path: Path
) -> Path:
    pretrained = [m for m in results.budget.mlp_methods if m != "none"]
    _, h, w = measured.prepared.data.shape
    panels = [(f"{m}: after pre-training", showcased["mlp", m]["first_before"])
              for m in pretrained]  # fmt: skip
    panels += [(f"{m}: after fine-tuning", showcased["mlp", m]["first_after"])
               for m in pretrained]  # fmt: skip
    panels.append(("baseline: after fine-tuning", showcased["mlp", Method.none]["first_after"]))
    return figures.weight_tiles(
        panels, (h, w), path, "MLP first-layer weights (64 units)", per_row=5
    )


def _cnn_kernels(results: Results, showcased: Showcased, path: Path) -> Path:
    panels: list[tuple[str, Any]] = []
    for method in results.budget.cnn_methods:
        name = "baseline" if method == "none" else method
        start = "random start" if method == "none" else "after pre-training"
        panels.append((f"{name}: {start}", showcased["cnn", method]["first_before"]))
        panels.append((f"{name}: after fine-tuning", showcased["cnn", method]["first_after"]))
    size = int(showcased["cnn", Method.none]["first_before"].shape[-1])
    return figures.weight_tiles(
        panels, (size, size), path,
        "CNN first-layer kernels, learned without labels and after fine-tuning", per_row=2,
    )  # fmt: skip


def _reconstructions(options: ReportOptions, measured: Measured, path: Path) -> Path | None:
    """The showcase runs' reconstructions, if any pre-training ran fresh (and kept them)."""
    results = measured.results
    rows = []
    originals = None
    for arch in ("mlp", "cnn"):
        for method in _methods(results, arch):
            if method == "none":
                continue
            spec = results.showcase(arch, method)
            spec = replace(spec, pretrain_dataset=options.pretrain_dataset or "")
            config = experiment(spec, results.budget, options.dataset, options.split_seed)
            found = measured.cache.arrays(recon_key(config))
            if found:
                originals = found["originals"]
                rows.append((f"{arch} {method}", found["reconstructions"]))
    if originals is None:
        return None
    return figures.reconstructions(originals, rows, path)


def _weight_drift(results: Results, path: Path) -> Path:
    labels = results.labels()
    panels = []
    for arch in ("mlp", "cnn"):
        for k in (labels[0], labels[-1]):
            by_method: dict[str, list[Any]] = {
                m: [
                    results.records[results.main_run(arch, m, s, k)]["drift"]
                    for s in range(results.seeds)
                ]
                for m in _methods(results, arch)
            }
            panels.append((f"{arch.upper()}, {k} labels per class", by_method))
    return figures.weight_drift(panels, path)


def _curves(results: Results, path: Path) -> Path:
    first = results.labels()[0]
    panels = []
    for arch in ("mlp", "cnn"):
        histories: dict[str, list[Any]] = {
            m: results.records[results.showcase(arch, m)]["history"]
            for m in _methods(results, arch)
        }
        panels.append((f"{arch.upper()}, {first} labels per class, seed 0", histories))
    return figures.curves(panels, path)


def _embeddings(results: Results, showcased: Showcased, path: Path) -> Path:
    panels = []
    for arch in ("mlp", "cnn"):
        for m in _methods(results, arch):
            name = "baseline" if m == "none" else m
            found = showcased[arch, m]
            panels.append((f"{arch.upper()} {name}", found["embedding"], found["labels"]))
    return figures.embeddings(panels, path)
