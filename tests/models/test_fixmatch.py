"""The ``fixmatch`` fine-tuning mode: it learns, it reads the pool, it is reproducible, and two
processes train what one trains."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from models.evaluate import evaluate
from models.experiment import Prepared
from models.modes import Mode, SemiConfig
from models.nets import CNNConfig, build_classifier
from models.training import NO_AUGMENTATION, FinetuneConfig
from models.tuning import tuner
from tests.models.helpers import torchrun

ARCH = CNNConfig(channels=(8, 16), kernel_size=3, dense=32)
SEMI = SemiConfig(
    epochs=6, steps_per_epoch=10, patience=6, ratio=3, lr=1e-2, threshold=0.9, ema=0.5,
    weak_shift=1.0, strong_shift=1.0, strong_degrees=10.0, strong_erase=0.25, strong_erase_p=0.3,
)  # fmt: skip
"""A budget for 8x8 digits: a pixel of shift is an eighth of the image."""
RECIPE = FinetuneConfig(batch_size=10, **NO_AUGMENTATION)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny convolutions on several threads of a busy machine spend their time waiting."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def train(prepared: Prepared, semi: SemiConfig = SEMI, seed: int = 0) -> tuple[float, list[int]]:
    """Test accuracy after fixmatch from a random start, and the pool rows each step read."""
    torch.manual_seed(seed)
    model = build_classifier(ARCH, prepared.data.shape, prepared.data.num_classes)
    pool = prepared.pool(torch.device("cpu"))
    read: list[int] = []
    walk = pool.batches

    def batches(*a, **k):  # type: ignore[no-untyped-def]
        for batch in walk(*a, **k):
            read.append(len(batch.images))
            yield batch

    pool.batches = batches  # type: ignore[method-assign]
    tuner(Mode.fixmatch)(
        model,
        prepared.labeled(3, seed),
        prepared.val(),
        RECIPE,
        seed,
        semi=semi,
        unlabeled=pool,
        label="fixmatch",
    )
    return evaluate(model, *prepared.test()).accuracy, read


def test_fixmatch_learns_from_three_labels_per_class_and_the_pool(prepared: Prepared) -> None:
    accuracy, read = train(prepared)
    assert accuracy > 0.5  # chance is 0.1; 30 labelled 8x8 digits
    steps = SEMI.epochs * SEMI.steps_per_epoch
    assert read[:steps] == [SEMI.ratio * 10] * steps  # every step read its share of the pool


def test_the_pools_pseudo_labels_move_the_weights(prepared: Prepared) -> None:
    semi = dataclasses.replace(SEMI, epochs=2, threshold=0.3)
    with_pool = train(prepared, semi)[0]
    assert with_pool != train(prepared, dataclasses.replace(semi, weight=0.0))[0]


def test_the_same_seed_gives_the_same_model_and_another_seed_another(prepared: Prepared) -> None:
    semi = dataclasses.replace(SEMI, epochs=2)
    first, second = train(prepared, semi)[0], train(prepared, semi)[0]
    assert first == second
    assert train(prepared, semi, seed=3)[0] != first


def test_fixmatch_refuses_to_run_without_a_pool(prepared: Prepared) -> None:
    model = build_classifier(ARCH, prepared.data.shape, prepared.data.num_classes)
    with pytest.raises(ValueError, match="unlabeled pool"):
        tuner(Mode.fixmatch)(
            model, prepared.labeled(3, 0), prepared.val(), RECIPE, 0,
            semi=SEMI, unlabeled=None, label="fixmatch",
        )  # fmt: skip


def test_two_processes_train_what_one_trains(tmp_path: Path) -> None:
    one = torchrun("tests.models.fixmatch_run", 1, tmp_path / "one")
    two = torchrun("tests.models.fixmatch_run", 2, tmp_path / "two")
    assert (one["world"], two["world"]) == (1, 2)
    assert one["accuracy"] == two["accuracy"]
    single = load_file(str(tmp_path / "one" / "weights.safetensors"))
    double = load_file(str(tmp_path / "two" / "weights.safetensors"))
    assert single.keys() == double.keys()
    for name, weight in single.items():
        # float64 throughout: the two runs differ by summation order alone (1e-15 or so).
        torch.testing.assert_close(double[name], weight, atol=1e-9, rtol=0, msg=name)
