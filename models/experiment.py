"""The reusable core: one experiment = pre-train -> fine-tune it + train the baseline -> test.

Typical use, e.g. in a sweep over methods x label budgets x seeds x depths x optimisers::

    from models.experiment import ExperimentConfig, run_experiment
    from models.nets import MLPConfig
    from models.training import FinetuneConfig

    cfg = ExperimentConfig(arch="mlp", method="dae", mlp=MLPConfig(hidden=(500, 500)),
                           labels_per_class=10, seed=1,
                           finetune=FinetuneConfig(optimizer="sgd", lr=0.05))
    result = run_experiment(cfg, cache_dir=Path("cache/pretrained"))
    result.pretrained.test.accuracy, result.baseline.test.accuracy
    result.pretrained.finetune.history      # per-epoch curves
    result.pretrained.finetune.drift        # per-layer relative weight drift
    result.pretrained.first_layer_before    # first-layer weights, for pictures

With ``cache_dir`` the pre-trained encoder is stored under a key of everything that shapes
it (data, pre-training data, split, architecture, method, pre-training budget, seed) but not
the label budget or fine-tuning recipe, so a sweep over label budgets pre-trains once.

Pre-training sees the target's unlabeled pool, or with ``pretrain_dataset`` another data
set's images (:mod:`models.transfer`), with their labels for the ``supervised`` method. :func:`load_data` can
be called once and passed in as ``prepared`` to skip reloading the images.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from numpy.typing import NDArray

from models import defaults, distributed
from models.batches import LazyImages, Pool, loader_workers
from models.checkpoint import load_checkpoint, save_checkpoint
from models.data import ImageSet, SplitConfig, Splits, make_splits
from models.device import resolve_device
from models.errors import ConfigError
from models.evaluate import Metrics, evaluate
from models.methods import DEFAULT_METHOD, Method, check_pairing
from models.modes import DEFAULT_MODE, Mode, SemiConfig, check_mode
from models.nets import ArchConfig, Classifier, CNNConfig, MLPConfig, arch_config, build_classifier
from models.pretraining import PretrainConfig, PretrainReport, pretrain
from models.probe import KnnProbe
from models.sources import load_dataset
from models.training import FinetuneConfig, FinetuneResult
from models.tuning import tuner

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything one pre-trained-vs-baseline comparison depends on."""

    dataset: str = defaults.DATASET
    pretrain_dataset: str | None = None
    """The data set pre-training sees (any spec :mod:`models.sources` reads); ``None``: the
    target's own unlabeled pool."""
    arch: str = defaults.ARCH
    method: Method = DEFAULT_METHOD[defaults.ARCH]
    """Pre-training of the ``pretrained`` variant; the baseline always uses ``none``. A name
    (``"dae"``) is accepted and checked against ``arch`` here, once."""
    mlp: MLPConfig = field(default_factory=MLPConfig)
    cnn: CNNConfig = field(default_factory=CNNConfig)
    labels_per_class: int = defaults.LABELS_PER_CLASS
    seed: int = defaults.SEED
    """Seeds the labeled draw, the initialisation, pre-training and fine-tuning."""
    split: SplitConfig = field(default_factory=SplitConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    mode: Mode = Mode.supervised
    """How the ``pretrained`` variant is fine-tuned (:mod:`models.modes`); the baseline is
    always ``supervised``, on the labels alone. A name (``"fixmatch"``) is accepted."""
    semi: SemiConfig = field(default_factory=SemiConfig)
    """The recipe of the modes that learn from the unlabeled pool too."""
    device: str = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "method", check_pairing(self.arch, self.method))
        object.__setattr__(self, "mode", check_mode(self.mode))
        if self.method is Method.supervised and self.pretrain_dataset is None:
            raise ConfigError(
                "method 'supervised' pre-trains on a source task's labels: give the source with "
                "--pretrain-dataset (e.g. mnist-5k:0-4 for the target mnist-5k:5-9)"
            )
        if self.seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {self.seed}")
        if self.labels_per_class < 1:
            raise ConfigError(f"labels per class must be at least 1, got {self.labels_per_class}")

    @property
    def arch_config(self) -> ArchConfig:
        return self.mlp if self.arch == "mlp" else self.cnn

    def quick(self) -> ExperimentConfig:
        """The same experiment with every budget shrunk to a smoke test's."""
        return replace(
            self,
            pretrain=replace(self.pretrain, epochs=1),
            # One rate (the recipe's last choice) and a hundred steps: enough for a smoke
            # test's models to be far better than chance, in seconds.
            finetune=replace(
                self.finetune,
                max_epochs=4,
                patience=2,
                min_steps_per_epoch=25,
                lr_choices=self.finetune.lr_choices[-1:],
            ),
            semi=replace(self.semi, epochs=2, steps_per_epoch=30, patience=1),
        )

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))  # type: ignore[no-any-return]

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ExperimentConfig:
        """Inverse of :meth:`to_dict` (tuples come back from JSON lists)."""
        raw = dict(raw)
        try:
            mlp = arch_config("mlp", raw.pop("mlp", None))
            cnn = arch_config("cnn", raw.pop("cnn", None))
            return cls(
                mlp=mlp,  # type: ignore[arg-type]
                cnn=cnn,  # type: ignore[arg-type]
                split=SplitConfig(**raw.pop("split", {})),
                pretrain=PretrainConfig(**raw.pop("pretrain", {})),
                finetune=FinetuneConfig(**raw.pop("finetune", {})),
                semi=SemiConfig(**raw.pop("semi", {})),
                **raw,
            )
        except TypeError as exc:
            raise ConfigError(f"bad experiment config: {exc}") from None

    def pretrain_key(self) -> str:
        """Hash of what shapes the pre-trained encoder (not labels or the fine-tuning recipe)."""
        shaping = {
            "dataset": self.dataset,
            "split": dataclasses.asdict(self.split),
            "arch": self.arch,
            "arch_config": dataclasses.asdict(self.arch_config),
            "method": self.method,
            "pretrain": dataclasses.asdict(self.pretrain),
            "seed": self.seed,
        }
        if self.pretrain_dataset is not None:  # absent otherwise: older keys stay valid
            shaping["pretrain_dataset"] = self.pretrain_dataset
        return hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()[:24]


