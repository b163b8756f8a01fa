from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch

from models.errors import ExportError
from models.evaluate import evaluate
from models.experiment import Prepared
from models.export import Provenance, check_onnx, export_onnx, export_variant
from models.nets import CNNConfig, Exportable, MLPConfig, build_classifier
from service.repository import load_variant
from service.runtime import ModelStore


def _provenance(variant: str = "pretrained") -> Provenance:
    return Provenance(
        name="tiny_cnn",
        variant=variant,
        method="cae" if variant == "pretrained" else "none",
        pretrain_settings={"epochs": 1},
        class_names=[str(i) for i in range(10)],
        polarity="light_on_dark",
        framing=None,
        dataset="tiny-digits",
        labels_per_class=5,
        num_labeled=50,
        num_unlabeled=210 if variant == "pretrained" else 0,
        split_seed=0,
        seed=0,
        fine_tuning={"optimizer": "adam"},
    )


def test_exported_variant_loads_in_the_service_and_agrees_with_torch(
    tmp_path: Path, prepared: Prepared
) -> None:
    model = build_classifier(CNNConfig(channels=(4, 8), dense=16), (1, 8, 8), 10).eval()
    images, labels = prepared.test()
    metrics = evaluate(model, images, labels)
    directory, manifest, parity = export_variant(
        model, tmp_path / "repo", _provenance(), metrics, images
    )
    assert directory == tmp_path / "repo" / "tiny_cnn" / "pretrained"
    assert parity.num_images == len(images)
    assert parity.probabilities <= 1e-4
    entry = load_variant(directory, model="tiny_cnn", variant="pretrained")
    assert entry.manifest == manifest
    assert manifest.embedding_dim == 16
    assert manifest.test_metrics.accuracy == pytest.approx(metrics.accuracy)
    store = ModelStore.load(tmp_path / "repo")
    # only one variant was written: the store serves it and reports the other as missing
    assert [p.reason for p in store.problems] == ["variant 'baseline' is missing"]
    loaded = store.variant("tiny_cnn", "pretrained")
    for n in (1, 7):  # the batch axis is dynamic
        out = loaded.run(images[:n].numpy())
        assert out["probabilities"].shape == (n, 10)
        assert out["embedding"].shape == (n, 16)
        with torch.no_grad():
            probs, embed = Exportable(model)(images[:n])
        np.testing.assert_allclose(out["probabilities"], probs.numpy(), atol=1e-5)
        np.testing.assert_allclose(out["embedding"], embed.numpy(), atol=1e-4)
        np.testing.assert_allclose(out["probabilities"].sum(1), 1.0, rtol=1e-5)


def test_parity_failure_reports_the_figures_and_writes_nothing(
    tmp_path: Path, prepared: Prepared, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = build_classifier(MLPConfig(hidden=(16,)), (1, 8, 8), 10)
    other = build_classifier(MLPConfig(hidden=(16,)), (1, 8, 8), 10)
    images, labels = prepared.test()
    export_onnx(other, tmp_path / "other.onnx")
    with pytest.raises(ExportError, match=r"disagree on 60 held-out images: max \|dp\| = "):
        check_onnx(tmp_path / "other.onnx", model, images)

    from models import export

    def swapped(_: object, path: Path) -> None:
        export_onnx(other, path)

    monkeypatch.setattr(export, "export_onnx", swapped)
    with pytest.raises(ExportError):
        export_variant(
            model, tmp_path / "repo", _provenance(), evaluate(model, images, labels), images
        )
    assert [p.name for p in (tmp_path / "repo" / "tiny_cnn").iterdir()] == []


def test_exported_variant_is_readable_by_every_user(tmp_path: Path, prepared: Prepared) -> None:
    # The image's service runs as another user than the build that exports.
    model = build_classifier(MLPConfig(hidden=(8,)), (1, 8, 8), 10).eval()
    images, labels = prepared.test()
    old_umask = os.umask(0o077)  # a strict umask must not make the export private either
    try:
        directory, _, _ = export_variant(
            model, tmp_path / "repo", _provenance(), evaluate(model, images, labels), images
        )
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o755
    files = {p.name: stat.S_IMODE(p.stat().st_mode) for p in directory.iterdir()}
    assert files == {"model.onnx": 0o644, "manifest.json": 0o644}


def test_a_second_export_is_the_next_version_and_the_first_stays_the_default(
    tmp_path: Path, prepared: Prepared
) -> None:
    images, labels = prepared.test()
    exported = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = build_classifier(MLPConfig(hidden=(8,)), (1, 8, 8), 10).eval()
        metrics = evaluate(model, images, labels)
        exported.append(
            export_variant(model, tmp_path / "repo", _provenance(), metrics, images, replace=False)
        )
    (first, first_manifest, _), (second, second_manifest, _) = exported
    variant_dir = tmp_path / "repo" / "tiny_cnn" / "pretrained"
    assert (first, first_manifest.version) == (variant_dir, "1")
    assert (second, second_manifest.version) == (variant_dir / "2", "2")
    store = ModelStore.load(tmp_path / "repo")
    assert list(store.variant_versions("tiny_cnn", "pretrained")) == ["1", "2"]
    assert store.variant("tiny_cnn", "pretrained").manifest == first_manifest  # the default
    assert store.variant("tiny_cnn", "pretrained", "2").manifest == second_manifest
    stat_mode = stat.S_IMODE((variant_dir / "1").stat().st_mode)
    assert stat_mode == 0o755  # the moved version stays readable by the service's user
