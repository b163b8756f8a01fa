"""ONNX Runtime sessions for every verified variant in a model repository.

Sessions are created once, at start, one per variant per worker process; a
request does nothing with the model beyond ``run``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from service.errors import ModelNotFound, NotReady, VariantNotFound
from service.manifest import VARIANTS, Manifest
from service.repository import ModelEntry, Problem, scan_repository

log = logging.getLogger(__name__)

OUTPUTS: tuple[str, ...] = ("probabilities", "embedding")

Outputs = dict[str, NDArray[np.float32]]


class RunFn(Protocol):
    """Run ``uint8 [N, C, H, W]`` images; return the named outputs as float32 arrays."""

    def __call__(self, images: NDArray[np.uint8], outputs: Sequence[str] = OUTPUTS) -> Outputs: ...


_timing = threading.local()


def reset_timing() -> None:
    """Start timing a run on this thread: no time queued or computing yet."""
    _timing.queue = _timing.compute = 0.0


def note_compute(seconds: float) -> None:
    """Record how long the ONNX Runtime call that answered this thread's run took."""
    _timing.compute = seconds


def note_queue(seconds: float) -> None:
    """Record how long this thread's run waited for a batch before its call began."""
    _timing.queue = seconds


def run_timing() -> tuple[float, float]:
    """Seconds this thread's latest run spent queued and in ONNX Runtime."""
    return getattr(_timing, "queue", 0.0), getattr(_timing, "compute", 0.0)


RunWrapper = Callable[[RunFn], RunFn]
"""Wraps a variant's own run at load time, e.g. to merge concurrent requests into batches."""


class LoadedVariant:
    """One variant's manifest and its live ONNX Runtime session."""

    def __init__(
        self, entry: ModelEntry, session: ort.InferenceSession, wrap: RunWrapper | None = None
    ) -> None:
        self.entry = entry
        self.session = session
        self.run: RunFn = self.run_now if wrap is None else wrap(self.run_now)
        """The variant's run as the service uses it: ``run_now``, or ``wrap`` of it."""

    @property
    def manifest(self) -> Manifest:
        return self.entry.manifest

    def run_now(self, images: NDArray[np.uint8], outputs: Sequence[str] = OUTPUTS) -> Outputs:
        """Run the images in one ONNX Runtime call of their own, never batched with others."""
        start = time.perf_counter()
        results = self.session.run(list(outputs), {"image": images})
        note_compute(time.perf_counter() - start)
        return {
            name: np.asarray(value, dtype=np.float32)
            for name, value in zip(outputs, results, strict=True)
        }


def create_session(path: Path, intra_op_threads: int) -> ort.InferenceSession:
    """An ONNX Runtime CPU session sized so workers x threads do not oversubscribe the cores."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def _check_signature(session: ort.InferenceSession, manifest: Manifest) -> str | None:
    """Return why the graph does not match the manifest's contract, or ``None``."""
    inputs = {i.name: i for i in session.get_inputs()}
    if "image" not in inputs or inputs["image"].type != "tensor(uint8)":
        return "graph has no uint8 input named 'image'"
    shape = inputs["image"].shape
    spec = manifest.input
    if len(shape) != 4 or list(shape[1:]) != [spec.channels, spec.height, spec.width]:
        return f"graph input shape {shape} does not match the manifest's [N, {spec.channels}, {spec.height}, {spec.width}]"
    outputs = {o.name: o for o in session.get_outputs()}
    for name, width in (
        ("probabilities", manifest.num_classes),
        ("embedding", manifest.embedding_dim),
    ):
        if name not in outputs:
            return f"graph has no output named {name!r}"
        out_shape = outputs[name].shape
        if len(out_shape) != 2 or out_shape[1] != width:
            return f"graph output {name!r} has shape {out_shape}, the manifest says [N, {width}]"
    return None


