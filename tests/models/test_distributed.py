"""Two gloo processes on the same global batches and seeds train what one process trains.

Each run goes through torch's own launcher (``torch.distributed.run``), rendezvous on
127.0.0.1; see ``tests/models/distributed_run.py`` for what is trained, and why in float64.
Summing two halves' gradients instead of one whole batch's changes float rounding only.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from models.distributed import World
from tests.models.helpers import torchrun

TOLERANCE = 1e-9
"""Largest absolute difference allowed in any weight after pre-training and fine-tuning.

The runs train in float64 (unit roundoff 1.1e-16). In float32 the training amplified the
first step's rounding about a thousandfold before a ReLU or max-pool boundary flipped, so
float64 rounding stays near 1e-13; a boundary flip needs an input within that distance of
it, a billion times rarer than the float32 flips. 1e-9 leaves four orders of magnitude above
that and six below what training on other numbers moves (the guard below)."""


def launch(nproc: int, out: Path) -> dict[str, object]:
    return torchrun("tests.models.distributed_run", nproc, out)


def test_two_processes_train_what_one_trains(tmp_path: Path) -> None:
    one = launch(1, tmp_path / "one")
    two = launch(2, tmp_path / "two")
    assert (one["world"], two["world"]) == (1, 2)
    assert one["accuracy"] == two["accuracy"]
    single = load_file(str(tmp_path / "one" / "weights.safetensors"))
    double = load_file(str(tmp_path / "two" / "weights.safetensors"))
    assert single.keys() == double.keys()
    assert all(w.dtype == torch.float64 for w in single.values())
    apart = {name: float((double[name] - w).abs().max()) for name, w in single.items()}
    worst = sorted(apart.items(), key=lambda item: -item[1])[:8]
    assert worst[0][1] <= TOLERANCE, f"weights apart (largest first; runs in {tmp_path}): {worst}"
    # every method's layers, after pre-training and after fine-tuning
    assert sum(name.endswith("weight") for name in single) >= 16


def test_the_tolerance_tells_different_training_apart() -> None:
    """Guard for the test above: one batch seed apart, the weights differ by a million times it
    (9e-3): a data-parallel mistake, which trains on other numbers, cannot hide under it."""
    from models.nets import build_classifier
    from models.pretraining import PretrainConfig, pretrain
    from tests.models.distributed_run import ARCHS
    from tests.models.helpers import tiny_digits

    data = tiny_digits(15)
    firsts = []
    for seed in (1, 2):
        torch.manual_seed(0)
        model = build_classifier(ARCHS["dae"], data.shape, data.num_classes)
        config = PretrainConfig(epochs=1, batch_size=20)
        pretrain(
            model, torch.from_numpy(data.images), "dae", config, torch.Generator().manual_seed(seed)
        )
        firsts.append(next(iter(model.weight_layers().values())).weight.detach())
    assert float((firsts[0] - firsts[1]).abs().max()) > 1e6 * TOLERANCE


@pytest.mark.parametrize(("total", "size"), [(10, 2), (11, 2), (1, 2), (7, 3)])
def test_ranks_slice_a_batch_into_contiguous_parts_covering_it(total: int, size: int) -> None:
    parts = [World(rank=r, size=size).part(total) for r in range(size)]
    assert parts[0][0] == 0
    assert parts[-1][1] == total
    assert all(a[1] == b[0] for a, b in itertools.pairwise(parts))
    assert max(b - a for a, b in parts) - min(b - a for a, b in parts) <= 1
