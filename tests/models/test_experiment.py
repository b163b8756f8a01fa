from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest
import torch

from models import experiment
from models.errors import ConfigError
from models.experiment import ExperimentConfig, Prepared, run_experiment
from models.modes import SemiConfig
from models.nets import CNNConfig, MLPConfig
from models.pretraining import PretrainConfig, PretrainReport
from models.stages import export_trained
from models.training import FinetuneConfig
from service.runtime import ModelStore


def tiny(arch: str, method: str, **changes: object) -> ExperimentConfig:
    """A complete experiment on 300 8x8 digits that runs in about a second."""
    config = ExperimentConfig(
        dataset="tiny-digits",
        arch=arch,
        method=method,
        mlp=MLPConfig(hidden=(32, 16)),
        cnn=CNNConfig(channels=(4, 8), dense=16),
        labels_per_class=3,
        pretrain=PretrainConfig(epochs=1, batch_size=32, projection_dim=8),
        finetune=FinetuneConfig(max_epochs=2, patience=1, min_steps_per_epoch=2),
        device="cpu",
    )
    return dataclasses.replace(config, **changes)


@pytest.mark.parametrize(
    ("arch", "method"),
    [("mlp", "rbm"), ("mlp", "dae"), ("cnn", "cae"), ("cnn", "contrastive"), ("cnn", "vicreg")],
)
def test_every_method_runs_end_to_end_through_export(
    tmp_path: Path, prepared: Prepared, arch: str, method: str
) -> None:
    config = tiny(arch, method)
    result = run_experiment(config, prepared=prepared)
    assert result.pretraining.method == method
    assert result.pretraining.losses
    name = f"m_{method}"
    for trained, report in (
        (result.pretrained, result.pretraining),
        (result.baseline, PretrainReport(method="none")),
    ):
        assert trained.test.num_examples == len(prepared.splits.test)
        assert len(trained.finetune.history) >= 1
        assert set(trained.finetune.drift) == set(trained.model.weight_layers())
        export_trained(
            trained.model, config, prepared, report, repository=tmp_path, name=name,
            metrics=trained.test,
        )  # fmt: skip
    store = ModelStore.load(tmp_path)
    assert store.problems == []
    variants = store.model(name)
    assert variants["pretrained"].manifest.pretraining.method == method
    assert variants["baseline"].manifest.pretraining.method == "none"
    assert variants["baseline"].manifest.training.num_unlabeled == 0
    assert variants["pretrained"].manifest.training.num_unlabeled == len(prepared.splits.pool)
    images, _ = prepared.test()
    out = variants["pretrained"].run(images[:4].numpy())
    assert out["embedding"].shape == (4, result.pretrained.model.embedding_dim)


