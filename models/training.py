"""Supervised fine-tuning: one recipe for the pre-trained variant and the baseline alike."""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import torch
import torch.nn.functional as F
from tqdm import tqdm

from models import distributed
from models.augment import random_affine, random_contrast, random_stroke_width
from models.batches import Pool
from models.evaluate import predict_logits
from models.modes import SemiConfig
from models.nets import Classifier, to_unit
from models.pretraining.common import minibatches

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FinetuneConfig:
    """The fine-tuning recipe; both variants get exactly this, with the same seed."""

    optimizer: Literal["adam", "sgd", "adagrad", "rmsprop"] = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    """SGD only (Nesterov)."""
    weight_decay: float = 0.0
    batch_size: int = 32
    max_epochs: int = 100
    patience: int = 20
    """Stop after this many epochs without a better validation loss; keep the best weights."""
    min_steps_per_epoch: int = 10
    """With few labels an epoch is a handful of steps; repeat the set up to this many."""
    augment_shift: float = 2.0
    """Random shift in pixels of each labeled image per step; 0 (and the others 0) turns
    augmentation off."""
    augment_degrees: float = 12.0
    """Random rotation, up to this many degrees either way."""
    augment_scale: float = 0.12
    """Random zoom by up to this fraction either way."""
    augment_stroke: float = 0.5
    """Probability of thickening or thinning an image's strokes."""
    augment_contrast: float = 0.6
    """Lowest factor of a random intensity ramp (uneven lighting); 1 leaves intensities."""

    head_epochs: int = 0
    """Epochs that train the head alone on the starting encoder before all layers train
    (linear probing, then fine-tuning): a random head's first gradients would otherwise
    scramble what pre-training learned."""
    encoder_lr_scale: float = 1.0
    """The encoder's learning rate as a fraction of ``lr`` (the head always gets ``lr``)."""
    lr_choices: tuple[float, ...] = ()
    """Learning rates to fine-tune with, each from the same start; the run with the best
    validation accuracy (then loss) is kept, so each variant gets its own best rate. Empty:
    ``lr`` alone."""

    def __post_init__(self) -> None:
        # JSON (a checkpoint's config) brings the choices back as a list.
        object.__setattr__(self, "lr_choices", tuple(float(lr) for lr in self.lr_choices))

    @property
    def augments(self) -> bool:
        return bool(
            self.augment_shift or self.augment_degrees or self.augment_scale
            or self.augment_stroke or self.augment_contrast < 1
        )  # fmt: skip


NO_AUGMENTATION: dict[str, float] = {
    "augment_shift": 0.0,
    "augment_degrees": 0.0,
    "augment_scale": 0.0,
    "augment_stroke": 0.0,
    "augment_contrast": 1.0,
}
"""The :class:`FinetuneConfig` fields that turn every augmentation off."""


def augment(
    x: torch.Tensor, config: FinetuneConfig, generator: torch.Generator, global_rows: int
) -> torch.Tensor:
    """The recipe's random transformation of one batch (the same for both variants)."""
    if not config.augments:
        return x
    x = random_stroke_width(x, generator, p=config.augment_stroke, global_rows=global_rows)
    x = random_contrast(x, generator, low=config.augment_contrast, global_rows=global_rows)
    return random_affine(
        x,
        generator,
        max_shift=config.augment_shift,
        max_degrees=config.augment_degrees,
        scale=(1 - config.augment_scale, 1 + config.augment_scale),
        global_rows=global_rows,
    )


@dataclass(frozen=True)
class EpochRecord:
    """One epoch's curve point."""

    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    seconds: float


@dataclass
class FinetuneResult:
    """Curves, the best epoch (whose weights the model holds) and each layer's weight drift."""

    history: list[EpochRecord] = field(default_factory=list)
    best_epoch: int = 0
    drift: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    lr: float = 0.0
    """The learning rate the kept weights were trained with."""
    tried: dict[float, float] = field(default_factory=dict)
    """With ``lr_choices``: each rate's validation accuracy at its kept epoch."""

    @property
    def best(self) -> EpochRecord:
        """The epoch whose weights were kept."""
        return self.history[self.best_epoch - 1]


def finetune_best_lr(
    model: Classifier,
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    config: FinetuneConfig,
    seed: int,
    *,
    label: str = "finetune",
) -> FinetuneResult:
    """:func:`finetune` at each of ``config.lr_choices`` from the same start (and seed); the
    model ends with the run of the best validation accuracy, ties to the lower loss."""
    if not config.lr_choices:
        return finetune(model, train, val, config, seed, label=label)
    start = copy.deepcopy(model.state_dict())
    best: tuple[tuple[float, float], FinetuneResult, dict[str, torch.Tensor]] | None = None
    tried: dict[float, float] = {}
    seconds = 0.0
    for lr in config.lr_choices:
        model.load_state_dict(start)
        one = replace(config, lr=lr, lr_choices=())
        result = finetune(model, train, val, one, seed, label=f"{label} lr {lr:g}")
        seconds += result.seconds
        tried[lr] = result.best.val_accuracy
        score = (result.best.val_accuracy, -result.best.val_loss)
        if best is None or score > best[0]:
            best = (score, result, copy.deepcopy(model.state_dict()))
    assert best is not None
    _, kept, state = best
    model.load_state_dict(state)
    model.eval()
    kept.seconds, kept.tried = seconds, tried
    log.info("%s: kept lr %g (validation accuracy by lr: %s)", label, kept.lr, tried)
    return kept


