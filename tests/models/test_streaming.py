"""``folder:`` and plain ``idx:`` sets stay on disk and stream; nothing else changes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from models.batches import Pool
from models.data import ImageSet, SplitConfig, make_splits
from models.nets import MLPConfig, build_classifier
from models.pretraining import PretrainConfig, pretrain
from models.sources import load_dataset
from tests.models.helpers import write_idx, write_image_folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory, digits300: ImageSet) -> Path:
    return write_image_folder(tmp_path_factory.mktemp("folder"), digits300)


def in_memory(data: ImageSet) -> ImageSet:
    return ImageSet(data.name, np.asarray(data.images), data.labels, data.class_names)


def test_a_folder_streams_and_decodes_what_it_would_load(folder: Path) -> None:
    data = load_dataset(f"folder:{folder}")
    assert data.streamed
    whole = np.asarray(data.images)
    assert whole.shape == (300, 1, 28, 28)  # framed the MNIST way
    index = np.array([299, 0, 17, 17])
    np.testing.assert_array_equal(data.images[index], whole[index])
    np.testing.assert_array_equal(data.images[5], whole[5])


def test_plain_idx_streams_and_gzipped_idx_loads(tmp_path: Path, digits300: ImageSet) -> None:
    write_idx(tmp_path / "plain", digits300, prefix="train", gz=False)
    write_idx(tmp_path / "plain", digits300, prefix="t10k", gz=False)
    write_idx(tmp_path / "gz", digits300, prefix="train", gz=True)
    write_idx(tmp_path / "gz", digits300, prefix="t10k", gz=True)
    plain, packed = (
        load_dataset(f"idx:{tmp_path / 'plain'}"),
        load_dataset(f"idx:{tmp_path / 'gz'}"),
    )
    assert plain.streamed
    assert not packed.streamed
    index = np.array([599, 0, 300, 299, 450])
    np.testing.assert_array_equal(plain.images[index], packed.images[index])
    np.testing.assert_array_equal(np.asarray(plain.images), packed.images)
    np.testing.assert_array_equal(plain.labels, packed.labels)


def test_splits_take_the_same_files_however_the_set_is_loaded(folder: Path) -> None:
    streamed = load_dataset(f"folder:{folder}")
    loaded = in_memory(streamed)
    for seed in (0, 3):
        a, b = make_splits(streamed, SplitConfig(seed)), make_splits(loaded, SplitConfig(seed))
        for part in ("test", "val", "pool"):
            np.testing.assert_array_equal(getattr(a, part), getattr(b, part))
    names = streamed.images.names  # type: ignore[union-attr]
    again = load_dataset(f"folder:{folder}").images.names  # type: ignore[union-attr]
    np.testing.assert_array_equal(names, again)


def test_workers_stream_the_batches_memory_would_give(folder: Path) -> None:
    data = load_dataset(f"folder:{folder}")
    subset = np.arange(0, 300, 2)
    streamed = Pool(data.images, torch.device("cpu"), workers=2, subset=subset)  # type: ignore[arg-type]
    memory = Pool(torch.from_numpy(np.asarray(data.images)[subset]), torch.device("cpu"))
    got = list(streamed.batches(32, torch.Generator().manual_seed(4)))
    want = list(memory.batches(32, torch.Generator().manual_seed(4)))
    assert [b.rows for b in got] == [b.rows for b in want] == [32, 32, 32, 32, 22]
    for a, b in zip(got, want, strict=True):
        assert torch.equal(a.images, b.images)


def test_pretraining_on_a_streamed_pool_matches_the_loaded_one(folder: Path) -> None:
    data = load_dataset(f"folder:{folder}")
    config = PretrainConfig(epochs=1, batch_size=50)
    weights = []
    for pool in (
        Pool(data.images, torch.device("cpu"), workers=1),  # type: ignore[arg-type]
        Pool(torch.from_numpy(np.asarray(data.images)), torch.device("cpu")),
    ):
        torch.manual_seed(0)
        model = build_classifier(MLPConfig(hidden=(16,)), data.shape, data.num_classes)
        pretrain(model, pool, "rbm", config, torch.Generator().manual_seed(1))
        weights.append(model.linear_layers()[0].weight.detach())  # type: ignore[operator]
    torch.testing.assert_close(weights[0], weights[1], rtol=0, atol=1e-6)


def test_a_streamed_source_keeps_each_image_with_its_label(
    tmp_path: Path, digits300: ImageSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    from models.experiment import ExperimentConfig, Prepared

    monkeypatch.setenv("HEADSTART_LOADER_WORKERS", "1")
    write_idx(tmp_path, digits300, gz=False)
    # The target holds the other classes: supervised pre-training may not see its images.
    upper = digits300.labels >= 5
    names = digits300.class_names[5:]
    other = ImageSet("upper", digits300.images[upper], digits300.labels[upper] - 5, names)
    target = Prepared(other, make_splits(other, SplitConfig()))
    config = ExperimentConfig(
        arch="cnn", method="supervised", pretrain_dataset=f"idx:{tmp_path}:0-4"
    )
    pool = target.pretraining_pool(config, torch.device("cpu"))
    assert (len(pool), pool.classes) == (150, 5)
    label_of = {image.tobytes(): int(label) for image, label in
                zip(digits300.images, digits300.labels, strict=True)}  # fmt: skip
    seen = 0
    for batch in pool.batches(32, torch.Generator().manual_seed(0)):
        assert batch.labels is not None
        for image, label in zip(batch.images.numpy(), batch.labels.tolist(), strict=True):
            assert label_of[image.tobytes()] == label
            seen += 1
    assert seen == 150