def test_no_training_step_sees_a_test_image(
    prepared: Prepared, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[torch.Tensor] = []
    pretraining: list[torch.Tensor] = []
    real_pretrain, real_tuner = experiment.pretrain, experiment.tuner

    def spy_pretrain(model, pool, *args, **kwargs):  # type: ignore[no-untyped-def]
        walk = pool.batches

        def batches(*a, **k):  # type: ignore[no-untyped-def]
            for batch in walk(*a, **k):  # every batch a pre-training step takes
                pretraining.append(batch.images.cpu())
                yield batch

        pool.batches = batches
        return real_pretrain(model, pool, *args, **kwargs)

    def spy_tuner(mode):  # type: ignore[no-untyped-def]
        def spy_finetune(model, train, val, *args, **kwargs):  # type: ignore[no-untyped-def]
            seen.extend([train[0].cpu(), val[0].cpu()])
            return real_tuner(mode)(model, train, val, *args, **kwargs)

        return spy_finetune

    monkeypatch.setattr(experiment, "pretrain", spy_pretrain)
    monkeypatch.setattr(experiment, "tuner", spy_tuner)
    run_experiment(tiny("mlp", "dae"), prepared=prepared)
    assert len(seen) == 4  # labeled + validation for each variant
    assert sum(len(batch) for batch in pretraining) == len(prepared.splits.pool) * 2  # 2 layers
    seen.extend(pretraining)

    def fingerprints(images: torch.Tensor) -> set[str]:
        return {hashlib.sha256(image.numpy().tobytes()).hexdigest() for image in images}

    test_images, _ = prepared.test()
    held_out = fingerprints(test_images)
    assert len(held_out) == len(test_images)  # the fingerprint is a fair identity here
    for images in seen:
        assert not fingerprints(images) & held_out


def test_same_seed_gives_the_same_metrics(prepared: Prepared) -> None:
    a = run_experiment(tiny("cnn", "cae"), prepared=prepared)
    b = run_experiment(tiny("cnn", "cae"), prepared=prepared)
    assert a.pretrained.test == b.pretrained.test
    assert a.baseline.test == b.baseline.test
    c = run_experiment(tiny("cnn", "cae", seed=5), prepared=prepared)
    assert c.baseline.test != a.baseline.test or c.pretrained.test != a.pretrained.test


def test_cached_pretraining_is_reused_across_label_budgets(
    tmp_path: Path, prepared: Prepared, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = run_experiment(tiny("mlp", "rbm"), prepared=prepared, cache_dir=tmp_path)
    calls: list[str] = []
    real = experiment.pretrain

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append("pretrain")
        return real(*args, **kwargs)

    monkeypatch.setattr(experiment, "pretrain", counting)
    again = run_experiment(
        tiny("mlp", "rbm", labels_per_class=5), prepared=prepared, cache_dir=tmp_path
    )
    assert calls == []
    assert again.pretraining.losses == first.pretraining.losses
    assert (again.pretrained.first_layer_before == first.pretrained.first_layer_before).all()
    run_experiment(tiny("mlp", "rbm", seed=1), prepared=prepared, cache_dir=tmp_path)
    assert calls == ["pretrain"]  # another seed is another pre-training


def test_config_round_trips_and_rejects_bad_pairings() -> None:
    config = tiny("cnn", "contrastive")
    assert ExperimentConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="does not apply to arch 'cnn'"):
        ExperimentConfig(arch="cnn", method="rbm")
    with pytest.raises(ConfigError, match="unknown architecture"):
        ExperimentConfig.from_dict({**config.to_dict(), "arch": "vit"})


def test_the_pre_training_data_set_is_part_of_the_encoder_key() -> None:
    own = tiny("cnn", "cae")
    other = dataclasses.replace(own, pretrain_dataset="digits")
    assert own.pretrain_key() != other.pretrain_key()
    assert (
        other.pretrain_key() != dataclasses.replace(own, pretrain_dataset="mnist-5k").pretrain_key()
    )
    assert other.pretrain_key() == dataclasses.replace(other, labels_per_class=7).pretrain_key()
    assert ExperimentConfig.from_dict(other.to_dict()) == other


def test_supervised_pre_training_without_a_source_is_refused_at_once() -> None:
    with pytest.raises(ConfigError, match="give the source with --pretrain-dataset"):
        ExperimentConfig(arch="cnn", method="supervised")


def test_supervised_transfer_between_class_subsets_runs_and_exports(tmp_path: Path) -> None:
    config = dataclasses.replace(
        tiny("mlp", "none"),
        method="supervised",
        pretrain_dataset="digits:0-4",
        dataset="digits:5-9",
    )
    result = run_experiment(config)
    assert result.pretraining.dataset == "digits:0-4"
    assert result.pretrained.model.num_classes == 5
    prepared = experiment.load_data(config)
    _, manifest, _ = export_trained(
        result.pretrained.model, config, prepared, result.pretraining,
        repository=tmp_path, name="five", metrics=result.pretrained.test,
    )  # fmt: skip
    assert manifest.class_names == ["5", "6", "7", "8", "9"]
    assert manifest.pretraining.method == "supervised"
    assert manifest.pretraining.settings["dataset"] == "digits:0-4"
    assert manifest.training.num_unlabeled == result.pretraining.num_images > 0


def test_a_semi_supervised_pretrained_variant_and_its_baseline_say_so_in_their_manifests(
    tmp_path: Path, prepared: Prepared
) -> None:
    semi = SemiConfig(epochs=1, steps_per_epoch=3, ratio=2, weak_shift=1.0, strong_shift=1.0)
    config = tiny("cnn", "contrastive", mode="fixmatch", semi=semi)
    result = run_experiment(config, prepared=prepared)
    assert (result.pretrained.mode, result.baseline.mode) == ("fixmatch", "supervised")
    for trained, report in (
        (result.pretrained, result.pretraining),
        (result.baseline, PretrainReport(method="none")),
    ):
        export_trained(
            trained.model, config, prepared, report, repository=tmp_path, name="semi",
            metrics=trained.test, mode=trained.mode,
        )  # fmt: skip
    store = ModelStore.load(tmp_path)
    pretrained = store.model("semi")["pretrained"].manifest
    baseline = store.model("semi")["baseline"].manifest
    assert pretrained.training.fine_tuning["mode"] == "fixmatch"
    assert pretrained.training.fine_tuning["semi"]["ratio"] == 2
    assert baseline.training.fine_tuning["mode"] == "supervised"
    assert "semi" not in baseline.training.fine_tuning
    assert baseline.training.num_unlabeled == 0
    # the encoder's k-NN accuracy after each pre-training epoch: the early signal
    probe = pretrained.pretraining.settings["knn_accuracy"]
    assert len(probe) == config.pretrain.epochs
    assert all(0 <= a <= 1 for a in probe)
