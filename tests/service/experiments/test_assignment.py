from __future__ import annotations

import subprocess
import sys
from collections import Counter

from scipy import stats

from service.experiments.assignment import arm_at, assign, unit_position
from service.experiments.definition import Arm

ARMS = (Arm("a", "pretrained", 1.0), Arm("b", "baseline", 3.0))


def test_a_unit_always_lands_in_the_same_arm_even_in_another_process() -> None:
    here = [assign("salt", ARMS, f"user-{i}").name for i in range(50)]
    code = (
        "from service.experiments.assignment import assign;"
        "from service.experiments.definition import Arm;"
        "arms=(Arm('a','pretrained',1.0),Arm('b','baseline',3.0));"
        "print(','.join(assign('salt',arms,f'user-{i}').name for i in range(50)))"
    )
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert there.stdout.strip().split(",") == here


def test_units_split_by_weight() -> None:
    counts = Counter(assign("s", ARMS, str(i)).name for i in range(20_000))
    assert stats.chisquare([counts["a"], counts["b"]], [5000, 15000]).pvalue > 0.001


def test_another_salt_reshuffles_units() -> None:
    first = [assign("one", ARMS, str(i)).name for i in range(200)]
    second = [assign("two", ARMS, str(i)).name for i in range(200)]
    assert first != second


def test_positions_are_uniform() -> None:
    positions = [unit_position("s", str(i)) for i in range(5000)]
    assert stats.kstest(positions, "uniform").pvalue > 0.001


def test_weight_ranges_are_contiguous_in_arm_order() -> None:
    assert arm_at(ARMS, 0.0).name == "a"
    assert arm_at(ARMS, 0.2499).name == "a"
    assert arm_at(ARMS, 0.25).name == "b"
    assert arm_at(ARMS, 0.9999999).name == "b"


def test_without_a_unit_the_draw_follows_the_weights() -> None:
    counts = Counter(assign("s", ARMS, None).name for _ in range(8000))
    assert stats.chisquare([counts["a"], counts["b"]], [2000, 6000]).pvalue > 0.001
