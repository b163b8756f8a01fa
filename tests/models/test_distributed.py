"""Two gloo processes on the same global batches and seeds train what one process trains.

Each run goes through torch's own launcher (``torch.distributed.run``), rendezvous on
127.0.0.1; see ``tests/models/distributed_run.py`` for what is trained. Summing two halves'
gradients instead of one whole batch's changes float rounding only, hence the tolerance.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from models.distributed import World

ROOT = Path(__file__).resolve().parents[2]
TOLERANCE = 1e-4
"""Largest absolute difference allowed in any weight after pre-training and fine-tuning."""


def launch(nproc: int, out: Path) -> dict[str, object]:
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    command = [
        "nice", "-n", "10", sys.executable, "-m", "torch.distributed.run",
        "--nnodes=1", f"--nproc-per-node={nproc}",
        "--rdzv-backend=c10d", "--rdzv-endpoint=127.0.0.1:0",
        "-m", "tests.models.distributed_run", str(out),
    ]  # fmt: skip
    done = subprocess.run(
        command, check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, object] = json.loads((out / "result.json").read_text())
    return result


def test_two_processes_train_what_one_trains(tmp_path: Path) -> None:
    one = launch(1, tmp_path / "one")
    two = launch(2, tmp_path / "two")
    assert (one["world"], two["world"]) == (1, 2)
    assert one["accuracy"] == two["accuracy"]
    single = load_file(str(tmp_path / "one" / "weights.safetensors"))
    double = load_file(str(tmp_path / "two" / "weights.safetensors"))
    assert single.keys() == double.keys()
    moved = 0
    for name, weight in single.items():
        torch.testing.assert_close(double[name], weight, atol=TOLERANCE, rtol=0, msg=name)
        moved += int(name.endswith("weight"))
    assert moved >= 16  # every method's layers, after pre-training and after fine-tuning


def test_the_tolerance_tells_different_training_apart() -> None:
    """Guard for the test above: one batch seed apart, the weights differ by far more than it."""
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
    assert float((firsts[0] - firsts[1]).abs().max()) > 10 * TOLERANCE


@pytest.mark.parametrize(("total", "size"), [(10, 2), (11, 2), (1, 2), (7, 3)])
def test_ranks_slice_a_batch_into_contiguous_parts_covering_it(total: int, size: int) -> None:
    parts = [World(rank=r, size=size).part(total) for r in range(size)]
    assert parts[0][0] == 0
    assert parts[-1][1] == total
    assert all(a[1] == b[0] for a, b in itertools.pairwise(parts))
    assert max(b - a for a, b in parts) - min(b - a for a, b in parts) <= 1
