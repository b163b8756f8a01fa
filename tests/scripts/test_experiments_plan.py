"""``headstart experiments plan``: sizes that deliver the power they promise."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from benchmarks.experiment_simulation import fixed_horizon_size
from scripts.cli import main


@pytest.mark.parametrize(("base", "mde"), [(0.91, 0.02), (0.5, 0.05), (0.72, 0.08)])
def test_the_fixed_horizon_size_has_the_power_it_promises(base: float, mde: float) -> None:
    n = fixed_horizon_size(base, mde, alpha=0.05, power=0.8)
    rng = np.random.default_rng(0)
    runs = 4000
    a = rng.binomial(n, base, runs) / n
    b = rng.binomial(n, base + mde, runs) / n
    pooled = (a + b) / 2
    z = (b - a) / np.sqrt(2 * pooled * (1 - pooled) / n)
    power = float(np.mean(2 * stats.norm.sf(np.abs(z)) <= 0.05))
    # 4,000 runs: a binomial standard error of 0.006 around 0.8.
    assert 0.78 <= power <= 0.83, (n, power)
    smaller = fixed_horizon_size(base, mde, alpha=0.05, power=0.8) - n // 4
    a = rng.binomial(smaller, base, runs) / smaller
    b = rng.binomial(smaller, base + mde, runs) / smaller
    pooled = (a + b) / 2
    z = (b - a) / np.sqrt(2 * pooled * (1 - pooled) / smaller)
    assert float(np.mean(2 * stats.norm.sf(np.abs(z)) <= 0.05)) < 0.78


def test_plan_prints_both_tests_and_the_always_valid_one_needs_more(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "plan.json"
    args = ["--base", "0.72", "--mde", "0.08", "--runs", "40", "--json", str(out)]
    code = main(["experiments", "plan", *args])
    printed = capsys.readouterr().out
    assert code == 0, printed
    plan = json.loads(out.read_text())
    assert plan["fixed_per_arm"] == fixed_horizon_size(0.72, 0.08, 0.05, 0.8)
    assert f"{plan['fixed_per_arm']:,} labelled items per arm" in printed
    assert plan["sequential_per_arm"] > plan["fixed_per_arm"]
    assert f"{plan['sequential_per_arm']:,} labelled items per arm" in printed


def test_more_arms_share_alpha(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["experiments", "plan", "--base", "0.72", "--mde", "0.08", "--arms", "3"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "(0.025 per contrast)" in printed
    assert f"{fixed_horizon_size(0.72, 0.08, 0.025, 0.8):,} labelled" in printed


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--base", "1.2", "--mde", "0.02"], "--base is an accuracy between 0 and 1"),
        (["--base", "0.99", "--mde", "0.02"], "leaves up to 0.01"),
        (["--base", "0.9", "--mde", "0.02", "--arms", "1"], "--arms counts the control too"),
        (["--base", "0.9", "--mde", "0.02", "--power", "0.3"], "--power must be at least 0.5"),
    ],
)
def test_impossible_plans_say_why(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["experiments", "plan", *args]) == 2
    assert message in capsys.readouterr().err
