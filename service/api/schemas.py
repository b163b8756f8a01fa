"""The v1 API's request and response schemas: they validate requests and generate the OpenAPI.

Responses are built as plain dicts by :mod:`service.results`; the response
models here document them in ``/openapi.json`` and the tests validate every
response against them (``extra="forbid"``, so any drift fails a test).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.experiments.definition import NAME_PATTERN
from service.manifest import InputSpec, Pretraining, TestMetrics, TrainingData

Variant = Literal["pretrained", "baseline"]


class _Schema(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


# --- requests ---------------------------------------------------------------------------------


class DecodeQuery(BaseModel):
    """Query parameters of every endpoint that takes images: how to decode them."""

    # Names a route does not take are refused before parsing (service.api.query); the ones
    # that belong to the body (compare's raw ?label=) pass through here unread.
    model_config = ConfigDict(extra="ignore", use_attribute_docstrings=True)

    invert: Literal["auto", "true", "false"] = "auto"
    """Colour polarity: ``auto`` inverts when the image's border says its polarity is not the model's."""
    framing: Literal["auto", "none"] = "auto"
    """``auto`` frames each image as the model's training images were framed, if its manifest records it (MNIST's: crop to the ink, fit into 20x20, centre by mass in 28x28); ``none`` only scales the whole image into the input size."""


class ClassifyQuery(DecodeQuery):
    """Query parameters of ``classify``."""

    variant: str | None = None
    """``pretrained`` or ``baseline``; unset: the model's default, ``pretrained`` unless an
    experiment promoted the other."""
    version: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.]{1,20}$")
    """One of the variant's loaded versions; unset: its default version (the one an
    experiment promoted, else the repository's)."""
    experiment: str | None = Field(default=None, pattern=NAME_PATTERN)
    """A running experiment on this model: its arm for the ``X-Experiment-Unit`` picks the
    variant (do not send ``variant`` too); the request and its answer are recorded."""
    top_k: int = Field(default=5, ge=1, le=1000)
    """How many of the most likely classes to return per image (at most the number of classes)."""
    include_input: bool = False
    """Add each image as the model received it (decoded, inverted, framed) as a base64 PNG."""


class EmbedQuery(DecodeQuery):
    """Query parameters of ``embed``."""

    variant: str | None = None
    """As for ``classify``."""
    version: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.]{1,20}$")
    """As for ``classify``."""
    experiment: str | None = Field(default=None, pattern=NAME_PATTERN)
    """As for ``classify``."""
    normalize: bool = False
    """Scale each embedding to unit L2 length."""


class CompareQuery(DecodeQuery):
    """Query parameters of ``compare``."""

    include_input: bool = False
    """Add each image as the models received it (decoded, inverted, framed) as a base64 PNG."""


class ImagesRequest(_Schema):
    """``application/json`` body of every POST endpoint."""

    images: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1)
    """Base64-encoded image files (PNG, JPEG, WebP, BMP, GIF, TIFF); a ``data:`` URL prefix is allowed."""
    labels: list[int | str] | None = None
    """True labels, one per image (class index or class name); ``compare`` uses them."""


# --- responses --------------------------------------------------------------------------------


class ClassScore(_Schema):
    label: str
    """The class name."""
    class_index: int
    probability: float


class Prediction(_Schema):
    """The most likely class of one image, and the ``top_k`` most likely ones.

    A blank image (no ink stands out from the page) has ``blank: true``, no class (``null``
    label, index and probability) and an empty ``top_k``."""

    label: str | None
    """The class name; ``null`` for a blank image."""
    class_index: int | None
    probability: float | None
    top_k: list[ClassScore]
    blank: bool
    """Whether the image is blank: its ink contrast, after the background is removed, is under 40 of 255 grey levels."""
    input: str | None = None
    """With ``include_input=true``: the ``uint8`` image the model received, as a base64 PNG."""


class ExperimentArm(_Schema):
    """Which arm of which experiment answered; also in the ``X-Experiment-Arm`` header."""

    name: str
    arm: str
    variant: str
    assignment: Literal["unit", "random"]
    """``unit``: fixed by the ``X-Experiment-Unit`` header; ``random``: no unit was sent."""


