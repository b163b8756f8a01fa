"""The ``fixmatch`` fine-tuning mode: learn from the labels and the unlabeled pool at once.

FixMatch (Sohn et al., 2020), with digits' views (no flips): each step trains on a batch of
labelled images and on ``ratio`` times as many pool images. A pool image's weak view (a small
shift) is classified without gradient; where the top class reaches the threshold it becomes
the pseudo-label of a strong view of the same image (larger shift, rotation and zoom, strokes,
uneven lighting and a blanked square), which the model is trained to classify. Pseudo-labels
start from the model's own starting weights, so a pre-trained encoder's clusters decide the
first ones, and spread through the pool as the model grows confident.

Validation accuracy of the weights' moving average is checked every ``steps_per_epoch``
steps; the best average is kept. Under ``torchrun`` every rank draws the same global batches
and random numbers and trains on its slice of each, as :func:`models.training.finetune` does.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Iterator

import torch
import torch.nn.functional as F

from models import distributed
from models.augment import random_affine, random_contrast, random_erase, random_stroke_width
from models.batches import Batch, Pool
from models.evaluate import predict_logits
from models.modes import SemiConfig
from models.nets import Classifier, to_unit
from models.training import EpochRecord, FinetuneConfig, FinetuneResult, augment, weight_drift

log = logging.getLogger(__name__)


def weak_view(
    x: torch.Tensor, semi: SemiConfig, generator: torch.Generator, rows: int
) -> torch.Tensor:
    return random_affine(x, generator, max_shift=semi.weak_shift, global_rows=rows)


def strong_view(
    x: torch.Tensor, semi: SemiConfig, generator: torch.Generator, rows: int
) -> torch.Tensor:
    x = random_stroke_width(x, generator, p=semi.strong_stroke, global_rows=rows)
    x = random_contrast(x, generator, low=semi.strong_contrast, global_rows=rows)
    x = random_affine(
        x,
        generator,
        max_shift=semi.strong_shift,
        max_degrees=semi.strong_degrees,
        scale=(1 - semi.strong_scale, 1 + semi.strong_scale),
        global_rows=rows,
    )
    return random_erase(
        x, generator, size=semi.strong_erase, p=semi.strong_erase_p, global_rows=rows
    )


def pool_batches(pool: Pool, size: int, generator: torch.Generator) -> Iterator[Batch]:
    """Endless shuffled passes over the pool, ``size`` images a global batch."""
    while True:
        yield from pool.batches(size, generator, drop_last=len(pool) >= size)


def tune(
    model: Classifier,
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    config: FinetuneConfig,
    seed: int,
    *,
    semi: SemiConfig,
    unlabeled: Pool | None,
    label: str = "fixmatch",
) -> FinetuneResult:
    """Train ``model`` on the labelled ``train`` and the ``unlabeled`` pool; keep the moving
    average of its weights that scored best on ``val``."""
    if unlabeled is None or len(unlabeled) == 0:
        raise ValueError("the fixmatch mode needs the unlabeled pool")
    world = distributed.world()
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    images, labels = train[0].to(device), train[1].to(device)
    start = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    net = distributed.data_parallel(model)
    average = copy.deepcopy(model)
    average.eval()
    optimiser = torch.optim.AdamW(model.parameters(), lr=semi.lr, weight_decay=config.weight_decay)
    result = FinetuneResult(lr=semi.lr)
    labelled_rows = min(config.batch_size, len(images))
    pool_rows = semi.ratio * config.batch_size
    batches = pool_batches(unlabeled, pool_rows, generator)
    # FixMatch's schedule: the rate decays as cos(7 pi k / 16 K) over the K steps at most.
    steps = semi.epochs * semi.steps_per_epoch
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda k: math.cos(7 * math.pi * k / (16 * steps))
    )
    best_accuracy, best_state, since_best = -1.0, copy.deepcopy(model.state_dict()), 0
    began = time.perf_counter()
    for epoch in range(1, semi.epochs + 1):
        tick = time.perf_counter()
        total_loss, correct, seen, confident, drawn = 0.0, 0, 0, 0.0, 0
        model.train()
        for _ in range(semi.steps_per_epoch):
            picked = torch.randint(
                0, len(images), (labelled_rows,), generator=generator, device=generator.device
            )
            idx = world.local(picked.to(device))
            x_l = augment(to_unit(images[idx]), config, generator, labelled_rows)
            batch = next(batches)
            u = to_unit(batch.images)
            weak = weak_view(u, semi, generator, batch.rows)
            strong = strong_view(u, semi, generator, batch.rows)
            with torch.no_grad():
                probabilities = torch.softmax(model(weak), dim=1)
            confidence, pseudo = probabilities.max(dim=1)
            mask = (confidence >= semi.threshold).to(u.dtype)
            logits = net(torch.cat([x_l, strong]))
            logits_l, logits_u = logits[: len(idx)], logits[len(idx) :]
            # Sums over this rank's rows, over the global batch sizes, times the ranks DDP
            # averages over: each term is its global batch's mean once the gradients meet.
            loss_l = F.cross_entropy(logits_l, labels[idx], reduction="sum")
            loss_u = (F.cross_entropy(logits_u, pseudo, reduction="none") * mask).sum()
            loss = loss_l / labelled_rows + semi.weight * loss_u / batch.rows
            optimiser.zero_grad(set_to_none=True)
            torch.autograd.backward(loss * world.size)
            optimiser.step()
            schedule.step()
            _follow(average, model, semi.ema)
            total_loss += float(loss.detach())
            correct += int((logits_l.argmax(1) == labels[idx]).sum())
            seen += len(idx)
            confident += float(mask.sum())
            drawn += len(u)
        correct = int(distributed.total(correct, device))
        seen = int(distributed.total(seen, device))
        confident_share = distributed.total(confident, device) / distributed.total(drawn, device)
        val_logits = predict_logits(average, val[0])
        val_loss = float(F.cross_entropy(val_logits, val[1].cpu()))
        val_acc = float((val_logits.argmax(1) == val[1].cpu()).float().mean())
        record = EpochRecord(
            epoch,
            total_loss / semi.steps_per_epoch,
            correct / max(seen, 1),
            val_loss,
            val_acc,
            time.perf_counter() - tick,
        )
        result.history.append(record)
        log.info(
            "%s epoch %d/%d loss %.4f pseudo-labelled %.2f val_loss %.4f val_acc %.4f",
            label, epoch, semi.epochs, record.train_loss, confident_share, val_loss, val_acc,
        )  # fmt: skip
        if val_acc > best_accuracy:
            best_accuracy, result.best_epoch, since_best = val_acc, epoch, 0
            best_state = copy.deepcopy(average.state_dict())
        else:
            since_best += 1
            if since_best >= semi.patience:
                log.info("%s: early stop at epoch %d (best %d)", label, epoch, result.best_epoch)
                break
    model.load_state_dict(best_state)
    model.eval()
    result.drift = weight_drift(start, model)
    result.seconds = time.perf_counter() - began
    return result


@torch.no_grad()
def _follow(average: Classifier, model: Classifier, decay: float) -> None:
    """Move the average's weights toward the model's; with no decay, copy them."""
    for kept, current in zip(average.parameters(), model.parameters(), strict=True):
        kept.mul_(decay).add_(current.detach(), alpha=1 - decay)
    for buffer, source in zip(average.buffers(), model.buffers(), strict=True):
        buffer.copy_(source)
