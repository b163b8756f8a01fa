"""Plain-language findings, worded from the measured comparisons only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from itertools import pairwise

from models.methods import Method
from models.report.budgets import MAIN_OPTIMIZER
from models.report.plan import RunSpec
from models.report.stats import paired_test
from models.report.tables import Comparison, Results

ARCH_NAMES = {"mlp": "MLP", "cnn": "CNN"}


def verdict(c: Comparison) -> str:
    """``helped``, ``hurt`` or ``unclear``: whether the gain's 95% interval excludes zero."""
    if not c.test.diff.excludes_zero():
        return "unclear"
    return "helped" if c.test.diff.mean > 0 else "hurt"


def signed_pp(value: float) -> str:
    return f"{100 * value:+.1f} pp"


def join_words(items: Sequence[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _budgets(rows: Sequence[Comparison]) -> str:
    return join_words([str(c.labels_per_class) for c in rows])


def label_findings(results: Results) -> list[str]:
    study = results.label_study()
    lines: list[str] = []
    for arch in ("mlp", "cnn"):
        for method in results.methods(arch):
            rows = [c for c in study if c.arch == arch and c.method == method]
            parts: list[str] = []
            for word, phrase in (
                ("helped", "helped at"),
                ("hurt", "hurt at"),
                ("unclear", "made no clear difference at"),
            ):
                chosen = [c for c in rows if verdict(c) == word]
                if chosen:
                    gains = join_words([signed_pp(c.test.diff.mean) for c in chosen])
                    parts.append(f"{phrase} {_budgets(chosen)} labels per class ({gains})")
            lines.append(f"{ARCH_NAMES[arch]} with {method} pre-training {'; '.join(parts)}.")
    best = max(study, key=lambda c: c.test.diff.mean)
    lines.append(
        f"The largest mean gain was {signed_pp(best.test.diff.mean)} "
        f"({ARCH_NAMES[best.arch]}, {best.method}, {best.labels_per_class} labels per class)."
    )
    most = max(c.labels_per_class for c in study)
    at_most = [c for c in study if c.labels_per_class == most]
    helped = [c for c in at_most if verdict(c) == "helped"]
    lines.append(
        f"With all {most} labels per class, pre-training clearly helped in {len(helped)} of "
        f"{len(at_most)} pairings."
    )
    return lines


def depth_findings(results: Results) -> list[str]:
    study = results.depth_study()
    lines: list[str] = []
    for method in results.budget.depth_methods:
        rows = sorted((c for c in study if c.method == method), key=lambda c: c.depth)
        gains = [c.test.diff.mean for c in rows]
        if all(b > a for a, b in pairwise(gains)):
            trend = "grew with every added layer"
        elif all(b < a for a, b in pairwise(gains)):
            trend = "shrank with every added layer"
        else:
            trend = "did not change steadily with depth"
        shallow, deep = rows[0].test.diff, rows[-1].test.diff
        overlap = not (shallow.high < deep.low or deep.high < shallow.low)
        caveat = " (the intervals of the shallowest and deepest net overlap)" if overlap else ""
        per_depth = join_words(
            [f"{signed_pp(g)} at {c.depth}" for g, c in zip(gains, rows, strict=True)]
        )
        base = join_words([f"{100 * c.baseline.mean:.1f}%" for c in rows])
        lines.append(
            f"Depth, {method}: the gain {trend}{caveat}: {per_depth} hidden layers "
            f"({rows[0].labels_per_class} labels per class; baseline accuracy {base})."
        )
    return lines


def optimizer_findings(results: Results) -> list[str]:
    study = results.optimizer_study()
    if not study:
        return []
    method = study[0].method
    best_base = max(study, key=lambda c: c.baseline.mean)
    main = next((c for c in study if c.optimizer == MAIN_OPTIMIZER), study[-1])
    seeds = range(results.seeds)
    spec = RunSpec("mlp", main.depth, method, 0, main.optimizer, main.labels_per_class)
    treated = [results.accuracy(replace(spec, seed=s)) for s in seeds]
    best_spec = RunSpec(
        "mlp", main.depth, Method.none, 0, best_base.optimizer, main.labels_per_class
    )
    control = [results.accuracy(replace(best_spec, seed=s)) for s in seeds]
    versus = paired_test(treated, control)
    if versus.diff.excludes_zero() and versus.diff.mean > 0:
        answer = "did not replace pre-training: the pre-trained net stayed ahead"
    elif versus.diff.excludes_zero():
        answer = "beat the pre-trained net"
    else:
        answer = "closed the gap to within noise"
    helped = [c.optimizer for c in study if verdict(c) == "helped"]
    hurt = [c.optimizer for c in study if verdict(c) == "hurt"]
    return [
        (
            f"Optimisers: the best baseline optimiser ({best_base.optimizer}, "
            f"{100 * best_base.baseline.mean:.1f}%) {answer} ({method} + {main.optimizer}: "
            f"{100 * main.pretrained.mean:.1f}%; difference {signed_pp(versus.diff.mean)}, 95% CI "
            f"[{signed_pp(versus.diff.low)}, {signed_pp(versus.diff.high)}])."
        ),
        f"Pre-training clearly helped with {len(helped)} of {len(study)} optimisers"
        + (f" ({join_words(helped)})" if helped else "")
        + (f" and clearly hurt with {join_words(hurt)}" if hurt else "")
        + ".",
    ]


def historical_findings(results: Results) -> list[str]:
    study = results.historical_study()
    lines = []
    for c in (c for c in study if c.init == "naive"):
        sound = next(s for s in study if s.init == "sound" and s.method == c.method)
        lines.append(
            f"Historical setting ({c.depth} sigmoid layers, plain SGD, naive initialisation), "
            f"{c.method}: pre-training {verdict(c)} ({signed_pp(c.test.diff.mean)}: "
            f"{100 * c.baseline.mean:.1f}% to {100 * c.pretrained.mean:.1f}%); with Glorot "
            f"initialisation the same SGD baseline reached {100 * sound.baseline.mean:.1f}% "
            f"and the gain was {signed_pp(sound.test.diff.mean)} (within {results.budget.max_epochs} "
            "fine-tuning epochs)."
        )
    return lines


def caveats(results: Results, comparisons: int, setting: str) -> str:
    return (
        f"Every interval is a 95% t-interval over {results.seeds} seeds, one comparison at a "
        f"time; with {comparisons} comparisons some will exclude zero by chance alone, so a "
        f"single borderline result is weak evidence. All numbers come from {setting} and "
        "small budgets; they say what happened here, not what happens at MNIST's full scale "
        "(see the literature table)."
    )
