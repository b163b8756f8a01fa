"""The transfer panel: pre-training on another task or data set, against the target's own pool.

Classic pre-training trains on one task or data set and reuses the weights on another. For one
architecture (the CNN) the panel compares, at the budget's label budgets and seeds, four starts
of the same fine-tuning: random (``none``), unsupervised on the target's own unlabeled pool,
supervised on a source task's labels, and unsupervised on the source's images. Two settings,
derived from the report's data set (for the default mnist-5k: digits 0-4 as the source task for
the target digits 5-9, and scikit-learn's 8x8 digits, framed like MNIST, as the source data set
for mnist-5k itself). Every arm is compared with the random start of the same seed (paired
t-test over seeds) and, on the seed ``headstart build`` serves, image by image (McNemar).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from models import defaults
from models.methods import Method
from models.report.budgets import MAIN_OPTIMIZER, Budget
from models.report.cache import RunCache
from models.report.plan import RunSpec, resolve_labels
from models.report.stats import Interval, Paired, paired_test, t_interval
from models.report.tables import Table, p_value, pct, pp_interval
from models.sources import split_classes
from service.statistics import McNemarResult, mcnemar_exact

SERVED_SEED = defaults.SEED
"""The seed whose variants ``headstart build`` exports and serves: McNemar's test runs on it."""

STUDY = "transfer"


@dataclass(frozen=True)
class Setting:
    """One target and the source (another task or data set) its pre-training may come from."""

    target: str
    """The target's spec; "" is the report's data set."""
    source: str
    kind: str
    """``task``: other classes of the same data set; ``dataset``: another data set."""

    def target_name(self, dataset: str) -> str:
        return self.target or dataset


@dataclass(frozen=True)
class Arm:
    """One start of the fine-tuning."""

    name: str
    supervised: bool
    from_source: bool


ARMS = (
    Arm("random start (none)", supervised=False, from_source=False),
    Arm("unsupervised, target's pool", supervised=False, from_source=False),
    Arm("supervised, source labels", supervised=True, from_source=True),
    Arm("unsupervised, source images", supervised=False, from_source=True),
)
"""The first is the baseline every other arm is compared with."""


def settings(dataset: str, num_classes: int) -> tuple[Setting, ...]:
    """The panel's settings for a report on ``dataset``.

    Its first classes as the source task for the others (when it has at least 4 classes and is
    not a class subset already), and scikit-learn's digits as the source data set (mnist-5k for
    a report on the digits themselves)."""
    whole, classes = split_classes(dataset)
    found: list[Setting] = []
    if classes is None and num_classes >= 4:
        half = num_classes // 2
        found.append(
            Setting(f"{dataset}:{half}-{num_classes - 1}", f"{dataset}:0-{half - 1}", "task")
        )
    found.append(Setting("", "mnist-5k" if whole == "digits" else "digits", "dataset"))
    return tuple(found)


@dataclass(frozen=True)
class Panel:
    """The panel's settings, method and label budgets, resolved against each target's pool."""

    budget: Budget
    settings: tuple[Setting, ...]
    all_labels: Mapping[str, int]
    """The 'all labels' budget of each setting's target (by ``Setting.target``)."""

    @property
    def method(self) -> Method:
        """The unsupervised method of the panel: the budget's."""
        return self.budget.transfer_method

    @property
    def depth(self) -> int:
        return len(self.budget.cnn_channels)

    def labels(self, setting: Setting) -> list[int]:
        every = self.all_labels[setting.target]
        return sorted({resolve_labels(k, every) for k in self.budget.transfer_labels})

    def spec(self, setting: Setting, arm: Arm, seed: int, labels: int) -> RunSpec:
        if arm is ARMS[0]:
            method = Method.none
        else:
            method = Method.supervised if arm.supervised else self.method
        return RunSpec(
            "cnn",
            self.depth,
            method,
            seed,
            MAIN_OPTIMIZER,
            labels,
            dataset=setting.target,
            pretrain_dataset=setting.source if arm.from_source else "",
        )

    def plan(self, seeds: int) -> list[RunSpec]:
        return sorted(
            {
                self.spec(setting, arm, seed, k)
                for setting in self.settings
                for k in self.labels(setting)
                for arm in ARMS
                for seed in range(seeds)
            }
        )


@dataclass(frozen=True)
class TransferComparison:
    """One arm against the random start, over the same seeds, at one label budget."""

    setting: Setting
    arm: Arm
    labels_per_class: int
    pretrained: Interval
    baseline: Interval
    test: Paired
    mcnemar: McNemarResult | None
    """On the served seed's test images; ``None`` if either run kept no per-image outcome."""
    method: Method = Method.none
    """The arm's pre-training method."""


def study(
    panel: Panel,
    records: Mapping[RunSpec, Mapping[str, Any]],
    cache: RunCache,
    keys: Mapping[RunSpec, str],
    seeds: int,
) -> list[TransferComparison]:
    """Every arm but the random start, for each setting and label budget."""
    found: list[TransferComparison] = []
    for setting in panel.settings:
        for k in panel.labels(setting):
            control_spec = panel.spec(setting, ARMS[0], SERVED_SEED, k)
            control = [_accuracy(records, replace(control_spec, seed=s)) for s in range(seeds)]
            for arm in ARMS[1:]:
                spec = panel.spec(setting, arm, SERVED_SEED, k)
                treated = [_accuracy(records, replace(spec, seed=s)) for s in range(seeds)]
                found.append(
                    TransferComparison(
                        setting,
                        arm,
                        k,
                        t_interval(treated),
                        t_interval(control),
                        paired_test(treated, control),
                        mcnemar(cache, keys, spec, control_spec),
                        spec.method,
                    )
                )
    return found


