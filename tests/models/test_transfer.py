"""Pre-training on another data set: conformed to the target, never on its held-out images."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from models import experiment
from models.data import ImageSet, SplitConfig, make_splits
from models.errors import ConfigError
from models.experiment import ExperimentConfig, load_data, pretrained_start
from models.nets import CNNConfig
from models.pretraining import PretrainConfig
from models.sources import framed_like_mnist, load_dataset
from models.transfer import Target, conform, pretraining_set
from service.manifest import MNIST_FRAMING
from tests.models.helpers import write_idx


def mnist_like_target(count: int = 40) -> ImageSet:
    """A stand-in for an MNIST-framed 28x28 target: only its input spec matters here."""
    images = np.zeros((count, 1, 28, 28), np.uint8)
    labels = np.arange(count, dtype=np.int64) % 2
    return ImageSet("framed", images, labels, ("a", "b"), framing=MNIST_FRAMING)


def test_the_8x8_digits_are_framed_to_look_like_mnist() -> None:
    target = mnist_like_target()
    splits = make_splits(target, SplitConfig())
    source = pretraining_set("digits:0-2", target, splits, labelled=True)
    digits = load_dataset("digits:0-2")
    assert source.images.shape == (len(digits), 1, 28, 28)
    assert source.framing == MNIST_FRAMING
    assert framed_like_mnist(np.asarray(source.images))
    np.testing.assert_array_equal(source.labels, digits.labels)
    # Scaled up without framing, the same digits fill the frame and fail the same test.
    plain = conform(digits.images, digits, replace(Target.of(target), framed=False))
    assert plain.shape == source.images.shape
    assert not framed_like_mnist(plain)


def test_polarity_channels_and_size_follow_the_target() -> None:
    grey = np.zeros((2, 1, 8, 8), np.uint8)
    grey[:, :, 2:6, 3:5] = 255  # a light bar on black
    source = ImageSet("src", grey, np.array([0, 1]), ("a", "b"))
    target = Target(channels=3, height=16, width=16, polarity="dark_on_light", framed=False)
    out = conform(grey, source, target)
    assert out.shape == (2, 3, 16, 16)
    assert out[0, :, 0, 0].tolist() == [255, 255, 255]  # the black page turned white
    assert out[0, :, 8, 8].max() < 64  # and the light bar dark
    back = Target(channels=1, height=8, width=8, polarity="light_on_dark", framed=False)
    assert np.array_equal(conform(grey, source, back), grey)  # nothing to change


def test_the_target_test_and_validation_images_never_reach_pre_training(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = ExperimentConfig(
        dataset="digits:5-9",
        pretrain_dataset="digits",  # the whole set, target classes and held-out images included
        arch="cnn",
        method="cae",
        cnn=CNNConfig(channels=(4, 8), dense=16),
        pretrain=PretrainConfig(epochs=1, batch_size=256),
        device="cpu",
    )
    prepared = load_data(config)
    pretraining: list[torch.Tensor] = []
    real = experiment.pretrain

    def spy(model, pool, *args, **kwargs):  # type: ignore[no-untyped-def]
        walk = pool.batches

        def batches(*a, **k):  # type: ignore[no-untyped-def]
            for batch in walk(*a, **k):
                pretraining.append(batch.images.cpu())
                yield batch

        pool.batches = batches
        return real(model, pool, *args, **kwargs)

    monkeypatch.setattr(experiment, "pretrain", spy)
    _, report = pretrained_start(config, prepared)

    def fingerprints(images: torch.Tensor) -> set[str]:
        return {hashlib.sha256(image.numpy().tobytes()).hexdigest() for image in images}

    seen = fingerprints(torch.cat(pretraining))
    held = torch.cat([prepared.test()[0], prepared.val()[0]])
    held_out = fingerprints(held)
    assert len(held_out) == len(held)  # sklearn's digits hold no duplicate image
    assert not seen & held_out
    # Everything else of the source was seen: the other classes and the target's pool.
    assert len(seen) == 1797 - len(held) == report.num_images
    assert fingerprints(prepared.pool_images()) <= seen
    assert report.dataset == "digits"


def test_the_same_data_set_as_source_is_exactly_the_target_pool() -> None:
    target = load_dataset("digits")
    splits = make_splits(target, SplitConfig(split_seed=3))
    source = pretraining_set("digits", target, splits, labelled=False)
    np.testing.assert_array_equal(source.images, target.images[splits.pool])


def test_supervised_pre_training_may_not_use_the_target_s_own_labels() -> None:
    target = load_dataset("digits:5-9")
    splits = make_splits(target, SplitConfig())
    with pytest.raises(ConfigError, match="would train on labels of 'digits:5-9'"):
        pretraining_set("digits", target, splits, labelled=True)
    other = pretraining_set("digits:0-4", target, splits, labelled=True)  # other classes: fine
    assert set(other.labels.tolist()) == {0, 1, 2, 3, 4}
    assert len(other) == int(np.isin(load_dataset("digits").labels, range(5)).sum())


def test_a_copy_of_the_target_under_another_name_is_kept_apart_by_content(
    tmp_path: Path,
) -> None:
    target = load_dataset("digits")
    write_idx(tmp_path, target)  # the same images, read as another data set
    splits = make_splits(target, SplitConfig(split_seed=1))
    source = pretraining_set(f"idx:{tmp_path}", target, splits, labelled=False)
    np.testing.assert_array_equal(source.images, target.images[splits.pool])
    with pytest.raises(ConfigError, match="would train on labels of 'digits'"):
        pretraining_set(f"idx:{tmp_path}", target, splits, labelled=True)
