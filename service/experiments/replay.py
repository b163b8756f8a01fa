"""The split-mode sequential test, replayed one observation at a time: the metric's
contrasts (:mod:`service.experiments.analysis`), the guardrails'
(:mod:`service.experiments.guardrails`) and the simulations all run through it."""

from __future__ import annotations

from collections.abc import Callable

from service.experiments.statistics import FixedHorizon, Moments, Sequential, fixed_horizon

MIN_PER_ARM = 10
"""Observations each arm needs before the sequential test looks: the variance is estimated."""


class SplitReplay:
    """The split-mode tests, fed one observation at a time in the order feedback arrived.

    Each challenger is compared with the control after every observation of either
    (from MIN_PER_ARM each on), so the always-valid p-value is the running minimum over
    every moment someone could have looked. The simulation drives this same class.

    A ramp changes the weights, and with them who lands in which arm: a period of high
    traffic to the challenger may also be a period of harder requests. So the arms are
    compared within each period of weights, and the periods' differences combined, each
    weighted by its observations (post-stratification): with one period it is the plain
    difference of means.
    """

    def __init__(
        self,
        control: str,
        challengers: list[str],
        alpha: float,
        tau2: Callable[[float], float],
        *,
        shares: bool = False,
    ) -> None:
        self.control = control
        self.shares = shares
        """Whether every observation is 0 or 1 (a share of requests): then no arm's variance
        is taken below a Bernoulli's at its shrunk share, so an arm that failed every
        request and a control that failed none still make a test."""
        self.challengers = challengers
        self.alpha_each = alpha / len(challengers)
        self.tau2 = tau2
        self.moments = {name: Moments() for name in [control, *challengers]}
        self.strata: dict[tuple[int, str], Moments] = {}
        self.periods: list[int] = []
        self.tests: dict[str, Sequential] = {}
        self.trajectory: dict[str, list[list[float]]] = {name: [] for name in challengers}
        self.seen = 0

    def add(self, arm: str, value: float, period: int = 0) -> None:
        if arm not in self.moments:
            return
        self.seen += 1
        self.moments[arm].add(value)
        if period not in self.periods:
            self.periods.append(period)
        self.strata.setdefault((period, arm), Moments()).add(value)
        a = self.moments[self.control]
        for name in self.challengers if arm == self.control else [arm]:
            b = self.moments[name]
            if a.n < MIN_PER_ARM or b.n < MIN_PER_ARM:
                continue
            estimate = self.estimate(name)
            if estimate is None or estimate[1] <= 0:
                continue
            difference, variance = estimate
            if name not in self.tests:
                pooled = (a.m2 + b.m2) / max(1, a.n + b.n - 2)
                self.tests[name] = Sequential(self.alpha_each, self.tau2(pooled))
            test = self.tests[name]
            test.update(difference, variance)
            fixed = fixed_horizon(difference, variance, self.alpha_each)
            self.trajectory[name].append([self.seen, test.p_value, fixed.p_value])

    def estimate(self, name: str) -> tuple[float, float] | None:
        """``name`` minus the control, and its variance, combined over the periods in which
        both arms have two or more observations; None while no period has."""
        total = difference = variance = 0.0
        for period in self.periods:
            a = self.strata.get((period, self.control))
            b = self.strata.get((period, name))
            if a is None or b is None or a.n < 2 or b.n < 2:
                continue
            weight = a.n + b.n
            total += weight
            difference += weight * (b.mean - a.mean)
            variance += weight**2 * _variance(a, b, self.shares)
        if total == 0:
            return None
        return difference / total, variance / total**2

    def fixed(self, name: str) -> FixedHorizon | None:
        """The fixed-horizon test of ``name`` against the control on the data so far."""
        estimate = self.estimate(name) if name in self.tests else None
        if estimate is None:
            return None
        return fixed_horizon(estimate[0], estimate[1], self.alpha_each)


def _variance(a: Moments, b: Moments, shares: bool = False) -> float:
    """The variance of ``b.mean - a.mean``: Welch's, but never below the pooled estimate's.

    A small arm's own variance is often zero (ten right answers out of ten at 90% accuracy
    happen a third of the time), and Welch's estimate then makes a chance difference look
    certain: with 1:9 weights that gave a third of A/A experiments a false winner. The pooled
    estimate holds where the arms' variances are equal (as under "no difference" for
    accuracy); taking the larger of the two keeps Welch's where the arms' really differ.
    """
    welch = a.variance / a.n + b.variance / b.n
    pooled = (a.m2 + b.m2) / (a.n + b.n - 2) * (1 / a.n + 1 / b.n)
    if shares:
        welch = max(welch, _bernoulli(a) / a.n + _bernoulli(b) / b.n)
    return max(welch, pooled)


def _bernoulli(arm: Moments) -> float:
    """A share's variance at its estimate shrunk half an observation towards one half."""
    share = (arm.mean * arm.n + 0.5) / (arm.n + 1)
    return share * (1 - share)
