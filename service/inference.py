"""Classify, embed and compare decoded image batches; the results are plain JSON-ready dicts.

Their shapes are documented (and checked by the tests) by the response models
in :mod:`service.schemas`; building dicts here keeps a request free of
validation work on data the service itself produced.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from service.errors import ValidationFailed
from service.manifest import Manifest
from service.runtime import LoadedVariant
from service.statistics import js_divergence, paired_outcomes

Label = int | str


def classify(variant: LoadedVariant, images: NDArray[np.uint8], top_k: int) -> dict[str, Any]:
    """Per image: the most likely class, its probability and the ``top_k`` classes."""
    probabilities = variant.run(images, outputs=("probabilities",))["probabilities"]
    names = variant.manifest.class_names
    k = min(top_k, len(names))
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    predictions = []
    for row, ranked in zip(probabilities.tolist(), order.tolist(), strict=True):
        top = [{"label": names[c], "class_index": c, "probability": row[c]} for c in ranked]
        predictions.append({**top[0], "top_k": top})
    return {
        "model": variant.manifest.name,
        "variant": variant.manifest.variant,
        "predictions": predictions,
    }


def embed(variant: LoadedVariant, images: NDArray[np.uint8], normalize: bool) -> dict[str, Any]:
    """Per image: the embedding vector (unit length if ``normalize``) and its size."""
    vectors = variant.run(images, outputs=("embedding",))["embedding"]
    if normalize:
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = (vectors / np.where(norms > 0, norms, 1.0)).astype(np.float32)
    size = int(vectors.shape[1])
    return {
        "model": variant.manifest.name,
        "variant": variant.manifest.variant,
        "normalized": normalize,
        "embeddings": [{"vector": v, "size": size} for v in vectors.tolist()],
    }


def label_indices(labels: Sequence[Label], manifest: Manifest) -> NDArray[np.int64]:
    """Turn labels (class names, or class indices) into class indices; 422 names a bad one."""
    names = manifest.class_names
    by_name = {name: i for i, name in enumerate(names)}
    indices = np.empty(len(labels), dtype=np.int64)
    for i, label in enumerate(labels):
        if isinstance(label, str) and label in by_name:
            indices[i] = by_name[label]
            continue
        try:
            index = int(label)
        except ValueError:
            index = -1
        if isinstance(label, bool) or not 0 <= index < len(names):
            raise ValidationFailed(
                f"labels[{i}]: {label!r} is neither a class name nor a class index "
                f"0..{len(names) - 1} of model {manifest.name!r}",
                field=f"labels[{i}]",
            )
        indices[i] = index
    return indices


def compare(
    first: LoadedVariant,
    second: LoadedVariant,
    images: NDArray[np.uint8],
    labels: Sequence[Label] | None = None,
    second_images: NDArray[np.uint8] | None = None,
) -> dict[str, Any]:
    """Run both variants on the same images and compare them, with McNemar's test if labelled.

    ``second_images`` is only needed when the second variant's input spec differs.
    """
    names = first.manifest.class_names
    truth = None if labels is None else label_indices(labels, first.manifest)
    p_first, ms_first = _timed(first, images)
    p_second, ms_second = _timed(second, images if second_images is None else second_images)
    a, b = first.manifest.variant, second.manifest.variant
    n = len(images)
    pred_first = p_first.argmax(axis=1)
    pred_second = p_second.argmax(axis=1)
    agree = (pred_first == pred_second).tolist()
    divergence = js_divergence(p_first, p_second).tolist()
    # One batched run per variant: each image's share of it is the batch time over N.
    share = {a: ms_first / n, b: ms_second / n}
    conf_first = p_first.max(axis=1).tolist()
    conf_second = p_second.max(axis=1).tolist()
    true_names = None if truth is None else [names[t] for t in truth.tolist()]
    results = []
    for i, (ca, cb) in enumerate(zip(pred_first.tolist(), pred_second.tolist(), strict=True)):
        result: dict[str, Any] = {
            a: {"label": names[ca], "class_index": ca, "probability": conf_first[i]},
            b: {"label": names[cb], "class_index": cb, "probability": conf_second[i]},
            "agree": agree[i],
            "js_divergence": divergence[i],
            "latency_ms": share,
        }
        if true_names is not None:
            result["true_label"] = true_names[i]
        results.append(result)
    summary: dict[str, Any] = {
        "images": n,
        "agreement_rate": sum(agree) / n,
        "mean_js_divergence": sum(divergence) / n,
        "latency_ms": {a: ms_first, b: ms_second},
        "labeled": None,
    }
    if truth is not None:
        acc_first, acc_second, test = paired_outcomes(truth, pred_first, pred_second)
        summary["labeled"] = {
            "accuracy": {a: acc_first, b: acc_second},
            "mcnemar": {
                f"only_{a}_correct": test.only_a_correct,
                f"only_{b}_correct": test.only_b_correct,
                "p_value": test.p_value,
                "test": "exact binomial, two-sided",
            },
        }
    return {
        "model": first.manifest.name,
        "variants": [a, b],
        "results": results,
        "summary": summary,
    }


def _timed(variant: LoadedVariant, images: NDArray[np.uint8]) -> tuple[NDArray[np.float32], float]:
    start = time.perf_counter()
    probabilities = variant.run(images, outputs=("probabilities",))["probabilities"]
    return probabilities, (time.perf_counter() - start) * 1000.0
