"""The 2 x 2 panel: pre-training (none / the budget's method) x fine-tuning (supervised / FixMatch).

Unlabeled images can help a classifier twice: pre-training learns a start from them, and
semi-supervised fine-tuning (:mod:`models.fixmatch`) learns from them beside the labels. The
served pair uses both at once, so it cannot say which one pays. The panel trains the CNN all
four ways at each of its label budgets and seeds, every cell with the same supervised recipe
(the build's augmentation included, unlike the main study), and compares runs of the same seed:
pre-training alone, semi-supervised fine-tuning alone and both, each against the cell that has
neither, and pre-training on top of semi-supervised fine-tuning (both against FixMatch from a
random start). Each comparison is a paired t-test over seeds and, on the seed ``headstart
build`` serves, McNemar's test image by image.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from models.methods import Method
from models.modes import Mode
from models.report.budgets import MAIN_OPTIMIZER, Budget
from models.report.cache import RunCache
from models.report.conclusion import join_words, signed_pp
from models.report.plan import RunSpec, resolve_labels
from models.report.stats import Interval, Paired, paired_test, t_interval
from models.report.tables import Table, pct, pp_interval
from models.report.transfer import SERVED_SEED, difference_cells, mcnemar
from service.statistics import McNemarResult

STUDY = "semi"


@dataclass(frozen=True)
class Cell:
    """One corner of the panel: whether the start is pre-trained, whether fine-tuning is
    semi-supervised."""

    pretrained: bool
    semi: bool

    @property
    def mode(self) -> Mode:
        return Mode.fixmatch if self.semi else Mode.supervised

    def name(self, method: Method) -> str:
        return f"{method if self.pretrained else Method.none} + {self.mode}"


NEITHER, PRETRAINED, SEMI, BOTH = (
    Cell(pretrained=False, semi=False),
    Cell(pretrained=True, semi=False),
    Cell(pretrained=False, semi=True),
    Cell(pretrained=True, semi=True),
)
CELLS = (NEITHER, PRETRAINED, SEMI, BOTH)


@dataclass(frozen=True)
class Effect:
    """What one comparison measures: ``treated`` minus ``control`` of the same seed."""

    name: str
    treated: Cell
    control: Cell


EFFECTS = (
    Effect("pre-training alone", PRETRAINED, NEITHER),
    Effect("semi-supervised alone", SEMI, NEITHER),
    Effect("both", BOTH, NEITHER),
    Effect("pre-training on top of semi-supervised", BOTH, SEMI),
)


@dataclass(frozen=True)
class SemiPanel:
    """The panel's method, label budgets and seeds, resolved against the report's pool."""

    budget: Budget
    all_labels: int
    report_seeds: int

    @property
    def method(self) -> Method:
        return self.budget.semi_method

    @property
    def seeds(self) -> int:
        """The budget's panel seeds, or the report's if it has fewer."""
        return min(self.budget.semi_seeds, self.report_seeds)

    def labels(self) -> list[int]:
        return sorted({resolve_labels(k, self.all_labels) for k in self.budget.semi_labels})

    def spec(self, cell: Cell, seed: int, labels: int) -> RunSpec:
        return RunSpec(
            "cnn",
            len(self.budget.cnn_channels),
            self.method if cell.pretrained else Method.none,
            seed,
            MAIN_OPTIMIZER,
            labels,
            mode=cell.mode,
            augment=True,
        )

    def plan(self) -> list[RunSpec]:
        return sorted(
            {
                self.spec(cell, seed, k)
                for k in self.labels()
                for cell in CELLS
                for seed in range(self.seeds)
            }
        )


@dataclass(frozen=True)
class SemiComparison:
    """One effect at one label budget, over the panel's seeds."""

    effect: Effect
    labels_per_class: int
    treated: Interval
    control: Interval
    test: Paired
    mcnemar: McNemarResult | None
    """On the served seed's test images; ``None`` if either run kept no per-image outcome."""


@dataclass(frozen=True)
class SemiStudy:
    """Every cell's accuracy per seed, and every effect at every label budget."""

    panel: SemiPanel
    accuracies: dict[tuple[Cell, int], list[float]]
    """Test accuracies by (cell, labels per class), in seed order."""
    comparisons: list[SemiComparison]

    def cell(self, cell: Cell, labels: int) -> Interval:
        return t_interval(self.accuracies[cell, labels])


def study(
    panel: SemiPanel,
    records: Mapping[RunSpec, Mapping[str, Any]],
    cache: RunCache,
    keys: Mapping[RunSpec, str],
) -> SemiStudy:
    """Every effect at every label budget, paired by seed."""
    accuracies = {
        (cell, k): [
            float(records[panel.spec(cell, seed, k)]["test_accuracy"])
            for seed in range(panel.seeds)
        ]
        for k in panel.labels()
        for cell in CELLS
    }
    comparisons = []
    for k in panel.labels():
        for effect in EFFECTS:
            treated, control = accuracies[effect.treated, k], accuracies[effect.control, k]
            comparisons.append(
                SemiComparison(
                    effect,
                    k,
                    t_interval(treated),
                    t_interval(control),
                    paired_test(treated, control),
                    mcnemar(
                        cache,
                        keys,
                        panel.spec(effect.treated, SERVED_SEED, k),
                        panel.spec(effect.control, SERVED_SEED, k),
                    ),
                )
            )
    return SemiStudy(panel, accuracies, comparisons)


