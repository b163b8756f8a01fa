from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models.data import ImageSet, SplitConfig, make_splits
from models.errors import DataError
from models.sources import framed_like_mnist, load_dataset
from service.framing import frame
from service.manifest import MNIST_FRAMING
from tests.models.helpers import write_idx, write_image_folder


def test_splits_are_stratified_disjoint_and_deterministic(digits300: ImageSet) -> None:
    splits = make_splits(digits300, SplitConfig(split_seed=3))
    test, val, pool = (set(s.tolist()) for s in (splits.test, splits.val, splits.pool))
    assert not (test & val)
    assert not (test & pool)
    assert not (val & pool)
    assert test | val | pool == set(range(len(digits300)))
    assert np.bincount(digits300.labels[splits.test]).tolist() == [6] * 10  # 20% of 30
    assert np.bincount(digits300.labels[splits.val]).tolist() == [3] * 10
    again = make_splits(digits300, SplitConfig(split_seed=3))
    assert np.array_equal(again.test, splits.test)
    assert np.array_equal(again.pool, splits.pool)
    other = make_splits(digits300, SplitConfig(split_seed=4))
    assert not np.array_equal(other.test, splits.test)


def test_labeled_draw_comes_from_the_pool_and_follows_the_seed(digits300: ImageSet) -> None:
    splits = make_splits(digits300, SplitConfig())
    labeled = splits.labeled(digits300, 5, seed=0)
    assert set(labeled.tolist()) <= set(splits.pool.tolist())
    assert np.bincount(digits300.labels[labeled]).tolist() == [5] * 10
    assert np.array_equal(labeled, splits.labeled(digits300, 5, seed=0))
    assert not np.array_equal(labeled, splits.labeled(digits300, 5, seed=1))


def test_more_labels_than_the_pool_holds_is_a_clear_error(digits300: ImageSet) -> None:
    splits = make_splits(digits300, SplitConfig())
    with pytest.raises(DataError, match=r"--labels-per-class 22 is larger than the unlabeled pool"):
        splits.labeled(digits300, 22, seed=0)


def test_a_class_too_small_to_split_is_named() -> None:
    images = np.zeros((12, 1, 4, 4), dtype=np.uint8)
    labels = np.array([0] * 10 + [1] * 2, dtype=np.int64)
    data = ImageSet("small", images, labels, ("a", "b"))
    with pytest.raises(DataError, match="class 'b' has 2 images"):
        make_splits(data, SplitConfig())


def test_builtin_sources_load() -> None:
    mnist = load_dataset("mnist-5k")
    assert mnist.images.shape == (5000, 1, 28, 28)
    assert mnist.num_classes == 10
    assert mnist.framing == MNIST_FRAMING
    digits = load_dataset("digits")
    assert digits.shape == (1, 8, 8)
    assert digits.framing is None
    assert digits.images.max() == 255


def test_idx_folder_reads_gzipped_and_plain_files(tmp_path: Path, digits300: ImageSet) -> None:
    write_idx(tmp_path, digits300, prefix="train", gz=True)
    write_idx(tmp_path, digits300, prefix="t10k", gz=False)
    data = load_dataset(f"idx:{tmp_path}")
    assert len(data) == 600
    assert data.shape == (1, 8, 8)
    assert np.array_equal(data.images[:300], digits300.images)
    assert np.array_equal(data.labels[300:], digits300.labels)


def test_truncated_idx_file_is_named(tmp_path: Path, digits300: ImageSet) -> None:
    images, _ = write_idx(tmp_path, digits300, gz=True)
    raw = gzip.decompress(images.read_bytes())
    images.write_bytes(gzip.compress(raw[:-10]))
    with pytest.raises(DataError, match=rf"{images}: IDX header declares"):
        load_dataset(f"idx:{tmp_path}")


def test_idx_images_without_labels_are_named(tmp_path: Path, digits300: ImageSet) -> None:
    _, labels = write_idx(tmp_path, digits300)
    labels.unlink()
    with pytest.raises(DataError, match="no matching labels file"):
        load_dataset(f"idx:{tmp_path}")


def test_image_folder_reads_png_and_jpeg(tmp_path: Path, digits300: ImageSet) -> None:
    write_image_folder(tmp_path / "imgs", digits300)
    data = load_dataset(f"folder:{tmp_path / 'imgs'}")
    assert len(data) == 300
    assert data.shape == (1, 28, 28)
    assert data.class_names == tuple(str(i) for i in range(10))
    assert data.polarity == "light_on_dark"
    assert data.framing == MNIST_FRAMING
    png = data.images[0]  # index 0 was written losslessly as PNG
    # Framed by the service's own code: what a served image of it would become.
    assert np.array_equal(png[0], frame(digits300.images[0, 0], 28, 28).pixels)


