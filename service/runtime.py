"""ONNX Runtime sessions for every verified variant in a model repository.

Sessions are created once, at start, one per variant per worker process; a
request does nothing with the model beyond ``run``.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from service.errors import LoadFailed, ModelNotFound, NotReady, VariantNotFound
from service.manifest import VARIANTS, Manifest
from service.repository import (
    InvalidEntry,
    ModelEntry,
    Problem,
    scan_repository,
    scan_variant,
    version_key,
)

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


UNLOADED = "unloaded on request (load it to serve it again)"
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


def _safe_name(name: str) -> bool:
    """Whether ``name`` can only be a folder of the repository itself (no path, no ``..``)."""
    return _SAFE_NAME.fullmatch(name) is not None and ".." not in name


def _relative(root: Path, problem: Problem) -> str:
    """A problem as clients may read it: its path relative to the repository root."""
    try:
        path = "/".join(problem.path.relative_to(root).parts)
    except ValueError:
        path = problem.path.name
    return f"{path}: {problem.reason}"


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
    """Every loaded variant, grouped by model, plus what could not be loaded and why.

    Variants can be loaded again from the repository and unloaded while requests run: each
    change builds a new ``models`` mapping and replaces the old one in one assignment, so a
    request sees the variants as they were before the change or after it, never half of it,
    and a variant it already holds keeps its session until the request is done."""

    root: Path
    models: dict[str, dict[str, LoadedVariant]] = field(default_factory=dict)
    """Each variant's default version."""
    versions: dict[str, dict[str, dict[str, LoadedVariant]]] = field(default_factory=dict)
    """Every loaded version, as ``{model: {variant: {version: loaded}}}``."""
    problems: list[Problem] = field(default_factory=list)
    intra_op_threads: int = 1
    wrap: RunWrapper | None = None
    marked_at: dict[tuple[str, str], float] = field(default_factory=dict)
    """When each variant's ``default_version`` file was written, where one names the default:
    a promotion made before it yields to it, one made after it overrides it."""
    unloaded: set[tuple[str, str]] = field(default_factory=set)
    """Variants unloaded on request: in the repository, not served."""
    load_failures: dict[tuple[str, str], str] = field(default_factory=dict)
    """Why the latest load of a variant failed while its earlier model kept serving."""
    _changing: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def load(
        cls, root: Path, *, intra_op_threads: int = 1, wrap: RunWrapper | None = None
    ) -> ModelStore:
        """Load every verified version of every variant in ``root``; log and skip each bad
        entry."""
        store = cls(root=root, intra_op_threads=intra_op_threads, wrap=wrap)
        listing = scan_repository(root)
        store.problems.extend(listing.problems)
        store.marked_at = dict(listing.marked_at)
        for entry in listing.entries:
            try:
                variant = store._open(entry)
            except InvalidEntry as exc:
                store.problems.append(exc.problem)
                continue
            versions = store.versions.setdefault(entry.name, {}).setdefault(entry.variant, {})
            versions[entry.version] = variant
        for name, by_variant in store.versions.items():
            for variant_name, opened in by_variant.items():
                default = listing.defaults.get((name, variant_name))
                chosen = opened.get(default) if default is not None else None
                if chosen is None:  # the default failed to open: the highest that did serves
                    chosen = opened[max(opened, key=version_key)]
                store.models.setdefault(name, {})[variant_name] = chosen
        for problem in store.problems:
            log.warning("model repository: skipped %s", problem)
        for name, variants in store.models.items():
            log.info("loaded model %s (variants: %s)", name, ", ".join(variants))
        return store

    def _open(self, entry: ModelEntry) -> LoadedVariant:
        """A session for a verified entry; ``InvalidEntry`` when ONNX Runtime refuses it."""
        try:
            session = create_session(entry.onnx_path, self.intra_op_threads)
        except Exception as exc:  # noqa: BLE001 -- ORT raises unrelated types for a bad file
            raise InvalidEntry(
                entry.onnx_path, f"cannot be loaded by ONNX Runtime ({exc})"
            ) from None
        mismatch = _check_signature(session, entry.manifest)
        if mismatch is not None:
            raise InvalidEntry(entry.onnx_path, mismatch)
        return LoadedVariant(entry, session, self.wrap)

    def load_variant(self, model: str, variant: str, *, unless_same: bool = False) -> LoadedVariant:
        """Load ``<root>/<model>/<variant>`` as it is on disk now, every version of it, and
        serve it from now on; with ``unless_same``, keep serving what is served if the
        variant's versions on disk are the ones served. Returns the default version.

        ``LoadFailed`` says why it cannot be served (one unusable version is enough); whatever
        served before keeps serving, every version of it."""
        key = (model, variant)
        folder = self.root / model / variant
        if not self._in_repository(model, variant):
            raise ModelNotFound(
                f"no model {model}-{variant} in the repository: no folder {model}/{variant}"
                f" (variants are {', '.join(VARIANTS)})",
                model=model,
            )
        with self._changing:
            served = self.versions.get(model, {}).get(variant, {})
            try:
                found = scan_variant(folder, model=model, variant=variant)
                if found.problems:
                    raise InvalidEntry(found.problems[0].path, found.problems[0].reason)
                assert found.default is not None  # no problem: at least one version
                manifests = {e.version: e.manifest for e in found.entries}
                same = {v: loaded.manifest for v, loaded in served.items()} == manifests
                current = self.models.get(model, {}).get(variant)
                if unless_same and same and current is served.get(found.default, False):
                    assert current is not None
                    return current
                # A version whose files did not change keeps its session (and its batcher).
                loaded_versions = {
                    e.version: (
                        served[e.version]
                        if e.version in served and served[e.version].manifest == e.manifest
                        else self._open(e)
                    )
                    for e in found.entries
                }
            except InvalidEntry as exc:
                reason = _relative(self.root, exc.problem)
                if variant in self.models.get(model, {}):
                    self.load_failures[key] = reason
                else:
                    self.problems = [*self._others(key), exc.problem]
                raise LoadFailed(reason) from None
            versions = {
                name: {v: dict(vs) for v, vs in variants.items()}
                for name, variants in self.versions.items()
            }
            versions.setdefault(model, {})[variant] = loaded_versions
            models = {name: dict(variants) for name, variants in self.models.items()}
            default = loaded_versions[found.default]
            models.setdefault(model, {})[variant] = default
            # Versions first: a request that found the new default can find its siblings.
            self.versions = versions
            self.models = models
            if found.marked_at is None:
                self.marked_at.pop(key, None)
            else:
                self.marked_at[key] = found.marked_at
            self.problems = self._others(key)
            self.unloaded.discard(key)
            self.load_failures.pop(key, None)
        log.info(
            "loaded %s/%s (versions %s; default %s, sha256 %s)",
            model,
            variant,
            ", ".join(loaded_versions),
            found.default,
            default.manifest.onnx_sha256[:12],
        )
        return default

    def unload_variant(self, model: str, variant: str) -> None:
        """Stop serving one variant, every version of it. A variant of the repository this
        process does not serve (it failed to load, or appeared after this process read the
        repository) is noted as unloaded all the same, so every process answers for it alike;
        ``ModelNotFound`` or ``VariantNotFound`` for a name with no folder in the repository."""
        key = (model, variant)
        with self._changing:
            if key in self.unloaded:
                return  # as Triton's unload: asking twice is no error
            if variant not in self.models.get(model, {}) and self._in_repository(model, variant):
                self.unloaded.add(key)
                self.problems = self._others(key)
                self.load_failures.pop(key, None)
                return
            self.variant(model, variant)
            models = {name: dict(variants) for name, variants in self.models.items()}
            del models[model][variant]
            if not models[model]:
                del models[model]
            versions = {name: dict(variants) for name, variants in self.versions.items()}
            versions[model].pop(variant, None)
            if not versions[model]:
                del versions[model]
            self.models = models
            self.versions = versions
            self.unloaded.add((model, variant))
            self.load_failures.pop((model, variant), None)
        log.info("unloaded %s/%s", model, variant)

    def _in_repository(self, model: str, variant: str) -> bool:
        """Whether ``<root>/<model>/<variant>`` is a folder of the repository (and the names
        can only point inside it)."""
        return variant in VARIANTS and _safe_name(model) and (self.root / model / variant).is_dir()

    def _others(self, key: tuple[str, str]) -> list[Problem]:
        """The problems that are not about the variant ``key``."""
        return [p for p in self.problems if self._parts(p)[:2] != key]

    def _parts(self, problem: Problem) -> tuple[str, ...]:
        """The problem's path relative to the root, as parts; none when it lies outside."""
        try:
            return problem.path.relative_to(self.root).parts
        except ValueError:
            return ()

    @property
    def unavailable(self) -> list[Unavailable]:
        """Every entry that is not served, with paths relative to the root."""
        out = []
        for problem in self.problems:
            parts = self._parts(problem)
            path = "/".join(parts) or "."
            model = parts[0] if parts else None
            variant = parts[1] if len(parts) > 1 else None
            out.append(Unavailable(path, problem.reason, model, variant))
        for model, variant in sorted(self.unloaded):
            out.append(Unavailable(f"{model}/{variant}", UNLOADED, model, variant))
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

    def variant(self, name: str, variant: str, version: str | None = None) -> LoadedVariant:
        """One loaded variant, its default version or the one named; 503 says why a variant in
        the repository failed to load, ``VariantNotFound`` lists the ones this model has (or
        the versions this variant has)."""
        variants = self.model(name)
        try:
            loaded = variants[variant]
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
        if version is None:
            return loaded
        versions = self.versions.get(name, {}).get(variant, {})
        try:
            return versions[version]
        except KeyError:
            raise VariantNotFound(
                f"variant {variant!r} of model {name!r} has no version {version!r}"
                f" (loaded: {', '.join(sorted(versions, key=version_key))})",
                model=name,
                variant=variant,
            ) from None

    def variant_versions(self, name: str, variant: str) -> dict[str, LoadedVariant]:
        """Every loaded version of one variant, in order; empty when it is not served."""
        versions = self.versions.get(name, {}).get(variant, {})
        return {v: versions[v] for v in sorted(versions, key=version_key)}
