"""The report's words: title, introduction and sections around the figures and tables."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from models.methods import Method
from models.report import conclusion, semi, transfer
from models.report.budgets import MAIN_OPTIMIZER, OPTIMIZERS
from models.report.document import Block, FigureRef, Section
from models.report.drawing import FIGURES
from models.report.literature import LITERATURE, comparison_note
from models.report.measure import Measured, ReportOptions
from models.report.sweep import Sweep
from models.report.tables import (
    depth_table,
    historical_table,
    label_table,
    optimizer_table,
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
    (
        "Transfer: test accuracy against labeled target images per class for each start of the "
        "CNN (random, unsupervised on the target's pool, supervised on the source task, "
        "unsupervised on the source's images); mean over seeds with a 95% t-band."
    ),
    (
        "The 2 x 2 panel: CNN test accuracy against labeled images per class for each start "
        "(colour) and fine-tuning mode (dashed: supervised; solid: FixMatch), all with the same "
        "augmented recipe; mean over seeds with a 95% t-band."
    ),
)


def training_minutes(sweep: Sweep) -> float:
    """Pre-training (once per encoder) plus fine-tuning seconds of every run, in minutes."""
    pretraining: dict[tuple[str, int, str, int, str, str], float] = {}
    finetuning = 0.0
    for spec, key in sweep.keys.items():
        record = sweep.records[key]
        finetuning += float(record["finetune_seconds"])
        encoder = (spec.arch, spec.depth, spec.method, spec.seed, spec.dataset,
                   spec.pretrain_dataset)  # fmt: skip
        pretraining[encoder] = float(record["pretrain_seconds"])
    return (finetuning + sum(pretraining.values())) / 60


def pretraining_movement(measured: Measured) -> str:
    """How far pre-training moved the first layer from the random start it shares with the
    baseline (same seed), for the methods that train that layer in place."""
    results, cache, keys = measured.results, measured.cache, measured.main_keys
    parts = []
    for arch, methods in (("mlp", results.budget.mlp_methods), ("cnn", results.budget.cnn_methods)):
        start = cache.arrays(keys[results.showcase(arch, Method.none)]).get("first_before")
        for method in methods:
            if method in ("none", "rbm") or start is None:
                continue  # an RBM is trained from its own small random weights, then copied in
            found = cache.arrays(keys[results.showcase(arch, method)])
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


def compose(options: ReportOptions, measured: Measured) -> tuple[str, list[str], list[Section]]:
    """The report's title, introduction and sections, worded from ``measured``."""
    data, splits = measured.prepared.data, measured.prepared.splits
    setting = (
        f"{data.name} ({len(data)} images: {len(splits.test)} test, {len(splits.val)} "
        f"validation, {len(splits.pool)} in the unlabeled pool)"
    )
    title = "Does unsupervised pre-training help? Measured on " + data.name
    return title, _intro(options, measured, setting), _sections(options, measured, setting)


def _intro(options: ReportOptions, measured: Measured, setting: str) -> list[str]:
    """Who produced the report, when, on what data, networks and recipe."""
    results, sweep, budget = measured.results, measured.sweep, measured.results.budget
    return [
        f"Produced by: {options.command}",
        (
            f"Generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {len(sweep.specs)} runs "
            f"({sweep.trained} trained now, {sweep.cached} from the cache); this invocation's "
            f"sweep took {sweep.seconds / 60:.1f} min. Training time recorded in the runs: "
            f"{training_minutes(sweep):.1f} min (each pre-training counted once)."
        ),
        (
            f"Data: {setting}. Labeled training images are drawn from the pool per seed; "
            f"'all' is {measured.all_labels} per class. "
            + (
                f"Pre-training sees {options.pretrain_dataset}'s images without labels "
                "(given by --pretrain-dataset), brought to this data set's input; "
                if options.pretrain_dataset
                else "Pre-training sees the whole pool without labels; "
            )
            + "the transfer panel's sources are its own, and the 2 x 2 panel pre-trains on the "
            "pool its semi-supervised cells learn from."
        ),
        (
            f"Networks: MLP {budget.mlp_depth}x{budget.mlp_width} sigmoid units (Glorot "
            f"initialisation for the baseline), CNN conv {budget.cnn_channels} 5x5 + dense "
            f"{budget.cnn_dense}, ReLU (He initialisation). Pre-training: {budget.pretrain_epochs} "
            f"epochs (per layer for RBM/DAE stacks). Fine-tuning, identical for every pair: "
            f"{MAIN_OPTIMIZER} (lr {OPTIMIZERS[MAIN_OPTIMIZER]['lr']:g}) unless the optimiser study "
            f"says otherwise, batch {budget.batch_size}, at most {budget.max_epochs} epochs of at least "
            f"{budget.min_steps_per_epoch} steps, early stopping on validation loss (patience "
            f"{budget.patience}), best epoch kept, no augmentation (the 2 x 2 panel's runs "
            f"excepted: they all augment). Seeds: {results.seeds}; each seed fixes the labeled "
            "draw, the initialisation and the data order for both variants."
        ),
    ]


def _sections(options: ReportOptions, measured: Measured, setting: str) -> list[Section]:
    """The findings first, then each figure and table under its heading."""
    results = measured.results
    labels_t, depth_t, opt_t = label_table(results), depth_table(results), optimizer_table(results)
    history_t = historical_table(results)
    transfer_study = measured.transfer_study()
    transfer_t = transfer.table(transfer_study, options.dataset, measured.panel, results.seeds)
    semi_study = measured.semi_study()
    semi_t, semi_lines = semi.table(semi_study), semi.findings(semi_study)
    tables = (labels_t, depth_t, opt_t, history_t, transfer_t, semi_t)
    comparisons = sum(len(t.rows) for t in tables)
    findings = [
        *conclusion.label_findings(results),
        *conclusion.depth_findings(results),
        *conclusion.optimizer_findings(results),
        *conclusion.historical_findings(results),
        semi.stronger_alone(semi_study),
        conclusion.caveats(results, comparisons, setting),
    ]
    shown = {p.name for p in (options.out).glob("*.png")}
    movement = pretraining_movement(measured)

    def fig(index: int, caption: str) -> list[Block]:
        name = FIGURES[index]
        return [FigureRef(name, caption)] if name in shown else []

    return [
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
            "Transfer: pre-training on another task or data set",
            [
                *transfer.findings(transfer_study, options.dataset),
                *fig(10, CAPTIONS[10]),
                transfer_t,
            ],
        ),
        Section(
            "What each use of the unlabeled images buys: pre-training x semi-supervised "
            "fine-tuning",
            [*semi_lines, *fig(11, CAPTIONS[11]), semi_t],
        ),
        Section(
            "Literature (others' results on full MNIST)",
            [LITERATURE, comparison_note(setting)],
        ),
    ]
