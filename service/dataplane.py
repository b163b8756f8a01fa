"""The one data plane under every protocol: resolve a variant, decode, run, shape the answer.

The HTTP layers (v1 in :mod:`service.api.v1`, the Open Inference Protocol in
:mod:`service.v2.api`) only translate requests into these calls and their
results into responses; every route reaches ONNX Runtime through :meth:`DataPlane.run`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from service import catalog, deadline, results
from service.decode import Decoded, DecodeOptions, decode_images
from service.errors import ModelNotFound, NotFound, NotReady, VariantNotFound
from service.live_repository import ActionLog, Watcher
from service.naming import DEFAULT_VARIANT, split_v2_name, v2_name
from service.runtime import OUTPUTS, LoadedVariant, ModelStore, Outputs, reset_timing, run_timing
from service.settings import Settings
from service.v2 import inference as v2_inference
from service.v2 import metadata as v2_metadata
from service.v2.metadata import model_spec
from service.v2.request import InferenceRequest

COMPARED = ("pretrained", "baseline")
"""The two variants ``compare`` runs, in the order its answer names them."""

RunObserver = Callable[[LoadedVariant, int, float, float], None]

Promotion = tuple[str, str | None, float]
"""A model's promoted default: its variant, version (None: the variant's default) and when it
was promoted (seconds since the epoch)."""
"""Told of every model run: the variant, its image count, seconds queued and seconds computing."""


class DataPlane:
    """Every model in one process, and everything a request can ask of them."""

    def __init__(
        self, store: ModelStore, settings: Settings, observe: RunObserver | None = None
    ) -> None:
        self.store = store
        self.settings = settings
        self.observe = observe
        self.repository = Watcher(
            store, ActionLog(settings.control_directory), settings.repository_poll_seconds
        )
        """Loads and unloads variants while serving, in this worker and in every other."""
        self.promoted: Callable[[str], Promotion | None] | None = None
        """Where a model's promoted default variant and version are kept (the experiments
        store), if anywhere."""

    # --- resolving names ------------------------------------------------------------------

    def default_variant(self, model: str) -> str:
        """The variant v1 serves when a request names none: the one an experiment promoted,
        while it is loaded, else ``pretrained``."""
        promoted = self.promoted(model) if self.promoted is not None else None
        if promoted is not None and promoted[0] in self.store.models.get(model, {}):
            return promoted[0]
        return DEFAULT_VARIANT

    def default_version(self, model: str, variant: str) -> str | None:
        """The version of ``variant`` served when a request names none: the one an experiment
        promoted, while it is loaded and unless the repository's ``default_version`` file was
        written after the promotion; else None (the repository's default version)."""
        promoted = self.promoted(model) if self.promoted is not None else None
        if promoted is None or promoted[0] != variant or promoted[1] is None:
            return None
        if promoted[2] < self.store.marked_at.get((model, variant), 0.0):
            return None  # the repository named a default since: the latest word holds
        if promoted[1] in self.store.versions.get(model, {}).get(variant, {}):
            return promoted[1]
        return None

    def variant(self, model: str, variant: str, version: str | None = None) -> LoadedVariant:
        """A variant by v1's names, at ``version`` or its default one; 404 lists the known
        ones, 503 says why one failed to load."""
        if version is not None:
            return self.store.variant(model, variant, version)
        promoted = self.default_version(model, variant)
        if promoted is not None:
            try:
                return self.store.variant(model, variant, promoted)
            except VariantNotFound:
                pass  # unloaded since it was looked up: the repository's default serves
        return self.store.variant(model, variant)

    def v2_variant(self, name: str, version: str | None = None) -> LoadedVariant:
        """The variant behind a V2 name ``<model>-<variant>``, at ``version`` or its default
        one; 404 when unknown, 503 when it failed to load."""
        self.store.require_ready()
        model, variant = split_v2_name(name)
        loaded = self.store.models.get(model, {}).get(variant) if model else None
        if loaded is None:
            reason = self.store.failure(model, variant) if model else None
            if reason is not None:
                raise NotReady(f"model {name!r} is not ready: {reason}")
            known = ", ".join(
                sorted(
                    v2_name(v.manifest) for vs in self.store.models.values() for v in vs.values()
                )
            )
            raise ModelNotFound(f"unknown model {name!r} (known: {known})")
        versions = self.store.variant_versions(model, variant)
        if version is None:
            promoted = self.default_version(model, variant)
            # A promoted version unloaded since it was looked up: the repository's default.
            return versions.get(promoted, loaded) if promoted is not None else loaded
        if version not in versions:
            raise NotFound(
                f"model {name!r} has no version {version[:40]!r} (available: {', '.join(versions)})"
            )
        return versions[version]

    def load(self, name: str) -> None:
        """(Re)load the V2 model ``<model>-<variant>`` from the repository, in every worker."""
        model, variant = split_v2_name(name)
        if not model:
            raise ModelNotFound(f"unknown model {name!r}: V2 names are <model>-<variant>")
        self.repository.request("load", model, variant)

    def unload(self, name: str) -> None:
        """Stop serving the V2 model ``<model>-<variant>``, in every worker."""
        model, variant = split_v2_name(name)
        if not model:
            raise ModelNotFound(f"unknown model {name!r}: V2 names are <model>-<variant>")
        self.repository.request("unload", model, variant)

    def served(self) -> list[LoadedVariant]:
        """Every loaded variant (its default version), model by model."""
        return [v for variants in self.store.models.values() for v in variants.values()]

    def served_versions(self) -> list[LoadedVariant]:
        """Every loaded version of every variant, model by model."""
        return [
            version
            for model, variants in self.store.models.items()
            for variant in variants
            for version in self.store.variant_versions(model, variant).values()
        ]

    def v2_metadata(self, name: str, version: str | None = None) -> dict[str, Any]:
        """V2's ``$metadata_model_response`` for the model, listing every loaded version."""
        loaded = self.v2_variant(name, version)
        manifest = loaded.manifest
        versions = self.store.variant_versions(manifest.name, manifest.variant)
        return v2_metadata.model_metadata(manifest, list(versions))

    def v2_variants(self, name: str | None, version: str | None = None) -> list[LoadedVariant]:
        """The V2 model ``name``, or every served one when ``name`` is ``None``; 503 when none is."""
        if name is not None:
            return [self.v2_variant(name, version)]
        self.store.require_ready()
        return self.served()

    # --- the one way to a model -----------------------------------------------------------

    def decode(
        self, variant: LoadedVariant, images: Sequence[bytes], options: DecodeOptions
    ) -> NDArray[np.uint8]:
        """Decode encoded images for ``variant``'s input spec, under the service's pixel limits
        (per image and per request) and the request's deadline."""
        return self.decode_flagged(variant, images, options).pixels

    def decode_flagged(
        self, variant: LoadedVariant, images: Sequence[bytes], options: DecodeOptions
    ) -> Decoded:
        """:meth:`decode`, with framing's blank verdicts when it framed the images."""
        options = dataclasses.replace(
            options,
            max_pixels=self.settings.max_image_pixels,
            max_request_pixels=self.settings.max_request_pixels,
        )
        return decode_images(images, variant.manifest.input, options)

    def run(
        self, variant: LoadedVariant, images: NDArray[np.uint8], outputs: Sequence[str] = OUTPUTS
    ) -> Outputs:
        """Run ``uint8 [N, C, H, W]`` images through ``variant``: every route ends here.

        Not started once the request is past its deadline (its client has had a 504)."""
        deadline.check(f"running {variant.manifest.name}-{variant.manifest.variant}")
        reset_timing()
        result = variant.run(images, outputs)
        if self.observe is not None:
            queued, computed = run_timing()
            self.observe(variant, len(images), queued, computed)
        return result

    # --- v1 -------------------------------------------------------------------------------

    def models(self) -> dict[str, Any]:
        """Every served model with its variants, and every entry that is not served, with why."""
        self.store.require_ready()
        return {
            "models": [self.describe(name) for name in self.store.models],
            "unavailable": [u.to_json() for u in self.store.unavailable],
        }

    def class_names(self, model: str, variant: str) -> list[str]:
        """The classes one variant predicts, by the names its predictions carry."""
        return list(self.variant(model, variant).manifest.class_names)

    def describe(self, model: str) -> dict[str, Any]:
        """One model: classes, input spec, embedding size, provenance and test metrics, and the
        variant served when a request names none."""
        served = {name: self.variant(model, name) for name in self.store.model(model)}
        versions = {name: list(self.store.variant_versions(model, name)) for name in served}
        described = catalog.describe_model(served, versions)
        return {**described, "default_variant": self.default_variant(model)}

    def classify(
        self,
        model: str,
        variant: str,
        images: Sequence[bytes],
        options: DecodeOptions,
        top_k: int,
        include_input: bool = False,
        version: str | None = None,
    ) -> dict[str, Any]:
        """Per image: the most likely class, its probability and the ``top_k`` classes.

        Blank images are flagged; ``include_input`` adds the image the model received."""
        loaded = self.variant(model, variant, version)
        decoded = self.decode_flagged(loaded, images, options)
        probabilities = self.run(loaded, decoded.pixels, ("probabilities",))["probabilities"]
        return results.classification(
            loaded.manifest, probabilities, top_k, decoded.pixels, include_input, decoded.blank
        )

    def embed(
        self,
        model: str,
        variant: str,
        images: Sequence[bytes],
        options: DecodeOptions,
        normalize: bool,
        version: str | None = None,
    ) -> dict[str, Any]:
        """One embedding vector per image, unit length if ``normalize``; blank images are flagged."""
        loaded = self.variant(model, variant, version)
        decoded = self.decode_flagged(loaded, images, options)
        vectors = self.run(loaded, decoded.pixels, ("embedding",))["embedding"]
        return results.embeddings(
            loaded.manifest, vectors, normalize, decoded.pixels, decoded.blank
        )

    def compare(
        self,
        model: str,
        images: Sequence[bytes],
        options: DecodeOptions,
        labels: Sequence[results.Label] | None = None,
        include_input: bool = False,
    ) -> dict[str, Any]:
        """Run both variants on the same images; with labels, accuracy and McNemar's test.

        Blank images are flagged; ``include_input`` adds the image the models received."""
        first, second = self.compared(model)
        truth = None if labels is None else results.label_indices(labels, first.manifest)
        decoded = self.decode_flagged(first, images, options)
        pixels = decoded.pixels
        # Decoded once when both variants take the same input, as they normally do.
        second_pixels = pixels
        if second.manifest.input != first.manifest.input:
            second_pixels = self.decode(second, images, options)
        runs = (self._timed(first, pixels), self._timed(second, second_pixels))
        return results.comparison(
            first.manifest, second.manifest, runs, pixels, truth, include_input, decoded.blank
        )

    def compared(self, model: str) -> tuple[LoadedVariant, LoadedVariant]:
        """The two variants ``compare`` runs; 404 or 503 if either is not served."""
        first, second = (self.variant(model, name) for name in COMPARED)
        return first, second

    def _timed(
        self, variant: LoadedVariant, images: NDArray[np.uint8]
    ) -> tuple[NDArray[np.float32], float]:
        start = time.perf_counter()
        probabilities = self.run(variant, images, ("probabilities",))["probabilities"]
        return probabilities, (time.perf_counter() - start) * 1000.0

    # --- V2 -------------------------------------------------------------------------------

    def infer(
        self,
        name: str,
        version: str | None,
        request: InferenceRequest,
        chunks: Sequence[memoryview | None],
    ) -> v2_inference.InferenceResult:
        """Check a V2 inference request against the model's metadata and run the model once."""
        loaded = self.v2_variant(name, version)
        spec = model_spec(loaded.manifest)
        prepared = v2_inference.prepare(request, chunks, spec, self.settings.max_batch)
        outputs = self.run(loaded, prepared.images, [w.name for w in prepared.wanted])
        return v2_inference.respond(request, spec, prepared, outputs)