def _accuracy(records: Mapping[RunSpec, Mapping[str, Any]], spec: RunSpec) -> float:
    return float(records[spec]["test_accuracy"])


def mcnemar(
    cache: RunCache, keys: Mapping[RunSpec, str], treated: RunSpec, control: RunSpec
) -> McNemarResult | None:
    """McNemar's exact test of two runs' per-image test outcomes (kept for the served seed
    only); ``None`` if either run kept none."""
    a = cache.arrays(keys[treated]).get("correct")
    b = cache.arrays(keys[control]).get("correct")
    if a is None or b is None or a.shape != b.shape:
        return None
    a, b = a.astype(bool), b.astype(bool)
    return mcnemar_exact(int(np.count_nonzero(a & ~b)), int(np.count_nonzero(b & ~a)))


def source_kind(setting: Setting) -> str:
    return "other classes" if setting.kind == "task" else "another data set"


def source_words(setting: Setting, dataset: str) -> str:
    return f"{setting.source} ({source_kind(setting)}) to {setting.target_name(dataset)}"


def table(
    comparisons: Sequence[TransferComparison], dataset: str, panel: Panel, seeds: int
) -> Table:
    """The panel's comparisons, one row per setting, arm and label budget."""
    result = Table(
        STUDY,
        "Transfer: pre-training on another task or data set (CNN)",
        [
            "Target",
            "Source",
            "Pre-training",
            "Labels/class",
            "Seeds",
            "Pre-trained acc %",
            "Random start acc %",
            "Gain (pp)",
            "95% CI (pp)",
            "p (paired t)",
            f"McNemar p (seed {SERVED_SEED})",
            "Only pre-trained right / only random right",
        ],
        note=(
            f"CNN conv {panel.budget.cnn_channels} + dense {panel.budget.cnn_dense}, the main "
            f"study's fine-tuning recipe; unsupervised pre-training is {panel.method}; "
            "supervised pre-training trains the encoder on the source's labels under a head "
            "that is then discarded. Gain = arm minus the random start of the same seed over "
            f"{seeds} seeds (95% t-interval, paired t-test); McNemar's exact test compares the "
            f"two seed-{SERVED_SEED} models test image by test image. Source images are "
            "conformed to the target's input (size, polarity, MNIST framing); no target test "
            "or validation image is ever pre-trained on."
        ),
    )
    for c in comparisons:
        result.rows.append(
            [
                c.setting.target_name(dataset),
                f"{c.setting.source} ({source_kind(c.setting)})",
                c.arm.name,
                str(c.labels_per_class),
                str(c.test.diff.n),
                pct(c.pretrained.mean),
                pct(c.baseline.mean),
                *difference_cells(c.test, c.mcnemar),
            ]
        )
    return result


def difference_cells(test: Paired, mc: McNemarResult | None) -> list[str]:
    """A paired comparison's gain, 95% interval and p-value, then McNemar's p and how many
    test images only one of the two served-seed models got right (``n/a`` without them)."""
    return [
        f"{100 * test.diff.mean:+.2f}",
        pp_interval(test.diff),
        p_value(test.p),
        "n/a" if mc is None else p_value(mc.p_value),
        "n/a" if mc is None else f"{mc.only_a_correct} / {mc.only_b_correct}",
    ]


def _verdict(c: TransferComparison) -> str:
    if not c.test.diff.excludes_zero():
        return "made no clear difference"
    return "helped" if c.test.diff.mean > 0 else "hurt"


def findings(comparisons: Sequence[TransferComparison], dataset: str) -> list[str]:
    """Plain words, worded from the comparisons only: per setting, what each start did at the
    fewest labels, and which start came out best there."""
    lines: list[str] = []
    settings_seen: list[Setting] = []
    for c in comparisons:
        if c.setting not in settings_seen:
            settings_seen.append(c.setting)
    for setting in settings_seen:
        rows = [c for c in comparisons if c.setting == setting]
        fewest = min(c.labels_per_class for c in rows)
        first = [c for c in rows if c.labels_per_class == fewest]
        parts = [
            f"{c.arm.name} {_verdict(c)} ({100 * c.test.diff.mean:+.1f} pp, "
            f"{100 * c.pretrained.mean:.1f}% against {100 * c.baseline.mean:.1f}%)"
            for c in first
        ]
        best = max(first, key=lambda c: c.pretrained.mean)
        lines.append(
            f"Transfer, {source_words(setting, dataset)}, {fewest} labels per class: "
            + "; ".join(parts)
            + f". Best start there: {best.arm.name}."
        )
        most = max(c.labels_per_class for c in rows)
        if most != fewest:
            last = [c for c in rows if c.labels_per_class == most]
            clear = [
                f"{c.arm.name} {_verdict(c)} ({100 * c.test.diff.mean:+.1f} pp)"
                for c in last
                if _verdict(c) != "made no clear difference"
            ]
            lines.append(
                f"With {most} labels per class: "
                + ("; ".join(clear) if clear else "no start differed clearly from the random one")
                + "."
            )
    return lines
