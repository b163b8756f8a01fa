"""``headstart build`` says its plan up front, then numbers every progress line by stage."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from models.experiment import ExperimentConfig, build_recipe
from models.methods import Method
from models.nets import MLPConfig
from scripts.cli import main
from scripts.commands import _progress as progress
from scripts.commands._progress import ProgressHandler, Stage, plan, plan_line
from tests.models.helpers import tiny_digits, write_idx

STAGE_LINE = re.compile(r"stage (\d+)/(\d+) (.+?) epoch (\d+)(?:/(\d+))?")


def _names(stages: list[Stage]) -> list[str]:
    return [s.name for s in stages]


def test_the_default_build_plan_comes_from_its_recipe() -> None:
    config = build_recipe(ExperimentConfig())
    stages = plan(config, pool=4000, labeled=100)
    assert stages[0] == Stage("pretrain contrastive", config.pretrain.epochs, 8000)
    rates = [f"{lr:g}" for lr in config.finetune.lr_choices]
    assert len(rates) > 1
    assert _names(stages)[-len(rates) :] == [f"baseline lr {lr}" for lr in rates]
    assert all(s.epochs == config.finetune.max_epochs for s in stages[-len(rates) :])
    pretrained = [s for s in stages if s.name.startswith("pretrained")]
    assert pretrained, "the pretrained variant's fine-tuning is planned"
    line = plan_line(stages, "cnn")
    assert line.startswith(f"plan: {len(stages)} stages: 1 pretrain contrastive ")
    assert "rough estimate: up to " in line


def test_greedy_methods_plan_a_stage_per_layer_and_none_plans_no_pretraining() -> None:
    mlp = ExperimentConfig(
        arch="mlp", method=Method.rbm, mlp=MLPConfig(hidden=(32, 16), activation="sigmoid")
    )
    assert _names(plan(mlp, pool=10, labeled=10))[:2] == ["pretrain rbm0", "pretrain rbm1"]
    bare = ExperimentConfig(arch="mlp", method=Method.none)
    assert not any(name.startswith("pretrain ") for name in _names(plan(bare, pool=10, labeled=10)))


def test_pretrain_and_finetune_plan_their_own_part() -> None:
    config = build_recipe(ExperimentConfig())
    assert _names(plan(config, pool=10, labeled=0, variants=())) == ["pretrain contrastive"]
    alone = plan(config, pool=10, labeled=10, pretraining=False, variants=("baseline",))
    assert all(name.startswith("baseline lr ") for name in _names(alone))
    assert plan_line([], "cnn") == "plan: no training stage"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    found = logging.getLogger("models.progress_test")
    found.setLevel(logging.INFO)
    found.propagate = False
    yield found
    found.handlers.clear()


def _handler(
    logger: logging.Logger, *, per_epoch: bool
) -> tuple[ProgressHandler, io.StringIO, Clock]:
    stages = [Stage("pretrain cae", 3, 10), Stage("pretrained lr 0.001", 100, 10)]
    out, clock = io.StringIO(), Clock()
    handler = ProgressHandler(stages, out, per_epoch=per_epoch, clock=clock)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    return handler, out, clock


def _train(logger: logging.Logger, clock: Clock) -> None:
    """What the training code logs: pre-training with totals, fine-tuning without."""
    for epoch in (1, 2, 3):
        clock.now += 10
        logger.info("pretrain %s epoch %d/%d loss %.3f", "cae", epoch, 3, 1.0 / epoch)
    for epoch in (1, 2):
        clock.now += 5
        logger.info("%s epoch %d train_loss 0.5 val_acc 0.9", "pretrained lr 0.001", epoch)
    logger.info("pretrained lr 0.001: early stop at epoch 2 (best 1)")
    clock.now += 7
    logger.info("pretrained fixmatch epoch 1/12 loss 0.2")  # a stage the plan did not foresee


def test_off_a_terminal_each_stage_gets_one_line(logger: logging.Logger) -> None:
    out = _train_with(logger, per_epoch=False)
    assert out.getvalue().splitlines() == [
        "stage 1/2 pretrain cae epoch 3/3 loss 0.333 (30 s)",
        "stage 2/2 pretrained lr 0.001 epoch 2/100 train_loss 0.5 val_acc 0.9 (10 s)",
        "pretrained lr 0.001: early stop at epoch 2 (best 1)",
        "stage 3/3 pretrained fixmatch epoch 1/12 loss 0.2 (7 s)",
    ]


def test_on_a_terminal_every_epoch_gets_its_line(logger: logging.Logger) -> None:
    out = _train_with(logger, per_epoch=True)
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 + 2 + 1 + 1
    assert lines[0] == "stage 1/2 pretrain cae epoch 1/3 loss 1.000"
    assert lines[4] == "stage 2/2 pretrained lr 0.001 epoch 2/100 train_loss 0.5 val_acc 0.9"


def test_a_long_stage_still_shows_its_latest_epoch_now_and_then(logger: logging.Logger) -> None:
    handler, out, clock = _handler(logger, per_epoch=False)
    step = progress.HEARTBEAT_SECONDS / 10
    for epoch in range(1, 101):
        clock.now += step
        logger.info("pretrained lr 0.001 epoch %d train_loss 0.5", epoch)
    handler.flush_stage()
    lines = out.getvalue().splitlines()
    # A stage ten heartbeats long: a line per heartbeat and its last epoch's, not 100.
    assert 10 <= len(lines) <= 11
    assert lines[-1].startswith("stage 1/2 pretrained lr 0.001 epoch 100/3 ")


def _train_with(logger: logging.Logger, *, per_epoch: bool) -> io.StringIO:
    handler, out, clock = _handler(logger, per_epoch=per_epoch)
    _train(logger, clock)
    handler.flush_stage()
    return out


def test_a_tiny_build_plans_and_numbers_its_stages(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(progress, "HEARTBEAT_SECONDS", float("inf"))
    folder = tmp_path / "digits"
    write_idx(folder, tiny_digits(30))
    argv = ["build", "--quick", "--dataset", f"idx:{folder}", "--arch", "mlp"]
    argv += ["--hidden", "32,16", "--method", "dae", "--labels-per-class", "2"]
    assert main([*argv, "--model-repository", str(tmp_path / "repo")]) == 0
    err = capsys.readouterr().err.splitlines()
    plan_at = next(i for i, line in enumerate(err) if "plan: " in line)
    counted = re.search(r"plan: (\d+) stages", err[plan_at])
    assert counted is not None
    planned = int(counted.group(1))
    assert "1 pretrain dae0 " in err[plan_at]
    assert "2 pretrain dae1 " in err[plan_at]
    found = [(i, STAGE_LINE.search(line)) for i, line in enumerate(err)]
    staged = [(i, m) for i, m in found if m is not None]
    assert staged
    assert all(i > plan_at for i, _ in staged)  # the plan comes first
    numbers = [int(m.group(1)) for _, m in staged]
    assert numbers == sorted(set(numbers)), "off a terminal, one line per stage, in order"
    assert numbers[:2] == [1, 2]
    assert [m.group(3) for _, m in staged][:2] == ["pretrain dae0", "pretrain dae1"]
    totals = {int(m.group(2)) for _, m in staged}
    assert max(totals) >= planned
    unnumbered = [line for line in err if re.search(r" epoch \d", line) and "stage " not in line]
    assert unnumbered == [line for line in unnumbered if "early stop at epoch" in line]
