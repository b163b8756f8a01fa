"""The plain-words verdict on an experiment, from its tests."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Contrast:
    """One challenger against the control, as the decision needs it."""

    arm: str
    difference: float
    p_value: float
    """The always-valid p-value: the decision may be read at any time."""
    interval: tuple[float, float] | None
    """The confidence sequence on the difference."""


@dataclass(frozen=True)
class Decision:
    state: str
    """``collecting``, ``stopped`` (before any verdict), ``winner``, ``no_difference``,
    ``guardrail_breached``, ``sample_ratio_mismatch`` or ``feedback_rate_mismatch``."""
    message: str
    winner: str | None = None


def decide(
    control: str,
    contrasts: list[Contrast],
    *,
    alpha: float,
    mde: float | None,
    metric: str,
    srm_p: float | None,
    srm_flagged: bool,
    feedback_p: float | None = None,
    feedback_flagged: bool = False,
    breaches: list[str] | None = None,
    stopped: bool = False,
) -> Decision:
    """Verdict at level ``alpha`` (split evenly over the contrasts: Bonferroni). A breached
    guardrail (each one's message in ``breaches``) comes before any winner: a challenger
    that made something worse is not promoted, however much better its metric is."""
    if srm_flagged:
        return Decision(
            "sample_ratio_mismatch",
            f"sample ratio mismatch (p = {srm_p:.2g} < 0.001): the arms did not get the "
            "traffic their weights promise, so assignment or logging is broken; do not "
            "trust these results",
        )
    if feedback_flagged:
        return Decision(
            "feedback_rate_mismatch",
            f"feedback rate mismatch (p = {feedback_p:.2g} < 0.001): the arms got feedback on "
            f"different shares of their requests, so {metric} is measured on different kinds "
            "of request in each arm; do not trust these results",
        )
    if breaches:
        return Decision("guardrail_breached", "; ".join(breaches))
    level = alpha / max(1, len(contrasts))
    significant = [c for c in contrasts if c.p_value <= level]
    if significant:
        best = max(significant, key=lambda c: c.difference)
        if best.difference > 0:
            return Decision(
                "winner",
                f"arm {best.arm} better than {control} on {metric} at level {alpha:g} "
                f"(difference {best.difference:+.4g}, always-valid p = {best.p_value:.2g})",
                winner=best.arm,
            )
        worst = min(significant, key=lambda c: c.difference)
        return Decision(
            "winner",
            f"arm {control} better than {worst.arm} on {metric} at level {alpha:g} "
            f"(difference {worst.difference:+.4g}, always-valid p = {worst.p_value:.2g})",
            winner=control,
        )
    if (
        mde is not None
        and contrasts
        and all(
            c.interval is not None and -mde < c.interval[0] and c.interval[1] < mde
            for c in contrasts
        )
    ):
        return Decision(
            "no_difference",
            f"no difference larger than the minimum detectable effect {mde:g} on {metric}: "
            "every confidence sequence lies inside it",
        )
    if stopped:
        return Decision(
            "stopped", "stopped before a verdict: no arm was better at this level when it stopped"
        )
    return Decision("collecting", "still collecting: no arm is better yet at this level")
