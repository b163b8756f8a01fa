"""What the step-by-step commands hand each other: stage checkpoints and the export.

``pretrain`` and ``finetune`` save a checkpoint of their stage with the provenance later
steps need (:func:`save_stage`); the next step opens it (:func:`open_stage`), and
``export`` (or ``build``) writes the trained model to the repository (:func:`export_trained`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from models.device import resolve_device
from models.errors import ConfigError
from models.evaluate import Metrics, evaluate
from models.experiment import ExperimentConfig, Prepared, load_data
from models.export import Parity, Provenance, export_variant
from models.methods import Method, check_pairing
from models.modes import Mode
from models.nets import Classifier
from models.pretraining import PretrainReport
from models.training import FinetuneResult
from service.manifest import Manifest


def checkpoint_info(
    stage: str,
    config: ExperimentConfig,
    prepared: Prepared,
    report: PretrainReport,
    finetune: FinetuneResult | None = None,
    mode: Mode = Mode.supervised,
) -> dict[str, Any]:
    """The provenance a checkpoint carries so later steps need nothing else."""
    info: dict[str, Any] = {
        "stage": stage,
        "experiment": config.to_dict(),
        "class_names": list(prepared.data.class_names),
        "polarity": prepared.data.polarity,
        "num_unlabeled": len(prepared.splits.pool),
        "pretraining": {
            "method": report.method,
            "losses": report.losses,
            "seconds": report.seconds,
            "dataset": report.dataset,
            "num_images": report.num_images,
            "probe": report.probe,
        },
    }
    if finetune is not None:
        info["finetune"] = {
            "mode": str(mode),
            "best_epoch": finetune.best_epoch,
            "epochs_run": len(finetune.history),
            "lr": finetune.lr,
            "seconds": finetune.seconds,
            "drift": finetune.drift,
            "history": [dataclasses.asdict(r) for r in finetune.history],
        }
    return info


def save_stage(
    path: Path,
    stage: str,
    model: Classifier,
    config: ExperimentConfig,
    prepared: Prepared,
    report: PretrainReport,
    finetune: FinetuneResult | None = None,
    mode: Mode = Mode.supervised,
) -> Path:
    info = checkpoint_info(stage, config, prepared, report, finetune, mode)
    return save_checkpoint(path, model, info)


def open_stage(path: Path, device: str, expect: str) -> tuple[Checkpoint, ExperimentConfig]:
    """Load a checkpoint written at stage ``expect`` and its experiment config."""
    checkpoint = load_checkpoint(path, resolve_device(device))
    stage = checkpoint.info.get("stage")
    if stage != expect:
        raise ConfigError(f"{path}: is a {stage!r} checkpoint, this step needs a {expect!r} one")
    config = ExperimentConfig.from_dict(checkpoint.info["experiment"])
    return checkpoint, dataclasses.replace(config, device=device)


def report_of(checkpoint: Checkpoint) -> PretrainReport:
    raw = checkpoint.info["pretraining"]
    method = check_pairing(checkpoint.info["experiment"]["arch"], raw["method"])
    return PretrainReport(
        method=method,
        losses=raw["losses"],
        seconds=raw["seconds"],
        dataset=raw.get("dataset", ""),
        num_images=raw.get("num_images", 0),
        probe=raw.get("probe", []),
    )


def test_metrics(model: Classifier, prepared: Prepared) -> Metrics:
    images, labels = prepared.test()
    return evaluate(model, images, labels)


def export_trained(
    model: Classifier,
    config: ExperimentConfig,
    prepared: Prepared,
    report: PretrainReport,
    *,
    repository: Path,
    name: str,
    metrics: Metrics | None = None,
    finetune: dict[str, Any] | None = None,
    mode: Mode = Mode.supervised,
    replace: bool = True,
    make_default: bool = False,
) -> tuple[Path, Manifest, Parity]:
    """Export one fine-tuned model as ``pretrained`` (or ``baseline`` when method is none),
    fine-tuned in ``mode``: in place of the variant's versions, or as its next version (see
    :func:`models.export.export_variant`)."""
    method = report.method
    variant = "baseline" if method == Method.none else "pretrained"
    metrics = metrics or test_metrics(model, prepared)
    fine_tuning: dict[str, Any] = {"mode": str(mode), **dataclasses.asdict(config.finetune)}
    if mode.unlabeled:
        fine_tuning["semi"] = dataclasses.asdict(config.semi)
    if finetune:
        # The recipe is shared; what it led to (and how far each layer moved) is per variant.
        fine_tuning["outcome"] = {
            k: finetune[k]
            for k in ("best_epoch", "epochs_run", "drift", "lr", "tried")
            if k in finetune
        }
    pretrain_settings: dict[str, Any] = {}
    if method != "none":
        pretrain_settings = dataclasses.asdict(config.pretrain)
        pretrain_settings["seconds"] = round(report.seconds, 3)
        pretrain_settings["final_loss"] = {k: v[-1] for k, v in report.losses.items() if v}
        # The cheap early signal: k-NN accuracy of the encoder on validation, the labelled
        # draw as memory, after each epoch (or once, for an encoder reused from a cache).
        pretrain_settings["knn_accuracy"] = report.probe
        # Which images pre-training saw: the target's own pool, or another data set's.
        pretrain_settings["dataset"] = config.pretrain_dataset or config.dataset
        pretrain_settings["own_pool"] = config.pretrain_dataset is None
    seen = report.num_images or len(prepared.splits.pool)
    unlabeled = 0 if method == "none" else seen
    if mode.unlabeled and (method == "none" or config.pretrain_dataset is not None):
        unlabeled += len(prepared.splits.pool)  # fine-tuning learnt from the target's own pool
    provenance = Provenance(
        name=name,
        variant=variant,
        method=method,
        pretrain_settings=pretrain_settings,
        class_names=list(prepared.data.class_names),
        polarity=prepared.data.polarity,
        framing=prepared.data.framing,
        dataset=config.dataset,
        labels_per_class=config.labels_per_class,
        num_labeled=config.labels_per_class * prepared.data.num_classes,
        num_unlabeled=unlabeled,
        split_seed=config.split.split_seed,
        seed=config.seed,
        fine_tuning=fine_tuning,
    )
    parity_images, _ = prepared.test()
    return export_variant(
        model,
        repository,
        provenance,
        metrics,
        parity_images,
        replace=replace,
        make_default=make_default,
    )


__all__ = ["export_trained", "load_data", "open_stage", "save_stage", "test_metrics"]