def table(found: SemiStudy) -> Table:
    """One row per label budget and effect."""
    panel = found.panel
    budget, method, semi = panel.budget, panel.method, panel.budget.semi
    result = Table(
        STUDY,
        "Pre-training x semi-supervised fine-tuning (CNN, augmented recipe)",
        [
            "Labels/class",
            "Seeds",
            "Effect",
            "Cell",
            "Cell acc %",
            "Against",
            "Against acc %",
            "Gain (pp)",
            "95% CI (pp)",
            "p (paired t)",
            f"McNemar p (seed {SERVED_SEED})",
            "Only cell right / only against right",
        ],
        note=(
            f"CNN conv {budget.cnn_channels} + dense {budget.cnn_dense}. Every cell is "
            f"fine-tuned with the same supervised recipe: {MAIN_OPTIMIZER}, batch "
            f"{budget.batch_size}, at most {budget.max_epochs} epochs, and the build's "
            "augmentation (shift, rotation, zoom, stroke width, contrast), which the main study "
            f"leaves out. Pre-training is {method} on the unlabeled pool, or none; fine-tuning "
            "is supervised, or FixMatch, which also learns from the unlabeled pool (confident "
            f"pseudo-labels of a weak view taught on a strong view; at most {semi.epochs} checks "
            f"of {semi.steps_per_epoch} steps, {semi.ratio} pool images per labelled one, "
            f"threshold {semi.threshold:g}, lr {semi.lr:g}). Gain = cell minus 'against' of the "
            f"same seed over {panel.seeds} seeds (95% t-interval, paired t-test); McNemar's "
            f"exact test compares the two seed-{SERVED_SEED} models test image by test image."
        ),
    )
    for c in found.comparisons:
        result.rows.append(
            [
                str(c.labels_per_class),
                str(c.test.diff.n),
                c.effect.name,
                c.effect.treated.name(method),
                pct(c.treated.mean),
                c.effect.control.name(method),
                pct(c.control.mean),
                *difference_cells(c.test, c.mcnemar),
            ]
        )
    return result


def _verdict(test: Paired) -> str:
    if not test.diff.excludes_zero():
        return "unclear"
    return "helped" if test.diff.mean > 0 else "hurt"


def _effect_line(rows: Sequence[SemiComparison], words: str) -> str:
    parts: list[str] = []
    for verdict, phrase in (
        ("helped", "helped at"),
        ("hurt", "hurt at"),
        ("unclear", "added nothing measurable (95% CI includes 0) at"),
    ):
        chosen = [c for c in rows if _verdict(c.test) == verdict]
        if chosen:
            budgets = join_words([str(c.labels_per_class) for c in chosen])
            gains = join_words([signed_pp(c.test.diff.mean) for c in chosen])
            parts.append(f"{phrase} {budgets} labels per class ({gains})")
    return f"{words} {'; '.join(parts)}."


def stronger_alone(found: SemiStudy) -> str:
    """Which factor gave more on its own at each label budget: the two one-factor cells
    against each other, paired by seed."""
    method = found.panel.method
    parts = []
    for k in found.panel.labels():
        alone = paired_test(found.accuracies[PRETRAINED, k], found.accuracies[NEITHER, k])
        semi = paired_test(found.accuracies[SEMI, k], found.accuracies[NEITHER, k])
        versus = paired_test(found.accuracies[SEMI, k], found.accuracies[PRETRAINED, k])
        if not versus.diff.excludes_zero():
            winner = "neither clearly"
        else:
            winner = "FixMatch" if versus.diff.mean > 0 else f"{method} pre-training"
        parts.append(
            f"{k}: {winner} (FixMatch {signed_pp(semi.diff.mean)}, {method} {signed_pp(alone.diff.mean)}; "
            f"FixMatch minus {method} {signed_pp(versus.diff.mean)}, 95% CI "
            f"[{signed_pp(versus.diff.low)}, {signed_pp(versus.diff.high)}])"
        )
    return (
        "2 x 2 panel, which use of the unlabeled images gave more on its own, by labels per "
        "class: " + "; ".join(parts) + "."
    )


def findings(found: SemiStudy) -> list[str]:
    """Plain words, from the numbers only: what each factor gave alone and together, which one
    gave more, and where pre-training added nothing."""
    method = found.panel.method
    by_effect = {e: [c for c in found.comparisons if c.effect == e] for e in EFFECTS}
    alone, semi_alone, both, on_top = EFFECTS
    lines = [
        _effect_line(
            by_effect[alone], f"2 x 2 panel (CNN, augmented recipe): {method} pre-training alone"
        ),
        _effect_line(by_effect[semi_alone], "FixMatch fine-tuning alone (from a random start)"),
        _effect_line(by_effect[both], f"Both ({method} start, FixMatch fine-tuning)"),
    ]
    lines.append(stronger_alone(found))
    nothing = [c for c in by_effect[on_top] if not c.test.diff.excludes_zero()]
    clear = [c for c in by_effect[on_top] if c not in nothing]
    if clear:
        lines.append(_effect_line(clear, f"On top of FixMatch, {method} pre-training"))
    if nothing:
        lines.append(
            f"Where fine-tuning is already semi-supervised (FixMatch), {method} pre-training "
            f"added nothing measurable at {join_words([str(c.labels_per_class) for c in nothing])} "
            "labels per class: the 95% interval of its gain includes 0 ("
            + "; ".join(
                f"{c.labels_per_class}: {signed_pp(c.test.diff.mean)}, {pp_interval(c.test.diff)}"
                for c in nothing
            )
            + ")."
        )
    return lines
