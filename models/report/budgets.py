"""How big a report's sweep is; plain numbers only, so the command line imports no torch."""

from __future__ import annotations

from dataclasses import dataclass, field

from models.methods import Method
from models.modes import SemiConfig

ALL = 0
"""A label budget of every pool image of the smallest class."""

OPTIMIZERS: dict[str, dict[str, float | str]] = {
    # Common defaults for each rule, not tuned per variant: both variants get the same one.
    "sgd": {"optimizer": "sgd", "lr": 0.1, "momentum": 0.0},
    "momentum": {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9},
    "adagrad": {"optimizer": "adagrad", "lr": 0.01},
    "rmsprop": {"optimizer": "rmsprop", "lr": 1e-3},
    "adam": {"optimizer": "adam", "lr": 1e-3},
}
MAIN_OPTIMIZER = "adam"
HISTORICAL_OPTIMIZER = "sgd"


@dataclass(frozen=True)
class Budget:
    """The grid of one report and the training budget of every run in it."""

    name: str
    seeds: int
    labels: tuple[int, ...]
    """Labels per class of the main study, smallest first; ``ALL`` is the whole pool."""
    mlp_width: int
    mlp_depth: int
    """Hidden layers of the MLP in the main and optimiser studies."""
    depths: tuple[int, ...]
    depth_labels: int
    depth_methods: tuple[Method, ...]
    optimizer_labels: int
    optimizer_method: Method
    historical_depth: int
    """Hidden layers of the deliberately historical setting: sigmoid, plain SGD, naive init."""
    cnn_channels: tuple[int, ...]
    cnn_dense: int
    pretrain_epochs: int
    max_epochs: int
    patience: int
    min_steps_per_epoch: int
    batch_size: int = 32
    optimizers: tuple[str, ...] = tuple(OPTIMIZERS)
    mlp_methods: tuple[Method, ...] = (Method.none, Method.rbm, Method.dae)
    cnn_methods: tuple[Method, ...] = (Method.none, Method.cae, Method.contrastive)
    transfer_method: Method = Method.cae
    """The transfer panel's unsupervised pre-training (on the target's pool or the source)."""
    panel_labels: tuple[int, ...] | None = None
    """The transfer panel's label budgets; ``None``: the main study's."""
    semi_labels: tuple[int, ...] = (10, 100)
    """Label budgets of the 2 x 2 panel (pre-training x semi-supervised fine-tuning, CNN)."""
    semi_seeds: int = 5
    """Seeds of the 2 x 2 panel at most (fewer if the report has fewer)."""
    semi_method: Method = Method.contrastive
    """The 2 x 2 panel's pre-training (its other level is none)."""
    semi: SemiConfig = field(default_factory=SemiConfig)
    """The recipe of the 2 x 2 panel's semi-supervised (FixMatch) cells."""
    expected: str = ""
    """What to expect of the wall time, said before the sweep starts."""
    hidden_from_help: bool = field(default=False, compare=False)

    @property
    def transfer_labels(self) -> tuple[int, ...]:
        return self.labels if self.panel_labels is None else self.panel_labels

    @property
    def showcase_labels(self) -> int:
        """The label budget whose first-seed runs keep weights and embeddings for pictures."""
        return self.labels[0]


BUDGETS: dict[str, Budget] = {
    "quick": Budget(
        name="quick",
        seeds=5,
        labels=(10, 30, 100, ALL),
        mlp_width=256,
        mlp_depth=2,
        depths=(1, 2, 3),
        depth_labels=30,
        depth_methods=(Method.rbm, Method.dae),
        optimizer_labels=10,
        optimizer_method=Method.rbm,
        historical_depth=3,
        cnn_channels=(8, 16),
        cnn_dense=64,
        pretrain_epochs=8,
        max_epochs=20,
        patience=4,
        min_steps_per_epoch=25,
        # The 2 x 2 panel: 20 FixMatch runs of 300 steps (15 s of CPU each, 43 s wall on a
        # busy machine) and 20 augmented supervised ones (8 s of CPU, 22 s wall).
        semi=SemiConfig(epochs=6, steps_per_epoch=50, patience=3),
        # 18 and 22.5 min measured, busy, before the 2 x 2 panel added about 8 CPU minutes.
        expected="about 25 to 45 minutes on 2 CPU cores",
    ),
    "full": Budget(
        name="full",
        seeds=10,
        labels=(3, 10, 30, 100, ALL),
        mlp_width=500,
        mlp_depth=3,
        depths=(1, 2, 3),
        depth_labels=30,
        depth_methods=(Method.rbm, Method.dae),
        optimizer_labels=10,
        optimizer_method=Method.rbm,
        historical_depth=3,
        cnn_channels=(16, 32),
        cnn_dense=128,
        pretrain_epochs=15,
        max_epochs=50,
        patience=8,
        min_steps_per_epoch=50,
        transfer_method=Method.contrastive,
        panel_labels=(10, 100),
        semi_labels=(3, 10, 30, 100),
        semi_seeds=5,
        # One FixMatch run of this CNN at 10 labels per class took 49 s of CPU for 600 steps
        # (117 s wall, nice 10, load 9.4 on 2 cores), an augmented supervised one 21 s of CPU
        # at 100 labels: 40 + 40 such runs at 800 steps come to about 58 CPU minutes, about
        # 30 minutes with --jobs 2 on 2 idle cores.
        semi=SemiConfig(epochs=10, steps_per_epoch=80, patience=4),
        # The 680 runs, panel included, record 213 minutes of training: about 107 per process
        # with --jobs 2, and the two shards took 109 and 87 minutes beside the test suite.
        expected="about 2 hours on 2 CPU cores with --jobs 2",
    ),
    "tiny": Budget(
        name="tiny",
        seeds=2,
        labels=(2, ALL),
        mlp_width=16,
        mlp_depth=2,
        depths=(1, 2),
        depth_labels=2,
        depth_methods=(Method.dae,),
        optimizer_labels=2,
        optimizer_method=Method.dae,
        historical_depth=2,
        cnn_channels=(4, 8),
        cnn_dense=16,
        pretrain_epochs=1,
        max_epochs=2,
        patience=1,
        min_steps_per_epoch=2,
        semi_labels=(2, ALL),
        semi_seeds=2,
        semi=SemiConfig(epochs=2, steps_per_epoch=3, patience=1, ratio=2),
        expected="seconds: a smoke test of the whole report, not evidence",
        hidden_from_help=True,
    ),
}
PUBLIC_BUDGETS = tuple(name for name, b in BUDGETS.items() if not b.hidden_from_help)
