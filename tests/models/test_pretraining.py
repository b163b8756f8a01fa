from __future__ import annotations

import pytest
import torch

from models.batches import Pool
from models.data import ImageSet
from models.errors import ConfigError
from models.methods import check_pairing
from models.nets import CNNConfig, MLPConfig, build_classifier
from models.pretraining import PretrainConfig, pretrain
from models.pretraining.contrastive import nt_xent
from models.pretraining.vicreg import vicreg_loss

TINY = {"mlp": MLPConfig(hidden=(32, 16)), "cnn": CNNConfig(channels=(4, 8), dense=16)}


@pytest.mark.parametrize(
    ("arch", "method"),
    [("mlp", "rbm"), ("mlp", "dae"), ("cnn", "cae"), ("cnn", "contrastive"), ("cnn", "vicreg")],
)
def test_each_method_learns_the_encoder_and_leaves_the_head(
    digits300: ImageSet, arch: str, method: str
) -> None:
    model = build_classifier(TINY[arch], digits300.shape, 10)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pool = torch.from_numpy(digits300.images)
    report = pretrain(
        model,
        pool,
        check_pairing(arch, method),
        # CD-1 leaves a plateau at first; small batches get it past that in 4 epochs
        PretrainConfig(epochs=4, batch_size=8, lr=0.1)
        if method == "rbm"
        else PretrainConfig(epochs=4, batch_size=32, projection_dim=8),
        torch.Generator().manual_seed(0),
    )
    after = model.state_dict()
    assert torch.equal(after["head.weight"], before["head.weight"])
    first = next(iter(model.weight_layers()))
    assert not torch.equal(after[f"{first}.weight"], before[f"{first}.weight"])
    for stage, losses in report.losses.items():
        assert len(losses) == 4
        assert losses[-1] < losses[0], f"{method} {stage} did not learn: {losses}"


def test_rbm_stack_fills_every_hidden_layer(digits300: ImageSet) -> None:
    model = build_classifier(TINY["mlp"], digits300.shape, 10)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = pretrain(
        model,
        torch.from_numpy(digits300.images),
        "rbm",
        PretrainConfig(epochs=1),
        torch.Generator().manual_seed(0),
    )
    assert list(report.losses) == ["rbm0", "rbm1"]
    for name in ("layers.0", "layers.1"):
        assert not torch.equal(model.state_dict()[f"{name}.weight"], before[f"{name}.weight"])


def test_rbm_needs_sigmoid_units(digits300: ImageSet) -> None:
    model = build_classifier(MLPConfig(hidden=(8,), activation="relu"), digits300.shape, 10)
    with pytest.raises(ConfigError, match="sigmoid"):
        pretrain(
            model, torch.from_numpy(digits300.images), "rbm", PretrainConfig(epochs=1),
            torch.Generator(),
        )  # fmt: skip


def test_nt_xent_rewards_matching_views() -> None:
    z = torch.nn.functional.one_hot(torch.arange(8), 8).float() * 5
    matched = nt_xent(z, z.clone(), temperature=0.05)
    shuffled = nt_xent(z, z[torch.randperm(8, generator=torch.Generator().manual_seed(1))], 0.05)
    assert float(matched) < 0.01 < float(shuffled)


def test_vicreg_loss_punishes_collapse_and_rewards_matching_spread_views() -> None:
    spread = torch.randn(64, 8, generator=torch.Generator().manual_seed(0)) * 2
    matched = vicreg_loss(spread, spread.clone())
    collapsed = vicreg_loss(torch.zeros(64, 8), torch.zeros(64, 8))
    mismatched = vicreg_loss(spread, spread.roll(1, dims=0))
    # Twins agree, so only the (chance) covariances cost; a collapse pays the variance
    # hinge in full (25 x (1 - 0.01)); shuffled twins pay the invariance term.
    assert float(matched) < 5.0
    assert 20.0 < float(collapsed) < 30.0
    assert float(mismatched) > 30.0


def test_a_method_refuses_a_network_it_does_not_fit(digits300: ImageSet) -> None:
    model = build_classifier(TINY["mlp"], digits300.shape, 10)
    with pytest.raises(ConfigError, match="method 'cae' does not apply to arch 'mlp'"):
        pretrain(
            model, torch.from_numpy(digits300.images), "cae", PretrainConfig(epochs=1),
            torch.Generator(),
        )  # fmt: skip


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_supervised_pre_training_learns_the_source_task_and_leaves_the_head(
    digits300: ImageSet, arch: str
) -> None:
    model = build_classifier(TINY[arch], digits300.shape, 3)  # a target with 3 classes
    before = {k: v.clone() for k, v in model.state_dict().items()}
    source = Pool(
        torch.from_numpy(digits300.images),
        torch.device("cpu"),
        labels=torch.from_numpy(digits300.labels),
        classes=10,
    )
    report = pretrain(
        model,
        source,
        check_pairing(arch, "supervised"),
        PretrainConfig(epochs=4, batch_size=16, lr=0.01),
        torch.Generator().manual_seed(0),
    )
    after = model.state_dict()
    assert torch.equal(after["head.weight"], before["head.weight"])
    moved = [k for k in after if k != "head.weight" and k != "head.bias"]
    assert all(not torch.equal(after[k], before[k]) for k in moved)
    losses = report.losses["supervised"]
    assert losses[-1] < 0.8 * losses[0]  # it did learn the ten source classes


def test_supervised_pre_training_refuses_an_unlabeled_pool(digits300: ImageSet) -> None:
    model = build_classifier(TINY["cnn"], digits300.shape, 10)
    with pytest.raises(ConfigError, match="needs labelled source images"):
        pretrain(
            model,
            torch.from_numpy(digits300.images),
            check_pairing("cnn", "supervised"),
            PretrainConfig(epochs=1),
            torch.Generator().manual_seed(0),
        )
