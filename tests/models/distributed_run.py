"""One data-parallel training run for the equivalence test; start it with torch's launcher.

``python -m torch.distributed.run --nproc-per-node N -m tests.models.distributed_run OUT``
pre-trains with every method and fine-tunes on tiny digits, on CPU with gloo, and rank 0
writes every trained weight and the final test accuracy to ``OUT``. Every rank uses the same
GLOBAL batch sizes, so the output must not depend on N.
"""

from __future__ import annotations

import json
import sys
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
# SGD, not Adam: Adam divides each step by the gradient's running RMS, which near a zero
# gradient magnifies the rounding of another summation order (VICReg's conv weights moved
# 1.5e-4 apart); SGD keeps the two runs a rounding apart, so the check can stay tight.
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


def main(out: Path) -> None:
    torch.set_num_threads(1)
    world = distributed.init_from_env(torch.device("cpu"))
    data = tiny_digits(15)
    prepared = Prepared(data, make_splits(data, SplitConfig(split_seed=0)))
    weights: dict[str, torch.Tensor] = {}
    accuracy: dict[str, float] = {}
    for method, arch in ARCHS.items():
        torch.manual_seed(0)
        model = build_classifier(arch, data.shape, data.num_classes)
        generator = torch.Generator().manual_seed(1)
        pretrain(model, prepared.pool(torch.device("cpu")), method, PRETRAIN, generator)  # type: ignore[arg-type]
        weights.update(
            {f"{method}.pretrained.{k}": v.clone() for k, v in model.state_dict().items()}
        )
        finetune(model, prepared.labeled(5, 0), prepared.val(), FINETUNE, seed=2)
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
    main(Path(sys.argv[1]))
