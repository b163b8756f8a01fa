"""Show that the experiment statistics are right, by simulation on the service's own code.

The in-process mode feeds simulated feedback through the same :class:`SplitReplay` and
sample-ratio check that ``GET /v1/experiments/<name>`` runs on stored rows, so thousands of
experiments take seconds; the live mode (``live.py``) drives a running server instead.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

import numpy as np

from service.experiments.analysis import DEFAULT_TAU
from service.experiments.replay import SplitReplay
from service.experiments.statistics import sample_ratio, wilson


@dataclass(frozen=True)
class Peeking:
    """A/A runs watched after every batch: how often each test ever claimed a difference."""

    runs: int
    looks: int
    alpha: float
    sequential_rejections: int
    fixed_rejections: int
    sequential_by_look: list[float]
    """Share of runs the always-valid test had rejected by each look."""
    fixed_by_look: list[float]

    def rate(self, rejections: int) -> tuple[float, tuple[float, float]]:
        """The false-positive rate with its 95% (Wilson) binomial interval."""
        return rejections / self.runs, wilson(rejections, self.runs)


@dataclass(frozen=True)
class Power:
    """A/B runs: labelled feedback items needed until the always-valid test called the winner."""

    runs: int
    needed: list[int]
    """Per decided run, feedback items (both arms) at the decision."""
    undecided: int
    wrong: int

    def summary(self) -> dict[str, float]:
        if not self.needed:
            return {"median": math.nan, "q1": math.nan, "q3": math.nan}
        q1, median, q3 = (
            statistics.quantiles(self.needed, n=4)
            if len(self.needed) > 1
            else (self.needed[0], self.needed[0], self.needed[0])
        )
        return {"median": median, "q1": q1, "q3": q3}


def _replay(alpha: float, tau: float = DEFAULT_TAU["accuracy"]) -> SplitReplay:
    return SplitReplay("a", ["b"], alpha, lambda _pooled: tau**2)


def peeking_aa(
    runs: int = 200,
    items: int = 4000,
    batch: int = 50,
    accuracy: float = 0.8,
    alpha: float = 0.05,
    seed: int = 0,
) -> Peeking:
    """A/A: both arms right with probability ``accuracy``; look after every ``batch`` items."""
    rng = np.random.default_rng(seed)
    looks = items // batch
    seq_by_look = np.zeros(looks)
    fixed_by_look = np.zeros(looks)
    seq_total = fixed_total = 0
    for _ in range(runs):
        arms = np.where(rng.random(items) < 0.5, "a", "b")
        right = (rng.random(items) < accuracy).astype(float)
        replay = _replay(alpha)
        seq_at = fixed_at = None
        for i in range(items):
            replay.add(str(arms[i]), float(right[i]))
            if (i + 1) % batch:
                continue
            look = (i + 1) // batch - 1
            test = replay.tests.get("b")
            if seq_at is None and test is not None and test.p_value <= alpha:
                seq_at = look
            fixed = replay.fixed("b")
            if fixed_at is None and fixed is not None and fixed.p_value <= alpha:
                fixed_at = look
        if seq_at is not None:
            seq_total += 1
            seq_by_look[seq_at:] += 1
        if fixed_at is not None:
            fixed_total += 1
            fixed_by_look[fixed_at:] += 1
    return Peeking(
        runs,
        looks,
        alpha,
        seq_total,
        fixed_total,
        (seq_by_look / runs).tolist(),
        (fixed_by_look / runs).tolist(),
    )


def power_ab(
    runs: int = 100,
    accuracy_a: float = 0.72,
    accuracy_b: float = 0.80,
    max_items: int = 20_000,
    batch: int = 50,
    alpha: float = 0.05,
    seed: int = 1,
    tau: float = DEFAULT_TAU["accuracy"],
) -> Power:
    """A/B: feedback items (both arms, looked at every ``batch``) until b is called better;
    ``tau`` is the mixing scale, the minimum detectable effect when an experiment has one."""
    rng = np.random.default_rng(seed)
    needed: list[int] = []
    undecided = wrong = 0
    for _ in range(runs):
        replay = _replay(alpha, tau)
        decided = False
        for i in range(max_items):
            arm = "a" if rng.random() < 0.5 else "b"
            p = accuracy_a if arm == "a" else accuracy_b
            replay.add(arm, float(rng.random() < p))
            test = replay.tests.get("b")
            if (i + 1) % batch == 0 and test is not None and test.p_value <= alpha:
                fixed = replay.fixed("b")
                if fixed is not None and fixed.difference < 0:
                    wrong += 1
                else:
                    needed.append(i + 1)
                decided = True
                break
        undecided += not decided
    return Power(runs, needed, undecided, wrong)


@dataclass(frozen=True)
class Ramped:
    """A/A runs ramped part-way from ``before`` to ``after`` (challenger's share of traffic)
    while the requests get harder: how often each analysis ever claimed a difference."""

    runs: int
    items: int
    before: float
    after: float
    accuracies: tuple[float, float]
    """Both arms' accuracy before and after the ramp: the traffic changed, not the arms."""
    alpha: float
    stratified: int
    """False positives of the service's analysis, which compares arms within each period."""
    pooled: int
    """False positives of the same test on the periods pooled, as if the ramp never happened."""

    def rate(self, hits: int) -> tuple[float, tuple[float, float]]:
        return hits / self.runs, wilson(hits, self.runs)


def ramped_aa(
    runs: int = 200,
    items: int = 4000,
    before: float = 0.1,
    after: float = 0.5,
    accuracies: tuple[float, float] = (0.9, 0.7),
    batch: int = 50,
    alpha: float = 0.05,
    seed: int = 3,
) -> Ramped:
    """A/A through a ramp at half-way: watched every ``batch`` items, stratified and pooled."""
    rng = np.random.default_rng(seed)
    stratified = pooled = 0
    half = items // 2
    for _ in range(runs):
        by_period, together = _replay(alpha), _replay(alpha)
        hit_strata = hit_pooled = False
        for i in range(items):
            period = 0 if i < half else 1
            share = before if period == 0 else after
            arm = "b" if rng.random() < share else "a"
            value = float(rng.random() < accuracies[period])
            by_period.add(arm, value, period)
            together.add(arm, value)
            if (i + 1) % batch:
                continue
            for replay, hit in ((by_period, "strata"), (together, "pooled")):
                test = replay.tests.get("b")
                if test is not None and test.p_value <= alpha:
                    if hit == "strata":
                        hit_strata = True
                    else:
                        hit_pooled = True
        stratified += hit_strata
        pooled += hit_pooled
    return Ramped(runs, items, before, after, accuracies, alpha, stratified, pooled)


@dataclass(frozen=True)
class RatioCheck:
    runs: int
    units: int
    healthy_flagged: int
    broken_flagged: int
    loss: float


def sample_ratio_check(
    runs: int = 200, units: int = 10_000, loss: float = 0.1, seed: int = 2
) -> RatioCheck:
    """How often the SRM check fires on healthy 1:1 splits and on ones losing ``loss`` of b."""
    rng = np.random.default_rng(seed)
    healthy = broken = 0
    for _ in range(runs):
        in_b = int(rng.binomial(units, 0.5))
        healthy += sample_ratio([units - in_b, in_b], [1, 1]).mismatch
        kept_b = int(rng.binomial(in_b, 1 - loss))
        broken += sample_ratio([units - in_b, kept_b], [1, 1]).mismatch
    return RatioCheck(runs, units, healthy, broken, loss)


def svg_plot(result: Peeking, batch: int) -> str:
    """Cumulative false-positive rate against feedback items, both tests: a standalone SVG."""
    width, height, left, bottom, top, right = 640, 360, 60, 40, 20, 20
    xs = [(i + 1) * batch for i in range(result.looks)]
    ymax = max(0.1, *result.fixed_by_look, *result.sequential_by_look) * 1.1
    x_max = xs[-1]

    def point(x: float, y: float) -> str:
        px = left + (width - left - right) * x / x_max
        py = height - bottom - (height - top - bottom) * y / ymax
        return f"{px:.1f},{py:.1f}"

    def line(ys: list[float], colour: str) -> str:
        pts = " ".join(point(x, y) for x, y in zip(xs, ys, strict=True))
        return f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{pts}"/>'

    ticks = []
    for k in range(6):
        y = ymax * k / 5
        ticks.append(
            f'<text x="{left - 6}" y="{point(0, y).split(",")[1]}" text-anchor="end" '
            f'font-size="11" dominant-baseline="middle">{y:.2f}</text>'
        )
    for k in range(5):
        x = x_max * k / 4
        px = point(x, 0).split(",")[0]
        ticks.append(
            f'<text x="{px}" y="{height - bottom + 16}" text-anchor="middle" '
            f'font-size="11">{x:.0f}</text>'
        )
    alpha_y = point(0, result.alpha).split(",")[1]
    return "\n".join(
        [
            (
                f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
                f'font-family="sans-serif">'
            ),
            '<rect width="100%" height="100%" fill="white"/>',
            f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" stroke="black"/>',
            f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="black"/>',
            f'<line x1="{left}" y1="{alpha_y}" x2="{width - right}" y2="{alpha_y}" stroke="grey" stroke-dasharray="4 4"/>',
            f'<text x="{width - right}" y="{float(alpha_y) - 4}" text-anchor="end" font-size="11" fill="grey">alpha = {result.alpha:g}</text>',
            *ticks,
            line(result.fixed_by_look, "#d62728"),
            line(result.sequential_by_look, "#1f77b4"),
            f'<text x="{left + 10}" y="{top + 14}" font-size="12" fill="#d62728">fixed-horizon test, peeked after every {batch} items</text>',
            f'<text x="{left + 10}" y="{top + 30}" font-size="12" fill="#1f77b4">always-valid test (mSPRT), same looks</text>',
            f'<text x="{(width + left) / 2}" y="{height - 6}" text-anchor="middle" font-size="12">labelled feedback items (both arms)</text>',
            (
                f'<text x="14" y="{(height - bottom + top) / 2}" font-size="12" text-anchor="middle" '
                f'transform="rotate(-90 14 {(height - bottom + top) / 2})">share of A/A runs with a false positive so far</text>'
            ),
            "</svg>",
        ]
    )


@dataclass(frozen=True)
class Plan:
    """Labelled feedback items per arm to detect ``mde`` over ``base`` with ``power``."""

    base: float
    mde: float
    alpha: float
    alpha_each: float
    power: float
    fixed_per_arm: int
    """The fixed-horizon two-proportion z test's size, read once at it."""
    sequential_per_arm: int | None
    """Per arm, the items by which ``power`` of the simulated experiments had called the
    challenger better with the always-valid test; ``None`` if fewer ever did."""
    simulated: Power


def fixed_horizon_size(base: float, mde: float, alpha: float, power: float) -> int:
    """Items per arm for a two-sided two-proportion z test at ``alpha`` to have ``power``."""
    from service.experiments.distributions import norm_ppf

    p1, p2 = base, base + mde
    pooled = (p1 + p2) / 2
    z_alpha, z_power = norm_ppf(1 - alpha / 2), norm_ppf(power)
    root = z_alpha * math.sqrt(2 * pooled * (1 - pooled)) + z_power * math.sqrt(
        p1 * (1 - p1) + p2 * (1 - p2)
    )
    return math.ceil(root**2 / mde**2)


def plan(
    base: float,
    mde: float,
    alpha: float = 0.05,
    power: float = 0.8,
    arms: int = 2,
    runs: int = 100,
    batch: int = 50,
    seed: int = 0,
) -> Plan:
    """Size an accuracy experiment: the fixed-horizon formula, and the always-valid test's
    need by simulation on the service's own replay (mixing scale ``tau`` = ``mde``, as an
    experiment created with that minimum detectable effect uses)."""
    alpha_each = alpha / (arms - 1)
    fixed = fixed_horizon_size(base, mde, alpha_each, power)
    simulated = power_ab(
        runs=runs,
        accuracy_a=base,
        accuracy_b=base + mde,
        max_items=40 * fixed,
        batch=batch,
        alpha=alpha_each,
        seed=seed,
        tau=mde,
    )
    ranked = sorted(simulated.needed)
    enough = math.ceil(power * runs)  # wrong calls and undecided runs count against it
    sequential = math.ceil(ranked[enough - 1] / 2) if len(ranked) >= enough else None
    return Plan(base, mde, alpha, alpha_each, power, fixed, sequential, simulated)
