"""Run the sweep and write the whole report: figures, tables, conclusion, CSV, MD and HTML."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from models.data import SplitConfig
from models.errors import ConfigError
from models.experiment import ExperimentConfig, Prepared, load_data
from models.methods import Method
from models.report import conclusion, figures
from models.report.budgets import MAIN_OPTIMIZER, OPTIMIZERS, Budget
from models.report.cache import Arrays, RunCache
from models.report.document import (
    Block,
    FigureRef,
    Section,
    render_html,
    render_markdown,
    write_csv,
)
from models.report.literature import LITERATURE, comparison_note
from models.report.plan import RunSpec, experiment, plan, resolve_labels, studies_of
from models.report.sweep import Sweep, recon_key, run_sweep
from models.report.tables import (
    Results,
    depth_table,
    historical_table,
    label_table,
    optimizer_table,
)

log = logging.getLogger(__name__)

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
)


CAPTIONS = (
    (
        "Test accuracy against labeled images per class (log axis); mean over seeds with a 95% "
        "t-band; the baseline of each architecture is dashed."
    ),
    "Pre-trained minus baseline of the same seed, with 95% intervals and paired t-test p-values.",
    (
        "MLP first-layer weights as image tiles (first 64 units, seed 0, smallest label budget): "
        "RBM and DAE filters after pre-training and after fine-tuning, and the baseline's after "
        "fine-tuning."
    ),
    (
        "CNN first-layer kernels: learned without labels (CAE, contrastive) and after fine-tuning, "
        "beside the baseline's random start and fine-tuned kernels."
    ),
    (
        "One test image per class (top) and its reconstruction by each pre-trained autoencoder "
        "(RBM: up the stack and back down; DAE: through the stacked decoders; CAE: the "
        "convolutional decoder)."
    ),
    (
        "Per layer ||W_end - W_start|| / ||W_start|| over fine-tuning, mean and 95% interval over "
        "seeds: do pre-trained weights stay near their start?"
    ),
    "Validation loss and accuracy per fine-tuning epoch, seed 0, smallest label budget.",
    (
        "t-SNE of the test images' embeddings (penultimate layer) after fine-tuning, coloured by "
        "true class; seed 0, smallest label budget."
    ),
    "Accuracy and gain against the MLP's depth.",
    "Accuracy by fine-tuning optimiser, both variants fine-tuned with the same one.",
)


@dataclass(frozen=True)
class ReportOptions:
    """What ``headstart report`` was asked for."""

    out: Path
    budget: Budget
    dataset: str
    seeds: int
    split_seed: int = 0
    device: str = "auto"
    command: str = "headstart report"


@dataclass(frozen=True)
class ReportFiles:
    html: Path
    markdown: Path
    csv: Path
    figures: tuple[Path, ...]
    trained: int
    cached: int
    seconds: float


def smallest_pool_class(prepared: Prepared) -> int:
    """The most labels per class every class can give: the 'all labels' budget."""
    counts = np.bincount(prepared.data.labels[prepared.splits.pool], minlength=10)
    return int(counts[: prepared.data.num_classes].min())


def build_report(options: ReportOptions) -> ReportFiles:
    """Train (or load) every run of the sweep, then write the report into ``options.out``."""
    if options.seeds < 2:
        raise ConfigError(
            f"--seeds must be at least 2 for confidence intervals, got {options.seeds}"
        )
    began = time.perf_counter()
    budget = options.budget
    base = ExperimentConfig(dataset=options.dataset, split=SplitConfig(options.split_seed))
    prepared = load_data(base)
    all_labels = smallest_pool_class(prepared)
    specs = plan(budget, options.seeds, all_labels)
    options.out.mkdir(parents=True, exist_ok=True)
    cache = RunCache(options.out / "cache")
    log.info(
        "report: %d runs (%s budget, %d seeds) on %s; expect %s",
        len(specs), budget.name, options.seeds, options.dataset, budget.expected,
    )  # fmt: skip
    sweep = run_sweep(
        specs,
        budget,
        prepared,
        cache,
        dataset=options.dataset,
        split_seed=options.split_seed,
        device=options.device,
        all_labels=all_labels,
    )
    by_spec = {spec: sweep.records[sweep.keys[spec]] for spec in specs}
    results = Results(by_spec, budget, options.seeds, all_labels)
    rows = [{**by_spec[s], "studies": ";".join(studies_of(s, budget, all_labels))} for s in specs]
    csv_path = write_csv(options.out / "results.csv", rows)
    drawn = draw_figures(options, results, sweep, cache, prepared)
    title, intro, sections = compose(options, results, prepared, sweep, cache, all_labels)
    md = options.out / "report.md"
    md.write_text(render_markdown(title, intro, sections))
    page = options.out / "report.html"
    page.write_text(render_html(title, intro, sections, options.out))
    return ReportFiles(
        page, md, csv_path, drawn, sweep.trained, sweep.cached, time.perf_counter() - began
    )


def training_minutes(sweep: Sweep) -> float:
    """Pre-training (once per encoder) plus fine-tuning seconds of every run, in minutes."""
    pretraining: dict[tuple[str, int, str, int], float] = {}
    finetuning = 0.0
    for spec, key in sweep.keys.items():
        record = sweep.records[key]
        finetuning += float(record["finetune_seconds"])
        pretraining[spec.arch, spec.depth, spec.method, spec.seed] = float(
            record["pretrain_seconds"]
        )
    return (finetuning + sum(pretraining.values())) / 60


def _showcase(results: Results, arch: str, method: Method) -> RunSpec:
    k = resolve_labels(results.budget.showcase_labels, results.all_labels)
    return RunSpec(arch, results.main_depth(arch), method, 0, MAIN_OPTIMIZER, k)


def draw_figures(
    options: ReportOptions, results: Results, sweep: Sweep, cache: RunCache, prepared: Prepared
) -> tuple[Path, ...]:
    out, budget = options.out, results.budget
    arrays: dict[tuple[str, str], Arrays] = {}
    for arch, methods in (("mlp", budget.mlp_methods), ("cnn", budget.cnn_methods)):
        for method in methods:
            arrays[arch, method] = cache.arrays(sweep.keys[_showcase(results, arch, method)])
    _, h, w = prepared.data.shape
    paths = [
        figures.accuracy_vs_labels(results, out / FIGURES[0]),
        figures.gain_vs_labels(results, out / FIGURES[1]),
    ]
    mlp_panels = [(f"{m}: after pre-training", arrays["mlp", m]["first_before"])
                  for m in budget.mlp_methods if m != "none"]  # fmt: skip
    mlp_panels += [(f"{m}: after fine-tuning", arrays["mlp", m]["first_after"])
                   for m in budget.mlp_methods if m != "none"]  # fmt: skip
    mlp_panels.append(("baseline: after fine-tuning", arrays["mlp", "none"]["first_after"]))
    paths.append(figures.weight_tiles(
        mlp_panels, (h, w), out / FIGURES[2], "MLP first-layer weights (64 units)", per_row=5
    ))  # fmt: skip
    cnn_panels: list[tuple[str, Any]] = []
    for method in budget.cnn_methods:
        name = "baseline" if method == "none" else method
        start = "random start" if method == "none" else "after pre-training"
        cnn_panels.append((f"{name}: {start}", arrays["cnn", method]["first_before"]))
        cnn_panels.append((f"{name}: after fine-tuning", arrays["cnn", method]["first_after"]))
    size = int(arrays["cnn", "none"]["first_before"].shape[-1])
    paths.append(figures.weight_tiles(
        cnn_panels, (size, size), out / FIGURES[3],
        "CNN first-layer kernels, learned without labels and after fine-tuning", per_row=2,
    ))  # fmt: skip
    recon_rows = []
    originals = None
    for arch, method in [("mlp", m) for m in budget.mlp_methods] + [
        ("cnn", m) for m in budget.cnn_methods
    ]:
        spec = _showcase(results, arch, method)
        config = experiment(spec, budget, options.dataset, options.split_seed)
        found = cache.arrays(recon_key(config)) if method != "none" else {}
        if found:
            originals = found["originals"]
            recon_rows.append((f"{arch} {method}", found["reconstructions"]))
    if originals is not None:
        paths.append(figures.reconstructions(originals, recon_rows, out / FIGURES[4]))
    labels = results.labels()
    drift_panels = []
    for arch in ("mlp", "cnn"):
        methods = budget.mlp_methods if arch == "mlp" else budget.cnn_methods
        for k in (labels[0], labels[-1]):
            by_method: dict[str, list[Any]] = {
                m: [
                    results.records[_at(results, arch, m, s, k)]["drift"]
                    for s in range(results.seeds)
                ]
                for m in methods
            }
            drift_panels.append((f"{arch.upper()}, {k} labels per class", by_method))
    paths.append(figures.weight_drift(drift_panels, out / FIGURES[5]))
    curve_panels = []
    for arch in ("mlp", "cnn"):
        methods = budget.mlp_methods if arch == "mlp" else budget.cnn_methods
        histories: dict[str, list[Any]] = {
            m: results.records[_showcase(results, arch, m)]["history"] for m in methods
        }
        curve_panels.append((f"{arch.upper()}, {labels[0]} labels per class, seed 0", histories))
    paths.append(figures.curves(curve_panels, out / FIGURES[6]))
    embed_panels = []
    for arch in ("mlp", "cnn"):
        for m in budget.mlp_methods if arch == "mlp" else budget.cnn_methods:
            name = "baseline" if m == "none" else m
            found = arrays[arch, m]
            embed_panels.append((f"{arch.upper()} {name}", found["embedding"], found["labels"]))
    paths.append(figures.embeddings(embed_panels, out / FIGURES[7]))
    paths.append(figures.depth(results, out / FIGURES[8]))
    paths.append(figures.optimizers(results, out / FIGURES[9]))
    return tuple(paths)


def pretraining_movement(results: Results, cache: RunCache, sweep: Sweep) -> str:
    """How far pre-training moved the first layer from the random start it shares with the
    baseline (same seed), for the methods that train that layer in place."""
    parts = []
    for arch, methods in (("mlp", results.budget.mlp_methods), ("cnn", results.budget.cnn_methods)):
        start = cache.arrays(sweep.keys[_showcase(results, arch, Method.none)]).get("first_before")
        for method in methods:
            if method in ("none", "rbm") or start is None:
                continue  # an RBM is trained from its own small random weights, then copied in
            found = cache.arrays(sweep.keys[_showcase(results, arch, method)])
            moved = np.linalg.norm(found["first_before"] - start) / np.linalg.norm(start)
            parts.append(f"{arch.upper()} {method} {moved:.2f}")
    if not parts:
        return ""
    return (
        "How far pre-training moved the first layer from the random start it shares with the "
        "baseline (||W_pretrained - W_random|| / ||W_random||, seed 0, the kept units): "
        + "; ".join(parts)
        + ". Fine-tuning's own drift is in the weight-drift figure below."
    )


def _at(results: Results, arch: str, method: Method, seed: int, labels: int) -> RunSpec:
    return RunSpec(arch, results.main_depth(arch), method, seed, MAIN_OPTIMIZER, labels)


def compose(
    options: ReportOptions,
    results: Results,
    prepared: Prepared,
    sweep: Sweep,
    cache: RunCache,
    all_labels: int,
) -> tuple[str, list[str], list[Section]]:
    budget = results.budget
    data, splits = prepared.data, prepared.splits
    setting = (
        f"{data.name} ({len(data)} images: {len(splits.test)} test, {len(splits.val)} "
        f"validation, {len(splits.pool)} in the unlabeled pool)"
    )
    title = "Does unsupervised pre-training help? Measured on " + data.name
    intro = [
        f"Produced by: {options.command}",
        (
            f"Generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {len(sweep.specs)} runs "
            f"({sweep.trained} trained now, {sweep.cached} from the cache); this invocation's "
            f"sweep took {sweep.seconds / 60:.1f} min. Training time recorded in the runs: "
            f"{training_minutes(sweep):.1f} min (each pre-training counted once)."
        ),
        (
            f"Data: {setting}. Labeled training images are drawn from the pool per seed; "
            f"'all' is {all_labels} per class. Pre-training sees the whole pool without labels."
        ),
        (
            f"Networks: MLP {budget.mlp_depth}x{budget.mlp_width} sigmoid units (Glorot "
            f"initialisation for the baseline), CNN conv {budget.cnn_channels} 5x5 + dense "
            f"{budget.cnn_dense}, ReLU (He initialisation). Pre-training: {budget.pretrain_epochs} "
            f"epochs (per layer for RBM/DAE stacks). Fine-tuning, identical for every pair: "
            f"{MAIN_OPTIMIZER} (lr {OPTIMIZERS[MAIN_OPTIMIZER]['lr']:g}) unless the optimiser study "
            f"says otherwise, batch {budget.batch_size}, at most {budget.max_epochs} epochs of at least "
            f"{budget.min_steps_per_epoch} steps, early stopping on validation loss (patience "
            f"{budget.patience}), best epoch kept, no augmentation. Seeds: {results.seeds}; each "
            "seed fixes the labeled draw, the initialisation and the data order for both variants."
        ),
    ]
    labels_t, depth_t, opt_t = label_table(results), depth_table(results), optimizer_table(results)
    history_t = historical_table(results)
    comparisons = sum(len(t.rows) for t in (labels_t, depth_t, opt_t, history_t))
    findings = [
        *conclusion.label_findings(results),
        *conclusion.depth_findings(results),
        *conclusion.optimizer_findings(results),
        *conclusion.historical_findings(results),
        conclusion.caveats(results, comparisons, setting),
    ]
    shown = {p.name for p in (options.out).glob("*.png")}
    movement = pretraining_movement(results, cache, sweep)

    def fig(index: int, caption: str) -> list[Block]:
        name = FIGURES[index]
        return [FigureRef(name, caption)] if name in shown else []

    sections = [
        Section("Conclusion (worded from the numbers below)", list(findings)),
        Section("Accuracy against labels", fig(0, CAPTIONS[0])),
        Section("Gain over the paired baseline", [*fig(1, CAPTIONS[1]), labels_t]),
        Section(
            "What pre-training learned",
            [*fig(2, CAPTIONS[2]), *fig(3, CAPTIONS[3]), *([movement] if movement else [])],
        ),
        Section("Reconstructions", fig(4, CAPTIONS[4])),
        Section("Weight drift during fine-tuning", fig(5, CAPTIONS[5])),
        Section("Fine-tuning curves", fig(6, CAPTIONS[6])),
        Section("Embeddings", fig(7, CAPTIONS[7])),
        Section("Depth", [*fig(8, CAPTIONS[8]), depth_t]),
        Section("Optimisers", [*fig(9, CAPTIONS[9]), opt_t]),
        Section("The historical setting", [history_t]),
        Section(
            "Literature (others' results on full MNIST)",
            [LITERATURE, comparison_note(setting)],
        ),
    ]
    return title, intro, sections
