"""Train every planned run through the experiment core, skipping those already cached."""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from models import defaults
from models.evaluate import predict_embeddings, predict_logits
from models.experiment import (
    ExperimentConfig,
    Prepared,
    fresh_model,
    pretrained_start,
    train_variant,
)
from models.methods import Method
from models.modes import Mode
from models.nets import CNN, MLP, Classifier, to_unit
from models.pretraining import PretrainReport
from models.report.budgets import Budget
from models.report.cache import Arrays, RunCache
from models.report.plan import RunSpec, experiment, resolve_labels, run_key

log = logging.getLogger(__name__)

KEPT_UNITS = 64
"""First-layer units (or kernels) a showcase run keeps for pictures."""


@dataclass
class Sweep:
    """What the report is built from: one record per run, by key, and where they came from."""

    specs: list[RunSpec]
    keys: dict[RunSpec, str]
    records: dict[str, dict[str, Any]]
    trained: int
    cached: int
    seconds: float


def is_showcase(spec: RunSpec, budget: Budget, all_labels: int) -> bool:
    """First-seed main-study runs at the smallest label budget keep arrays for the figures."""
    main_depth = budget.mlp_depth if spec.arch == "mlp" else len(budget.cnn_channels)
    return (
        spec.seed == 0
        and not spec.dataset  # the transfer panel's other targets have no figures of weights
        and spec.init == "sound"
        and spec.optimizer == "adam"
        and spec.depth == main_depth
        and spec.labels_per_class == resolve_labels(budget.showcase_labels, all_labels)
        and not spec.augment  # the 2 x 2 panel's runs have no figures of weights either
        and spec.mode is Mode.supervised
    )


def recon_key(config: ExperimentConfig) -> str:
    return f"recon-{config.pretrain_key()}"


def run_sweep(
    specs: list[RunSpec],
    budget: Budget,
    prepared: Prepared,
    cache: RunCache,
    *,
    dataset: str,
    split_seed: int,
    device: str,
    all_labels: int,
    targets: Mapping[str, Prepared] | None = None,
) -> Sweep:
    """Train (or load from ``cache``) every run in ``specs``, with one progress bar for all.

    A run whose ``dataset`` names another target trains on ``targets[spec.dataset]``."""
    began = time.perf_counter()
    sweep = Sweep(specs, {}, {}, 0, 0, 0.0)
    with logging_redirect_tqdm():
        bar = tqdm(specs, desc="report", unit="run", disable=None, dynamic_ncols=True)
        for index, spec in enumerate(bar, start=1):
            bar.set_postfix_str(spec.name)
            config = replace(experiment(spec, budget, dataset, split_seed), device=device)
            key = run_key(config, spec.init)
            sweep.keys[spec] = key
            record = cache.get(key)
            if record is None:
                showcase = is_showcase(spec, budget, all_labels)
                data = (targets or {})[spec.dataset] if spec.dataset else prepared
                record, arrays = train_run(spec, config, data, cache, showcase=showcase)
                cache.put(key, record, arrays)
                sweep.trained += 1
                how = f"trained in {record['finetune_seconds']:.0f} s"
            else:
                sweep.cached += 1
                how = "from cache"
            sweep.records[key] = record
            log.info(
                "run %d/%d %s: test accuracy %.4f (%s)",
                index, len(specs), spec.name, record["test_accuracy"], how,
            )  # fmt: skip
        bar.close()
    sweep.seconds = time.perf_counter() - began
    return sweep