def test_image_folder_detects_dark_strokes_on_light(tmp_path: Path, digits300: ImageSet) -> None:
    write_image_folder(tmp_path / "imgs", digits300, invert=True)
    assert load_dataset(f"folder:{tmp_path / 'imgs'}").polarity == "dark_on_light"


def test_folder_with_one_class_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "only").mkdir()
    Image.new("L", (8, 8)).save(tmp_path / "only" / "a.png")
    with pytest.raises(DataError, match="at least 2 classes, found 1"):
        load_dataset(f"folder:{tmp_path}")


def test_corrupt_image_is_named(tmp_path: Path, digits300: ImageSet) -> None:
    write_image_folder(tmp_path, digits300)
    bad = tmp_path / "3" / "broken.png"
    bad.write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match=rf"{bad}: not a readable image"):
        load_dataset(f"folder:{tmp_path}")


def test_images_of_any_size_are_framed_alike(tmp_path: Path, digits300: ImageSet) -> None:
    write_image_folder(tmp_path, digits300)
    digit = Image.fromarray(digits300.images[5, 0]).resize((80, 80), Image.Resampling.NEAREST)
    # The same digit in a corner of a large black picture frames as it does centred in a
    # small one: position and page size do not matter.
    picture = Image.new("L", (400, 300))
    picture.paste(digit, (300, 200))
    small = Image.new("L", (120, 120))
    small.paste(digit, (20, 20))
    picture.save(tmp_path / "9" / "large.png")  # the last class: its image comes last
    data = load_dataset(f"folder:{tmp_path}")
    assert data.shape == (1, 28, 28)
    large = data.images[-1, 0].astype(int)
    alone = frame(np.asarray(small), 28, 28).pixels.astype(int)
    assert np.abs(large - alone).mean() < 3  # measured: 2.3 grey levels of 255


def test_a_blank_image_in_a_folder_is_named(tmp_path: Path, digits300: ImageSet) -> None:
    write_image_folder(tmp_path, digits300)
    blank = tmp_path / "5" / "blank.png"
    Image.new("L", (9, 8)).save(blank)
    with pytest.raises(DataError, match=rf"{blank}: the image is blank"):
        load_dataset(f"folder:{tmp_path}")


def test_idx_framing_is_measured(digits300: ImageSet) -> None:
    assert framed_like_mnist(load_dataset("mnist-5k").images)
    assert not framed_like_mnist(digits300.images)
    # 28x28, but garments scaled to fill the frame: not MNIST's 20x20 box.
    filled = np.zeros((50, 1, 28, 28), np.uint8)
    filled[:, :, 1:27, 2:26] = 200
    assert not framed_like_mnist(filled)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("cifar", "unknown dataset 'cifar'"),
        ("idx:/no/such/dir", "IDX folder does not exist"),
        ("folder:/no/such/dir", "image folder does not exist"),
        ("download:svhn", "unknown download 'svhn'"),
    ],
)
def test_bad_specs_say_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        load_dataset(spec)


def test_a_class_subset_keeps_its_names_and_relabels_from_zero() -> None:
    whole = load_dataset("digits")
    upper = load_dataset("digits:5-9")
    assert upper.name == "digits:5-9"
    assert upper.class_names == ("5", "6", "7", "8", "9")
    np.testing.assert_array_equal(upper.labels, whole.labels[whole.labels >= 5] - 5)
    np.testing.assert_array_equal(upper.images, whole.images[whole.labels >= 5])
    base, index = upper.origin()
    assert base == "digits"
    np.testing.assert_array_equal(whole.images[index], upper.images)
    picked = load_dataset("digits:7,1-2")  # in the order given
    assert picked.class_names == ("7", "1", "2")
    np.testing.assert_array_equal(picked.labels, [{7: 0, 1: 1, 2: 2}[v] for v in whole.labels
                                                  if v in (1, 2, 7)])  # fmt: skip


def test_a_class_subset_of_a_streamed_set_streams(tmp_path: Path, digits300: ImageSet) -> None:
    write_idx(tmp_path, digits300, gz=False)
    subset = load_dataset(f"idx:{tmp_path}:0-1")
    assert subset.streamed
    assert subset.class_names == ("0", "1")
    np.testing.assert_array_equal(
        np.asarray(subset.images[np.arange(len(subset))]), digits300.images[digits300.labels < 2]
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("digits:3", "a class subset needs at least 2 classes"),
        ("digits:4-2", "class range '4-2' runs backwards"),
        ("digits:0-10", "class 10 does not exist \\(classes are 0-9\\)"),
        ("digits:1,1-2", "a class is named twice"),
    ],
)
def test_bad_class_subsets_say_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(DataError, match=f"{spec}: {message}"):
        load_dataset(spec)
