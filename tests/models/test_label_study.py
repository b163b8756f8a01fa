from __future__ import annotations

import json

import pytest

from models.label_study import main
from models.report.stats import paired_test


def test_study_prints_one_line_per_run_and_the_gap(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--dataset", "digits", "--arch", "mlp", "--method", "dae", "--labels", "2", "3"]
    assert main([*argv, "--seeds", "0", "1", "--device", "cpu", "--quick"]) == 0
    out = capsys.readouterr().out.splitlines()
    runs = [json.loads(line) for line in out if line.startswith("{")]
    assert [(r["labels_per_class"], r["seed"]) for r in runs] == [(2, 0), (3, 0), (2, 1), (3, 1)]
    assert runs[0]["pretrain_s"] == runs[1]["pretrain_s"]  # pre-trained once, reused
    row = next(line for line in out if line.startswith("| 2 |")).split(" | ")
    two = [r for r in runs if r["labels_per_class"] == 2]
    gaps = [r["pretrained_acc"] - r["baseline_acc"] for r in two]
    assert row[3].startswith(f"{sum(gaps) / 2:+.4f}")
    paired = paired_test([r["pretrained_acc"] for r in two], [r["baseline_acc"] for r in two])
    assert row[4] == f"{paired.p:.2g}"
    assert row[5].rstrip(" |") == ", ".join(f"{r['mcnemar']['p_value']:.2g}" for r in two)
    for r in runs:  # McNemar's discordant counts fit the two accuracies on the same images
        counts = r["mcnemar"]
        diff = (counts["only_pretrained_correct"] - counts["only_baseline_correct"]) / 360
        assert diff == pytest.approx(r["pretrained_acc"] - r["baseline_acc"], abs=1e-3)
    assert any(line.startswith("minutes per seed at 2 labels/class") for line in out)


def test_finetune_fields_reach_both_variants_and_typos_are_named(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Both variants supervised: the supervised recipe's fields reach both.
    argv = ["--dataset", "digits", "--arch", "mlp", "--method", "dae", "--labels", "2"]
    argv += ["--mode", "supervised"]
    common = [*argv, "--seeds", "0", "--device", "cpu", "--quick"]
    assert main([*common, "--finetune", "lr=0.0", "--finetune", "head_epochs=5"]) == 0
    run = json.loads(next(line for line in capsys.readouterr().out.splitlines() if "{" in line))
    # lr 0: neither variant moves at all.
    assert all(v == 0 for v in run["drift_pretrained"].values())
    assert all(v == 0 for v in run["drift_baseline"].values())
    with pytest.raises(SystemExit):
        main([*common, "--finetune", "lr_scale=0.1"])
    assert "no field 'lr_scale'" in capsys.readouterr().err


def test_a_list_field_takes_comma_separated_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--dataset", "digits", "--arch", "mlp", "--method", "dae", "--labels", "2"]
    argv += ["--mode", "supervised"]
    common = [*argv, "--seeds", "0", "--device", "cpu", "--quick"]
    assert main([*common, "--finetune", "lr_choices=0.0,0.0"]) == 0
    run = json.loads(next(line for line in capsys.readouterr().out.splitlines() if "{" in line))
    assert run["pretrained_lr"] == run["baseline_lr"] == 0.0  # only the rates given were tried
    assert all(v == 0 for v in run["drift_pretrained"].values())
    with pytest.raises(SystemExit):
        main([*common, "--finetune", "lr_choices=1e-3,fast"])
    assert "is not a number or a list of numbers" in capsys.readouterr().err


def test_semi_fields_reach_the_pretrained_variant_and_typos_are_named(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["--dataset", "digits", "--arch", "mlp", "--method", "dae", "--labels", "2"]
    common = [*argv, "--seeds", "0", "--device", "cpu", "--quick", "--mode", "fixmatch"]
    assert main([*common, "--semi", "lr=0.0", "--semi", "weak_shift=1.0"]) == 0
    run = json.loads(next(line for line in capsys.readouterr().out.splitlines() if "{" in line))
    assert run["mode"] == "fixmatch"
    assert run["pretrained_lr"] == 0.0  # FixMatch's own rate, which moves nothing
    assert all(v == 0 for v in run["drift_pretrained"].values())
    assert any(v > 0 for v in run["drift_baseline"].values())  # supervised, its own rates
    with pytest.raises(SystemExit):
        main([*common, "--semi", "thresold=0.9"])
    assert "--semi thresold=0.9: no field 'thresold'" in capsys.readouterr().err
