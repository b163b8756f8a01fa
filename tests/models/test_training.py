from __future__ import annotations

import dataclasses

import pytest
import torch

from models.evaluate import compute_metrics
from models.experiment import Prepared
from models.nets import MLPConfig, build_classifier
from models.training import NO_AUGMENTATION, FinetuneConfig, finetune, finetune_best_lr

RECIPE = FinetuneConfig(max_epochs=6, patience=3, min_steps_per_epoch=3, batch_size=16)


def _train(prepared: Prepared, recipe: FinetuneConfig, seed: int) -> tuple[torch.nn.Module, list]:
    torch.manual_seed(0)
    model = build_classifier(MLPConfig(hidden=(32, 16), activation="relu"), (1, 8, 8), 10)
    result = finetune(model, prepared.labeled(5, seed=0), prepared.val(), recipe, seed)
    return model, result.history


def test_same_seed_gives_the_same_run(prepared: Prepared) -> None:
    a, history_a = _train(prepared, RECIPE, seed=1)
    b, history_b = _train(prepared, RECIPE, seed=1)
    untimed = [[dataclasses.replace(r, seconds=0) for r in h] for h in (history_a, history_b)]
    assert untimed[0] == untimed[1]
    for (name, wa), wb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(wa, wb), name
    c, _ = _train(prepared, RECIPE, seed=2)
    assert not torch.equal(a.state_dict()["head.weight"], c.state_dict()["head.weight"])


def test_keeps_the_best_validation_epoch(prepared: Prepared) -> None:
    torch.manual_seed(0)
    model = build_classifier(MLPConfig(hidden=(32,), activation="relu"), (1, 8, 8), 10)
    recipe = dataclasses.replace(RECIPE, lr=0.05, max_epochs=12, patience=4)  # overshoots
    result = finetune(model, prepared.labeled(5, seed=0), prepared.val(), recipe, seed=0)
    losses = [r.val_loss for r in result.history]
    assert result.best_epoch == 1 + losses.index(min(losses))
    images, labels = prepared.val()
    with torch.no_grad():
        restored = compute_metrics(model(images.float() / 255), labels, 10)
    assert restored.nll == pytest.approx(min(losses), rel=1e-5)


def test_weight_drift_is_relative_distance_per_layer(prepared: Prepared) -> None:
    torch.manual_seed(0)
    model = build_classifier(MLPConfig(hidden=(32, 16)), (1, 8, 8), 10)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    result = finetune(model, prepared.labeled(5, seed=0), prepared.val(), RECIPE, seed=0)
    assert list(result.drift) == ["layers.0", "layers.1", "head"]
    w0, w1 = start["layers.1.weight"], model.state_dict()["layers.1.weight"]
    assert result.drift["layers.1"] == pytest.approx(float((w1 - w0).norm() / w0.norm()))
    assert all(d > 0 for d in result.drift.values())
    frozen = build_classifier(MLPConfig(hidden=(8,)), (1, 8, 8), 10)
    still = finetune(
        frozen, prepared.labeled(2, 0), prepared.val(), dataclasses.replace(RECIPE, lr=0.0), 0
    )
    assert all(d == 0 for d in still.drift.values())


def test_sgd_recipe_trains(prepared: Prepared) -> None:
    recipe = dataclasses.replace(RECIPE, optimizer="sgd", lr=0.1, **NO_AUGMENTATION)
    _, history = _train(prepared, recipe, seed=0)
    assert history[-1].train_loss < history[0].train_loss


def test_head_epochs_train_the_head_alone_first(prepared: Prepared) -> None:
    torch.manual_seed(0)
    model = build_classifier(MLPConfig(hidden=(32, 16), activation="relu"), (1, 8, 8), 10)
    probe = dataclasses.replace(RECIPE, max_epochs=2, head_epochs=2, patience=5)
    result = finetune(model, prepared.labeled(5, seed=0), prepared.val(), probe, seed=0)
    assert result.drift["layers.0"] == 0
    assert result.drift["layers.1"] == 0
    assert result.drift["head"] > 0


def test_encoder_lr_scale_slows_the_encoder_not_the_head(prepared: Prepared) -> None:
    def drift(scale: float) -> dict[str, float]:
        torch.manual_seed(0)
        model = build_classifier(MLPConfig(hidden=(32,), activation="relu"), (1, 8, 8), 10)
        recipe = dataclasses.replace(RECIPE, max_epochs=1, encoder_lr_scale=scale)
        return finetune(model, prepared.labeled(5, 0), prepared.val(), recipe, seed=0).drift

    full, frozen = drift(1.0), drift(0.0)
    assert frozen["layers.0"] == 0 < full["layers.0"]
    assert frozen["head"] > 0


def test_patience_counts_from_the_end_of_the_head_epochs(prepared: Prepared) -> None:
    torch.manual_seed(0)
    model = build_classifier(MLPConfig(hidden=(16,), activation="relu"), (1, 8, 8), 10)
    # lr 0 for the head alone: nothing improves during the head epochs, yet it goes on.
    recipe = dataclasses.replace(RECIPE, max_epochs=6, head_epochs=4, patience=1, lr=0.0)
    result = finetune(model, prepared.labeled(5, seed=0), prepared.val(), recipe, seed=0)
    assert len(result.history) == 5  # four head epochs, then one without improvement


def test_lr_choices_keep_the_best_validation_run(prepared: Prepared) -> None:
    torch.manual_seed(0)
    model = build_classifier(MLPConfig(hidden=(32,), activation="relu"), (1, 8, 8), 10)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    # lr 0 cannot learn; 1e-2 can: the choice must be 1e-2, with the weights it trained.
    recipe = dataclasses.replace(RECIPE, lr_choices=(0.0, 1e-2), **NO_AUGMENTATION)
    result = finetune_best_lr(model, prepared.labeled(5, 0), prepared.val(), recipe, seed=0)
    assert result.lr == 1e-2
    assert set(result.tried) == {0.0, 1e-2}
    assert result.tried[1e-2] > result.tried[0.0]
    assert result.best.val_accuracy == result.tried[1e-2]
    alone = build_classifier(MLPConfig(hidden=(32,), activation="relu"), (1, 8, 8), 10)
    alone.load_state_dict(start)
    single = finetune(
        alone,
        prepared.labeled(5, 0),
        prepared.val(),
        dataclasses.replace(RECIPE, lr=1e-2, **NO_AUGMENTATION),
        0,
    )
    for (name, kept), same in zip(
        model.state_dict().items(), alone.state_dict().values(), strict=True
    ):
        assert torch.equal(kept, same), name  # the kept run is the one-rate run, exactly
    untimed = [
        [dataclasses.replace(r, seconds=0) for r in h] for h in (single.history, result.history)
    ]
    assert untimed[0] == untimed[1]


def test_lr_choices_survive_a_json_round_trip() -> None:
    recipe = FinetuneConfig(lr_choices=[1e-3, 3e-3])  # type: ignore[arg-type]
    assert recipe.lr_choices == (1e-3, 3e-3)
