from __future__ import annotations

from service.catalog import summary
from service.manifest import Manifest
from tests.builders import manifest_for


def _with(manifest: Manifest, **training: object) -> Manifest:
    raw = manifest.model_dump()
    raw["training"].update(training)
    return Manifest.model_validate(raw)


def test_a_semi_supervised_variant_says_it_learnt_from_the_unlabeled_images_too() -> None:
    pretrained = _with(
        manifest_for("digits", "pretrained", "0" * 64), fine_tuning={"mode": "fixmatch"}
    )
    assert summary(pretrained) == (
        "pretrained is pre-trained (dae) on 1,000 unlabeled images, then is fine-tuned on "
        "100 labels (10 per class) and the unlabeled images together (fixmatch); "
        "test accuracy 100.0% on 10 held-out images."
    )


def test_the_baseline_says_it_learnt_from_the_labels_alone() -> None:
    baseline = _with(
        manifest_for("digits", "baseline", "0" * 64), fine_tuning={"mode": "supervised"}
    )
    assert summary(baseline) == (
        "baseline starts from random weights, then is fine-tuned on 100 labels (10 per class) "
        "alone; test accuracy 100.0% on 10 held-out images."
    )
