"""One data-parallel training run for the equivalence test; start it with torch's launcher.

``python -m torch.distributed.run --nproc-per-node N -m tests.models.distributed_run OUT``
pre-trains with every method and fine-tunes on tiny digits, on CPU with gloo, and rank 0
writes every trained weight and the final test accuracy to ``OUT``. Every rank uses the same
GLOBAL batch sizes, so the output must not depend on N. ``OUT SEED METHOD...`` trains only
those methods, from other seeds (the test's run is seed 0, every method).

It trains in float64. N processes sum a batch's gradient in another order than one process,
and training amplifies that rounding: in float32 the first step's 1e-7 grew to 1e-4 in
VICReg's Adam pre-training for some seeds, and fine-tuning from two starts 1e-4 apart, in
one process, ended 9e-2 apart. Starts 1e-6 to 1e-12 apart end about four times as far apart
as they began; past some distance a ReLU or max-pool input sits on its boundary in one run
and not in the other, and sends the gradient elsewhere. No tolerance on float32 weights
holds for every seed. In float64 the two runs end within 3e-13 of each other (VICReg, seeds 0
to 49), while a mistake in the data-parallel code (a slice lost or counted twice, a
misweighted share) trains on other numbers, which moves weights by far more (other batches:
9e-3 after one epoch).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import save_file

from models import distributed
from models.data import SplitConfig, make_splits
from models.evaluate import evaluate
from models.experiment import Prepared
from models.nets import CNNConfig, MLPConfig, build_classifier
from models.pretraining import PretrainConfig, pretrain
from models.training import FinetuneConfig, finetune
from tests.models.helpers import tiny_digits

PRETRAIN = PretrainConfig(epochs=2, batch_size=20)
# SGD here; the joint-embedding pre-training methods train with Adam.
FINETUNE = FinetuneConfig(
    optimizer="sgd", batch_size=10, lr=5e-2, max_epochs=4, patience=4, min_steps_per_epoch=5
)
ARCHS = {
    "rbm": MLPConfig(hidden=(24, 16)),
    "dae": MLPConfig(hidden=(24, 16)),
    "cae": CNNConfig(channels=(4, 8), kernel_size=3, dense=16),
    "contrastive": CNNConfig(channels=(4, 8), kernel_size=3, dense=16),
    "vicreg": CNNConfig(channels=(4, 8), kernel_size=3, dense=16),
}


def main(out: Path, seed: int = 0, methods: Sequence[str] = tuple(ARCHS)) -> None:
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)
    world = distributed.init_from_env(torch.device("cpu"))
    data = tiny_digits(15)
    prepared = Prepared(data, make_splits(data, SplitConfig(split_seed=0)))
    weights: dict[str, torch.Tensor] = {}
    accuracy: dict[str, float] = {}
    for method in methods:
        torch.manual_seed(seed)
        model = build_classifier(ARCHS[method], data.shape, data.num_classes)
        generator = torch.Generator().manual_seed(seed + 1)
        pretrain(model, prepared.pool(torch.device("cpu")), method, PRETRAIN, generator)  # type: ignore[arg-type]
        weights.update(
            {f"{method}.pretrained.{k}": v.clone() for k, v in model.state_dict().items()}
        )
        finetune(model, prepared.labeled(5, 0), prepared.val(), FINETUNE, seed=seed + 2)
        weights.update(
            {f"{method}.finetuned.{k}": v.clone() for k, v in model.state_dict().items()}
        )
        accuracy[method] = evaluate(model, *prepared.test()).accuracy
    if world.main:
        out.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in weights.items()}, str(out / "weights.safetensors"))
        (out / "result.json").write_text(json.dumps({"world": world.size, "accuracy": accuracy}))
    distributed.shutdown()


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]) if sys.argv[2:] else 0, sys.argv[3:] or tuple(ARCHS))
