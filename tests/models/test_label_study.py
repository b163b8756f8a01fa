from __future__ import annotations

import json

import pytest

from models.label_study import main


def test_study_prints_one_line_per_run_and_the_gap(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--dataset", "digits", "--arch", "mlp", "--method", "dae", "--labels", "2", "3"]
    assert main([*argv, "--seeds", "0", "--device", "cpu", "--quick"]) == 0
    out = capsys.readouterr().out.splitlines()
    runs = [json.loads(line) for line in out if line.startswith("{")]
    assert [(r["labels_per_class"], r["seed"]) for r in runs] == [(2, 0), (3, 0)]
    assert runs[0]["pretrain_s"] == runs[1]["pretrain_s"]  # pre-trained once, reused
    gap = next(line for line in out if line.startswith("2 "))
    expected = runs[0]["pretrained_acc"] - runs[0]["baseline_acc"]
    assert f"{expected:+.4f}" in gap