@dataclass(frozen=True)
class Unavailable:
    """An entry of the repository that is not served, as clients may be told of it."""

    path: str
    """Relative to the repository root: clients never learn the server's own paths."""
    reason: str
    model: str | None = None
    variant: str | None = None

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"

    def to_json(self) -> dict[str, str | None]:
        return {
            "path": self.path,
            "model": self.model,
            "variant": self.variant,
            "reason": self.reason,
        }


@dataclass
class ModelStore:
    """Every loaded variant, grouped by model, plus what could not be loaded and why."""

    root: Path
    models: dict[str, dict[str, LoadedVariant]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @classmethod
    def load(
        cls, root: Path, *, intra_op_threads: int = 1, wrap: RunWrapper | None = None
    ) -> ModelStore:
        """Load every verified variant in ``root``; log and skip each bad entry."""
        store = cls(root=root)
        listing = scan_repository(root)
        store.problems.extend(listing.problems)
        for entry in listing.entries:
            try:
                session = create_session(entry.onnx_path, intra_op_threads)
            except Exception as exc:  # noqa: BLE001 -- ORT raises unrelated types for a bad file
                store.problems.append(
                    Problem(entry.onnx_path, f"cannot be loaded by ONNX Runtime ({exc})")
                )
                continue
            mismatch = _check_signature(session, entry.manifest)
            if mismatch is not None:
                store.problems.append(Problem(entry.onnx_path, mismatch))
                continue
            variant = LoadedVariant(entry, session, wrap)
            store.models.setdefault(entry.name, {})[entry.variant] = variant
        for problem in store.problems:
            log.warning("model repository: skipped %s", problem)
        for name, variants in store.models.items():
            log.info("loaded model %s (variants: %s)", name, ", ".join(variants))
        return store

    @property
    def unavailable(self) -> list[Unavailable]:
        """Every entry that is not served, with paths relative to the root."""
        out = []
        for problem in self.problems:
            try:
                parts = problem.path.relative_to(self.root).parts
            except ValueError:
                parts = ()
            path = "/".join(parts) or "."
            model = parts[0] if parts else None
            variant = parts[1] if len(parts) > 1 else None
            out.append(Unavailable(path, problem.reason, model, variant))
        return out

    def failure(self, model: str, variant: str) -> str | None:
        """Why ``<root>/<model>/<variant>`` is in the repository but not served, if it is."""
        for entry in self.unavailable:
            if (entry.model, entry.variant) == (model, variant):
                return entry.reason
        return None

    @property
    def ready(self) -> bool:
        return bool(self.models)

    @property
    def not_ready_reason(self) -> str | None:
        if self.models:
            return None
        if self.problems:
            listed = "; ".join(str(p) for p in self.unavailable)
            return f"no usable model in the model repository: {listed}"
        return "no models in the model repository"

    def require_ready(self) -> None:
        reason = self.not_ready_reason
        if reason is not None:
            raise NotReady(reason)

    def model(self, name: str) -> dict[str, LoadedVariant]:
        """The loaded variants of ``name``; ``ModelNotFound`` lists the known models."""
        self.require_ready()
        try:
            return self.models[name]
        except KeyError:
            known = ", ".join(sorted(self.models)) or "none"
            raise ModelNotFound(f"unknown model {name!r} (known: {known})", model=name) from None

    def variant(self, name: str, variant: str) -> LoadedVariant:
        """One loaded variant; 503 says why a variant in the repository failed to load,
        ``VariantNotFound`` lists the ones this model has."""
        variants = self.model(name)
        try:
            return variants[variant]
        except KeyError:
            reason = self.failure(name, variant)
            if reason is not None:
                raise NotReady(
                    f"variant {variant!r} of model {name!r} is not ready: {reason}",
                    model=name,
                    variant=variant,
                ) from None
            known = ", ".join(v for v in VARIANTS if v in variants)
            raise VariantNotFound(
                f"model {name!r} has no variant {variant!r} (known: {known})",
                model=name,
                variant=variant,
            ) from None
