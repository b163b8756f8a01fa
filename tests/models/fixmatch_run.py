"""One data-parallel run of the ``fixmatch`` fine-tuning mode, for the equivalence test.

``python -m torch.distributed.run --nproc-per-node N -m tests.models.fixmatch_run OUT`` trains
a tiny CNN on 8x8 digits with three labels per class and the rest of the pool unlabeled, on CPU
with gloo, in float64 (as ``tests.models.distributed_run`` explains), and rank 0 writes the
weights and the test accuracy to ``OUT``. Every rank uses the same global batch sizes, so the
output must not depend on N.
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
from models.fixmatch import tune
from models.modes import SemiConfig
from models.nets import CNNConfig, build_classifier
from models.training import FinetuneConfig
from tests.models.helpers import tiny_digits

ARCH = CNNConfig(channels=(4, 8), kernel_size=3, dense=16)
FINETUNE = FinetuneConfig(batch_size=10, augment_shift=1.0, augment_degrees=10.0)
SEMI = SemiConfig(
    epochs=3, steps_per_epoch=4, patience=3, ratio=3, threshold=0.3, lr=1e-2, ema=0.5,
    weak_shift=1.0, strong_shift=1.0, strong_degrees=10.0,
)  # fmt: skip
"""A low threshold, so that pseudo-labels take part from the first steps of a random start."""


def main(out: Path) -> None:
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)
    world = distributed.init_from_env(torch.device("cpu"))
    data = tiny_digits(15)
    prepared = Prepared(data, make_splits(data, SplitConfig(split_seed=0)))
    torch.manual_seed(0)
    model = build_classifier(ARCH, data.shape, data.num_classes)
    result = tune(
        model,
        prepared.labeled(3, 0),
        prepared.val(),
        FINETUNE,
        seed=1,
        semi=SEMI,
        unlabeled=prepared.pool(torch.device("cpu")),
        label="fixmatch",
    )
    if world.main:
        out.mkdir(parents=True, exist_ok=True)
        weights = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
        save_file(weights, str(out / "weights.safetensors"))
        accuracy = evaluate(model, *prepared.test()).accuracy
        history = [record.train_loss for record in result.history]
        (out / "result.json").write_text(
            json.dumps({"world": world.size, "accuracy": accuracy, "losses": history})
        )
    distributed.shutdown()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