def weight_drift(start: dict[str, torch.Tensor], model: Classifier) -> dict[str, float]:
    """Per weight layer: ``||W_final - W_start|| / ||W_start||`` (Frobenius norms)."""
    drift: dict[str, float] = {}
    for name, layer in model.weight_layers().items():
        before = start[f"{name}.weight"].float()
        after = layer.weight.detach().float().cpu()
        drift[name] = float((after - before).norm() / before.norm().clamp_min(1e-12))
    return drift


def make_optimizer(model: Classifier, config: FinetuneConfig) -> torch.optim.Optimizer:
    """The recipe's optimiser over two groups, the encoder's and the head's parameters."""
    head = list(model.head_layer().parameters())
    owned = {id(p) for p in head}
    encoder = [p for p in model.parameters() if id(p) not in owned]
    groups: list[dict[str, Any]] = [
        {"params": encoder, "lr": config.lr * config.encoder_lr_scale, "name": "encoder"},
        {"params": head, "lr": config.lr, "name": "head"},
    ]
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            groups,
            lr=config.lr,
            momentum=config.momentum,
            nesterov=config.momentum > 0,
            weight_decay=config.weight_decay,
        )
    if config.optimizer == "adagrad":
        return torch.optim.Adagrad(groups, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(groups, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)


def _encoder_trains(optimiser: torch.optim.Optimizer, config: FinetuneConfig, on: bool) -> None:
    """Freeze (learning rate 0) or release the encoder's parameter group."""
    for group in optimiser.param_groups:
        if group["name"] == "encoder":
            group["lr"] = config.lr * config.encoder_lr_scale if on else 0.0


def finetune(
    model: Classifier,
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    config: FinetuneConfig,
    seed: int,
    *,
    label: str = "finetune",
) -> FinetuneResult:
    """Train ``model`` on ``train`` (uint8 images, labels); early-stop on ``val`` loss.

    Under ``torchrun`` every rank walks the same shuffled global batches and trains on its
    slice of each; ``DistributedDataParallel`` sums the slices' gradients, so the weights stay
    identical on every rank and match a one-process run on the same global batch size.
    """
    world = distributed.world()
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    images, labels = train[0].to(device), train[1].to(device)
    start = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    net = distributed.data_parallel(model)
    optimiser = make_optimizer(model, config)
    result = FinetuneResult(lr=config.lr)
    best_loss, best_state = float("inf"), copy.deepcopy(model.state_dict())
    began = time.perf_counter()
    quiet = None if world.main else True
    bar = tqdm(
        range(1, config.max_epochs + 1), desc=label, unit="epoch", leave=False, disable=quiet
    )
    for epoch in bar:
        tick = time.perf_counter()
        _encoder_trains(optimiser, config, on=epoch > config.head_epochs)
        model.train()
        total_loss, correct, seen, steps = 0.0, 0, 0, 0
        while steps < config.min_steps_per_epoch or seen < len(images):
            for batch in minibatches(len(images), min(config.batch_size, len(images)), generator):
                idx = world.local(batch)
                x = to_unit(images[idx])
                x = augment(x, config, generator, len(batch))
                logits = net(x)
                # A sum over this rank's rows, over the global batch size, times the ranks
                # that DDP averages over: the global batch's mean once the gradients meet.
                loss_sum = F.cross_entropy(logits, labels[idx], reduction="sum")
                optimiser.zero_grad(set_to_none=True)
                torch.autograd.backward(loss_sum * (world.size / len(batch)))
                optimiser.step()
                total_loss += float(loss_sum.detach())
                correct += int((logits.argmax(1) == labels[idx]).sum())
                seen += len(batch)
                steps += 1
        total_loss = distributed.total(total_loss, device)
        correct = int(distributed.total(correct, device))
        val_logits = predict_logits(model, val[0])
        val_loss = float(F.cross_entropy(val_logits, val[1].cpu()))
        val_acc = float((val_logits.argmax(1) == val[1].cpu()).float().mean())
        record = EpochRecord(
            epoch, total_loss / seen, correct / seen, val_loss, val_acc, time.perf_counter() - tick
        )
        result.history.append(record)
        log.info(
            "%s epoch %d train_loss %.4f train_acc %.4f val_loss %.4f val_acc %.4f",
            label, epoch, record.train_loss, record.train_accuracy, val_loss, val_acc,
        )  # fmt: skip
        if val_loss < best_loss:
            best_loss, result.best_epoch = val_loss, epoch
            best_state = copy.deepcopy(model.state_dict())
        elif epoch - max(result.best_epoch, config.head_epochs) >= config.patience:
            log.info("%s: early stop at epoch %d (best %d)", label, epoch, result.best_epoch)
            break
    bar.close()
    model.load_state_dict(best_state)
    model.eval()
    result.drift = weight_drift(start, model)
    result.seconds = time.perf_counter() - began
    return result


def tune(
    model: Classifier,
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    config: FinetuneConfig,
    seed: int,
    *,
    semi: SemiConfig,
    unlabeled: Pool | None,
    label: str = "finetune",
) -> FinetuneResult:
    """The ``supervised`` mode: :func:`finetune_best_lr` on the labels alone (the pool and the
    semi-supervised recipe are not used)."""
    return finetune_best_lr(model, train, val, config, seed, label=label)