class ClassifyResponse(_Schema):
    model: str
    variant: Variant
    version: str
    """The variant's version that answered."""
    predictions: list[Prediction]
    """One per image, in request order."""
    experiment: ExperimentArm | None = None
    """Only on requests routed through ``?experiment=``."""


class Embedding(_Schema):
    vector: list[float]
    size: int
    blank: bool
    """Whether the image is blank (see ``Prediction.blank``); its vector is still given."""


class EmbedResponse(_Schema):
    model: str
    variant: Variant
    version: str
    """The variant's version that answered."""
    normalized: bool
    embeddings: list[Embedding]
    """One per image, in request order."""
    experiment: ExperimentArm | None = None
    """Only on requests routed through ``?experiment=``."""


class VariantLatency(_Schema):
    pretrained: float
    baseline: float


class ComparedImage(_Schema):
    """Both variants' predictions for one image."""

    pretrained: ClassScore
    baseline: ClassScore
    agree: bool
    """Whether both predict the same class."""
    js_divergence: float = Field(ge=0.0, le=1.0)
    """Jensen-Shannon divergence of the two probability vectors, in bits."""
    latency_ms: VariantLatency
    """Each variant's model time for this image: its batch run time divided by the batch size."""
    true_label: str | None = None
    """The label sent with the image, as a class name."""
    blank: bool
    """Whether the image is blank (no ink stands out from the page); both variants still ran."""
    input: str | None = None
    """With ``include_input=true``: the ``uint8`` image the models received, as a base64 PNG."""


class McNemar(_Schema):
    """Exact McNemar test on the labelled images: is one variant really more accurate?"""

    only_pretrained_correct: int
    only_baseline_correct: int
    p_value: float = Field(ge=0.0, le=1.0)
    test: Literal["exact binomial, two-sided"]


class VariantAccuracy(_Schema):
    pretrained: float
    baseline: float


class LabeledSummary(_Schema):
    accuracy: VariantAccuracy
    mcnemar: McNemar


class CompareSummary(_Schema):
    images: int
    agreement_rate: float = Field(ge=0.0, le=1.0)
    mean_js_divergence: float = Field(ge=0.0, le=1.0)
    latency_ms: VariantLatency
    """Each variant's model run time for the whole batch."""
    labeled: LabeledSummary | None
    """Accuracy and McNemar's test, when labels were sent."""


class CompareResponse(_Schema):
    model: str
    variants: list[Variant]
    results: list[ComparedImage]
    """One per image, in request order."""
    summary: CompareSummary


class VariantInfo(_Schema):
    """One variant as its manifest describes it."""

    variant: Variant
    summary: str
    """What the variant is, in one sentence: its start, what it learnt from, its accuracy."""
    version: str
    """The version described here: the one served when a request names none."""
    versions: list[str]
    """Every loaded version, in order; ``?version=`` picks one."""
    architecture: dict[str, Any]
    pretraining: Pretraining
    training: TrainingData
    test_metrics: TestMetrics
    onnx_sha256: str
    headstart_version: str
    created_at: datetime


class ModelInfo(_Schema):
    name: str
    classes: list[str]
    input: InputSpec
    embedding_dim: int
    variants: list[VariantInfo]
    default_variant: str
    """What v1 serves when a request names no variant: ``pretrained`` unless an experiment
    promoted another."""


class UnavailableEntry(_Schema):
    """An entry of the model repository that is not served, and why."""

    path: str
    """Relative to the repository root."""
    model: str | None
    variant: str | None
    reason: str


class ModelList(_Schema):
    models: list[ModelInfo]
    unavailable: list[UnavailableEntry]
    """Entries of the repository that could not be loaded (bad hash, unreadable, ...)."""


class ErrorBody(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)

    code: str
    """Stable machine-readable code, e.g. ``model_not_found``."""
    message: str
    """What is wrong, and where."""


class ErrorResponse(BaseModel):
    """Every error the API returns."""

    error: ErrorBody


# --- probes -----------------------------------------------------------------------------------


class Liveness(_Schema):
    status: Literal["live"]


class Readiness(_Schema):
    """Ready, or degraded (some entry of the repository failed but others serve)."""

    status: Literal["ready", "degraded"]
    models: list[str]
    unavailable: list[UnavailableEntry]


class NotReadyResponse(_Schema):
    status: Literal["not_ready"]
    reason: str