@dataclass(frozen=True)
class Prepared:
    """The image set and its splits, ready for any number of experiments on them."""

    data: ImageSet
    splits: Splits

    def images(self, index: NDArray[np.int64]) -> torch.Tensor:
        return torch.from_numpy(np.asarray(self.data.images[index], dtype=np.uint8))

    def labels(self, index: NDArray[np.int64]) -> torch.Tensor:
        return torch.from_numpy(self.data.labels[index])

    def pool_images(self) -> torch.Tensor:
        """The unlabeled pool (no test or validation image), which pre-training sees."""
        return self.images(self.splits.pool)

    def pool(self, device: torch.device) -> Pool:
        """The pool as pre-training walks it: on ``device``, or streamed from disk by workers."""
        if self.data.streamed:
            lazy = cast(LazyImages, self.data.images)
            return Pool(lazy, device, workers=loader_workers(), subset=self.splits.pool)
        return Pool(self.pool_images(), device)

    def pretraining_pool(self, config: ExperimentConfig, device: torch.device) -> Pool:
        """What ``config``'s pre-training sees: this pool (unlabeled), or the images of
        ``config.pretrain_dataset`` conformed to this data set's input, with their labels and
        without any of this set's test or validation images."""
        if config.pretrain_dataset is None:
            return self.pool(device)
        from models.transfer import pretraining_set

        source = pretraining_set(
            config.pretrain_dataset,
            self.data,
            self.splits,
            labelled=config.method is Method.supervised,
        )
        labels = torch.from_numpy(source.labels)
        if source.streamed:
            lazy = cast(LazyImages, source.images)
            return Pool(
                lazy, device, workers=loader_workers(), labels=labels, classes=source.num_classes
            )
        images = torch.from_numpy(np.asarray(source.images, dtype=np.uint8))
        return Pool(images, device, labels=labels, classes=source.num_classes)

    def labeled(self, labels_per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        index = self.splits.labeled(self.data, labels_per_class, seed)
        return self.images(index), self.labels(index)

    def val(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images(self.splits.val), self.labels(self.splits.val)

    def test(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images(self.splits.test), self.labels(self.splits.test)


@dataclass
class VariantResult:
    """One trained variant: the model, its curves and drift, and its test metrics."""

    variant: str
    method: Method
    model: Classifier
    finetune: FinetuneResult
    test: Metrics
    first_layer_before: NDArray[np.float32]
    """First-layer weights when fine-tuning began (after pre-training, or random)."""
    mode: Mode = Mode.supervised

    @property
    def first_layer_after(self) -> NDArray[np.float32]:
        first = next(iter(self.model.weight_layers().values()))
        return first.weight.detach().cpu().numpy().copy()


@dataclass
class ExperimentResult:
    """Both variants of one experiment, plus what pre-training reported."""

    config: ExperimentConfig
    pretraining: PretrainReport
    pretrained: VariantResult
    baseline: VariantResult
    num_labeled: int
    num_unlabeled: int


BUILD_LR_CHOICES = (3e-4, 1e-3, 3e-3)
"""The fine-tuning rates a build tries for each variant, keeping each one's best on validation."""


def build_recipe(config: ExperimentConfig) -> ExperimentConfig:
    """``config`` with the pre-training budget its method is registered with and the default
    fine-tuning mode: what ``headstart build`` trains unless told otherwise."""
    method = config.method
    return replace(
        config,
        pretrain=replace(config.pretrain, epochs=method.epochs, batch_size=method.batch_size),
        finetune=replace(config.finetune, lr_choices=BUILD_LR_CHOICES),
        mode=DEFAULT_MODE,
    )


def load_data(config: ExperimentConfig) -> Prepared:
    """Load ``config.dataset`` and cut it into splits."""
    data = load_dataset(config.dataset)
    return Prepared(data=data, splits=make_splits(data, config.split))


def fresh_model(config: ExperimentConfig, prepared: Prepared) -> Classifier:
    """A randomly initialised classifier; the same seed gives the same weights."""
    torch.manual_seed(config.seed)
    return build_classifier(config.arch_config, prepared.data.shape, prepared.data.num_classes)


def probe_of(model: Classifier, config: ExperimentConfig, prepared: Prepared) -> KnnProbe:
    """The k-NN probe of ``model``'s encoder: the labelled draw is its memory, validation asks."""
    return KnnProbe(model, prepared.labeled(config.labels_per_class, config.seed), prepared.val())


def pretrained_start(
    config: ExperimentConfig,
    prepared: Prepared,
    *,
    cache_dir: Path | None = None,
) -> tuple[Classifier, PretrainReport]:
    """The pre-trained classifier fine-tuning starts from (reused from ``cache_dir`` if there)."""
    device = resolve_device(config.device)
    cached = (
        cache_dir / f"{config.method}-{config.pretrain_key()}.safetensors" if cache_dir else None
    )
    if cached is not None and cached.is_file():
        checkpoint = load_checkpoint(cached, device)
        log.info("pre-trained encoder reused from %s", cached)
        info = dict(checkpoint.info["pretraining"])
        probed_with = info.pop("probe_labels", None)
        report = PretrainReport(method=config.method, **info)
        if probed_with != config.labels_per_class:
            # The curve was measured against another label budget's memory; the end point
            # is measured again against this one's.
            report.probe = [round(probe_of(checkpoint.model, config, prepared)(), 4)]
        return checkpoint.model, report
    model = fresh_model(config, prepared).to(device)
    model.train()
    generator = torch.Generator(device=device).manual_seed(config.seed)
    pool = prepared.pretraining_pool(config, device)
    probe = probe_of(model, config, prepared)
    report = pretrain(model, pool, config.method, config.pretrain, generator, probe=probe)
    report.probe = probe.history
    report.dataset = config.pretrain_dataset or config.dataset
    report.num_images = len(pool)
    if cached is not None and distributed.world().main:  # every rank holds the same encoder
        save_checkpoint(
            cached,
            model,
            {
                "stage": "pretrained",
                "experiment": config.to_dict(),
                "pretraining": {
                    "losses": report.losses,
                    "seconds": report.seconds,
                    "dataset": report.dataset,
                    "num_images": report.num_images,
                    "probe": report.probe,
                    "probe_labels": config.labels_per_class,
                },
            },
        )
    return model, report


def train_variant(
    model: Classifier,
    config: ExperimentConfig,
    prepared: Prepared,
    *,
    variant: str,
    method: Method,
    mode: Mode = Mode.supervised,
) -> VariantResult:
    """Fine-tune ``model`` on the labeled draw with the shared recipe in ``mode`` (which may
    learn from the unlabeled pool as well), then test it."""
    device = resolve_device(config.device)
    model.to(device)
    first = next(iter(model.weight_layers().values()))
    before = first.weight.detach().cpu().numpy().copy()
    result = tuner(mode)(
        model,
        prepared.labeled(config.labels_per_class, config.seed),
        prepared.val(),
        config.finetune,
        config.seed,
        semi=config.semi,
        unlabeled=prepared.pool(device) if mode.unlabeled else None,
        label=variant if mode is Mode.supervised else f"{variant} {mode}",
    )
    images, labels = prepared.test()
    metrics = evaluate(model, images, labels)
    log.info(
        "%s (%s, %s): test accuracy %.4f nll %.4f after %d epochs (best %d)",
        variant, method, mode, metrics.accuracy, metrics.nll, len(result.history), result.best_epoch,
    )  # fmt: skip
    return VariantResult(variant, method, model, result, metrics, before, mode)


def run_experiment(
    config: ExperimentConfig,
    *,
    prepared: Prepared | None = None,
    cache_dir: Path | None = None,
) -> ExperimentResult:
    """Pre-train, fine-tune the pre-trained start in ``config.mode``, train the baseline on the
    labels alone, and test both."""
    prepared = prepared or load_data(config)
    start, report = pretrained_start(config, prepared, cache_dir=cache_dir)
    pretrained = train_variant(
        start, config, prepared, variant="pretrained", method=config.method, mode=config.mode
    )
    baseline = train_variant(
        fresh_model(config, prepared), config, prepared, variant="baseline", method=Method.none
    )
    return ExperimentResult(
        config=config,
        pretraining=report,
        pretrained=pretrained,
        baseline=baseline,
        num_labeled=config.labels_per_class * prepared.data.num_classes,
        num_unlabeled=len(prepared.splits.pool),
    )