def train_run(
    spec: RunSpec,
    config: ExperimentConfig,
    prepared: Prepared,
    cache: RunCache,
    *,
    showcase: bool,
) -> tuple[dict[str, Any], Arrays]:
    """Pre-train (or reuse the cached encoder), fine-tune, test; return the record and arrays."""
    if spec.method == "none":
        model: Classifier = fresh_model(config, prepared)
        report = PretrainReport(method=Method.none)
    else:
        model, report = pretrained_start(config, prepared, cache_dir=cache.root / "pretrained")
        if report.decoders:  # only a fresh pre-training has them: keep its reconstructions
            originals, recon = reconstruct(model, report.decoders, prepared)
            cache.put(
                recon_key(config),
                {"arch": spec.arch, "method": spec.method, "depth": spec.depth},
                {"originals": originals, "reconstructions": recon},
            )
    if spec.init == "naive":
        # The pre-trained layers keep what pre-training gave them; the rest start naively.
        naive_init(model, head_only=spec.method != "none", seed=spec.seed)
    result = train_variant(
        model, config, prepared, variant=spec.variant, method=report.method, mode=spec.mode
    )
    finetune = result.finetune
    record: dict[str, Any] = {
        "run": spec.name,
        "arch": spec.arch,
        "depth": spec.depth,
        "hidden": "x".join(str(v) for v in _widths(config)),
        "method": spec.method,
        "variant": spec.variant,
        "optimizer": spec.optimizer,
        "init": spec.init,
        "mode": spec.mode,
        "augment": spec.augment,
        "lr": result.finetune.lr,
        "labels_per_class": spec.labels_per_class,
        "seed": spec.seed,
        "test_accuracy": result.test.accuracy,
        "test_nll": result.test.nll,
        "best_epoch": finetune.best_epoch,
        "epochs_run": len(finetune.history),
        "pretrain_seconds": report.seconds,
        "finetune_seconds": finetune.seconds,
        "history": [dataclasses.asdict(r) for r in finetune.history],
        "drift": finetune.drift,
        "pretrain_losses": report.losses,
        "config": config.to_dict(),
        "dataset": config.dataset,
        "pretrain_dataset": config.pretrain_dataset or "",
    }
    arrays: Arrays = {}
    if spec.seed == defaults.SEED:  # the served seed: keep per-image outcomes for McNemar
        images, labels = prepared.test()
        predicted = predict_logits(result.model, images).argmax(1)
        arrays["correct"] = (predicted == labels).numpy()
    if showcase:
        images, labels = prepared.test()
        arrays |= {
            "first_before": result.first_layer_before[:KEPT_UNITS],
            "first_after": result.first_layer_after[:KEPT_UNITS],
            "embedding": embed(result.model, images),
            "labels": labels.numpy(),
        }
    return record, arrays


@torch.no_grad()
def naive_init(model: Classifier, *, head_only: bool, seed: int) -> None:
    """Re-draw weights from U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with zero biases."""
    layers = [model.head_layer()] if head_only else list(model.weight_layers().values())
    generator = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    for layer in layers:
        bound = 1.0 / math.sqrt(layer.weight[0].numel())
        layer.weight.uniform_(-bound, bound, generator=generator)
        if layer.bias is not None:
            layer.bias.zero_()


def _widths(config: ExperimentConfig) -> tuple[int, ...]:
    return config.mlp.hidden if config.arch == "mlp" else config.cnn.channels


def embed(model: Classifier, images: torch.Tensor) -> NDArray[np.float32]:
    """Embeddings ``[N, D]`` of ``uint8`` images, in eval mode."""
    return predict_embeddings(model, images).numpy().astype(np.float32)


@torch.no_grad()
def reconstruct(
    model: Classifier, decoders: dict[str, torch.nn.Module], prepared: Prepared
) -> tuple[NDArray[np.uint8], NDArray[np.float32]]:
    """One test image per class and the pre-trained autoencoder's reconstruction of it."""
    images, labels = prepared.test()
    index = [int(np.flatnonzero(labels.numpy() == c)[0]) for c in np.unique(labels.numpy())]
    originals = images[index]
    device = next(model.parameters()).device
    x = to_unit(originals.to(device))
    if isinstance(model, CNN):
        out = torch.sigmoid(decoders["cae"](model.features(x)))
    elif isinstance(model, MLP):
        h = x.flatten(1)
        for layer in model.linear_layers():
            h = model.activate(layer(h))
        stages = sorted(decoders, key=lambda name: int(name[3:]))  # rbm0, rbm1, ... / dae0, ...
        for depth, stage in reversed(list(enumerate(stages))):
            h = decoders[stage](h)
            # Decoders of [0, 1]-valued inputs (pixels, sigmoid units) emit logits.
            if depth == 0 or model.config.activation == "sigmoid":
                h = torch.sigmoid(h)
        out = h.reshape(x.shape)
    else:
        raise TypeError(f"no reconstruction for {type(model).__name__}")
    return originals.numpy(), out.cpu().numpy().astype(np.float32)
