"""Shape model outputs into v1's answers: plain JSON-ready dicts.

Their shapes are documented (and checked by the tests) by the response models
in :mod:`service.api.schemas`; building dicts here keeps a request free of
validation work on data the service itself produced.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from service.decode import encode_png
from service.errors import ValidationFailed
from service.framing import is_blank
from service.manifest import Manifest
from service.ranking import top_k
from service.statistics import js_divergence, paired_outcomes

Label = int | str


NO_CLASS: dict[str, Any] = {"label": None, "class_index": None, "probability": None, "top_k": []}
"""A blank image's prediction: there is no digit to name, however sure the model would be."""


def blanks(
    manifest: Manifest, pixels: NDArray[np.uint8], known: Sequence[bool] | None = None
) -> list[bool]:
    """Whether each decoded image holds no ink at all (see :mod:`service.framing`): framing's
    own verdict when it framed them (``known``), else measured on ``pixels``."""
    if known is not None:
        return list(known)
    light = manifest.input.polarity == "light_on_dark"
    return [is_blank(image, light) for image in pixels]


def inputs(pixels: NDArray[np.uint8]) -> list[str]:
    """Each image as the model received it: a base64 PNG."""
    return [encode_png(image) for image in pixels]


def classification(
    manifest: Manifest,
    probabilities: NDArray[np.float32],
    k: int,
    pixels: NDArray[np.uint8],
    include_input: bool = False,
    blank: Sequence[bool] | None = None,
) -> dict[str, Any]:
    """Per image: the most likely class, its probability and the ``k`` most likely classes.

    ``pixels`` are the images the model ran on: a blank one gets ``blank: true`` and no
    class, and ``include_input`` adds each as a base64 PNG."""
    names = manifest.class_names
    order = top_k(probabilities, k)
    empty = blanks(manifest, pixels, blank)
    shown = inputs(pixels) if include_input else None
    predictions = []
    for i, (row, ranked) in enumerate(zip(probabilities.tolist(), order.tolist(), strict=True)):
        if empty[i]:
            prediction = {**NO_CLASS, "blank": True}
        else:
            top = [{"label": names[c], "class_index": c, "probability": row[c]} for c in ranked]
            prediction = {**top[0], "top_k": top, "blank": False}
        if shown is not None:
            prediction["input"] = shown[i]
        predictions.append(prediction)
    return {
        "model": manifest.name,
        "variant": manifest.variant,
        "version": manifest.version,
        "predictions": predictions,
    }


def embeddings(
    manifest: Manifest,
    vectors: NDArray[np.float32],
    normalize: bool,
    pixels: NDArray[np.uint8],
    blank: Sequence[bool] | None = None,
) -> dict[str, Any]:
    """Per image: the embedding vector (unit length if ``normalize``), its size and whether
    the image it came from (``pixels``, as the model received it) is blank.

    A blank image still gets its vector: an embedding describes whatever it is shown, so
    the flag tells a client which vectors describe no digit at all."""
    empty = blanks(manifest, pixels, blank)
    if normalize:
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = (vectors / np.where(norms > 0, norms, 1.0)).astype(np.float32)
    size = int(vectors.shape[1])
    return {
        "model": manifest.name,
        "variant": manifest.variant,
        "version": manifest.version,
        "normalized": normalize,
        "embeddings": [
            {"vector": v, "size": size, "blank": blank}
            for v, blank in zip(vectors.tolist(), empty, strict=True)
        ],
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


def comparison(
    first: Manifest,
    second: Manifest,
    runs: tuple[tuple[NDArray[np.float32], float], tuple[NDArray[np.float32], float]],
    pixels: NDArray[np.uint8],
    truth: NDArray[np.int64] | None = None,
    include_input: bool = False,
    blank: Sequence[bool] | None = None,
) -> dict[str, Any]:
    """Compare two variants' ``(probabilities, milliseconds)`` runs on the same images,
    with McNemar's test when the true classes (``label_indices``) are given.

    ``pixels`` are the images the first variant ran on: blank ones are flagged (and still
    compared: the comparison is of the models, whatever they are shown), and
    ``include_input`` adds each as a base64 PNG."""
    names = first.class_names
    (p_first, ms_first), (p_second, ms_second) = runs
    a, b = first.variant, second.variant
    n = len(p_first)
    pred_first = p_first.argmax(axis=1)
    pred_second = p_second.argmax(axis=1)
    agree = (pred_first == pred_second).tolist()
    divergence = js_divergence(p_first, p_second).tolist()
    # One batched run per variant: each image's share of it is the batch time over N.
    share = {a: ms_first / n, b: ms_second / n}
    conf_first = p_first.max(axis=1).tolist()
    conf_second = p_second.max(axis=1).tolist()
    true_names = None if truth is None else [names[t] for t in truth.tolist()]
    empty = blanks(first, pixels, blank)
    shown = inputs(pixels) if include_input else None
    results = []
    for i, (ca, cb) in enumerate(zip(pred_first.tolist(), pred_second.tolist(), strict=True)):
        result: dict[str, Any] = {
            a: {"label": names[ca], "class_index": ca, "probability": conf_first[i]},
            b: {"label": names[cb], "class_index": cb, "probability": conf_second[i]},
            "agree": agree[i],
            "js_divergence": divergence[i],
            "latency_ms": share,
            "blank": empty[i],
        }
        if shown is not None:
            result["input"] = shown[i]
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
        "model": first.name,
        "variants": [a, b],
        "results": results,
        "summary": summary,
    }
