"""Dynamic batching merges concurrent requests into one run and hands each its own rows."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from service.app import create_app
from service.batching import Batcher
from service.runtime import OUTPUTS, LoadedVariant, ModelStore
from service.settings import Settings
from tests.images import png


@pytest.fixture
def variant(repository: Path) -> LoadedVariant:
    return ModelStore.load(repository).variant("tiny", "pretrained")


def _images(n: int, seed: int) -> NDArray[np.uint8]:
    return np.random.default_rng(seed).integers(0, 256, (n, 1, 28, 28), dtype=np.uint8)


class _Recorder:
    """The variant's real run, noting the batch size of each call."""

    def __init__(self, variant: LoadedVariant, fail: bool = False) -> None:
        self.variant = variant
        self.sizes: list[int] = []
        self.fail = fail

    def __call__(
        self, images: NDArray[np.uint8], outputs: Sequence[str]
    ) -> dict[str, NDArray[np.float32]]:
        self.sizes.append(len(images))
        if self.fail:
            raise RuntimeError("session failed")
        return self.variant.run_now(images, outputs)


def _concurrently(
    batcher: Batcher, inputs: list[NDArray[np.uint8]], outputs: Sequence[str]
) -> list[object]:
    results: list[object] = [None] * len(inputs)
    start = threading.Barrier(len(inputs))

    def call(i: int) -> None:
        start.wait()
        try:
            results[i] = batcher.run(inputs[i], outputs)
        except RuntimeError as exc:
            results[i] = exc

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(inputs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def test_concurrent_requests_share_a_run_and_get_their_own_rows(variant: LoadedVariant) -> None:
    recorder = _Recorder(variant)
    # A long wait lets all four requests (1 + 2 + 3 + 1 images) join the first batch.
    batcher = Batcher(recorder, OUTPUTS, max_size=7, max_wait_s=5.0)
    inputs = [_images(n, seed) for seed, n in enumerate((1, 2, 3, 1))]
    results = _concurrently(batcher, inputs, ("probabilities",))
    assert recorder.sizes == [7]
    for images, result in zip(inputs, results, strict=True):
        assert isinstance(result, dict)
        assert list(result) == ["probabilities"]
        expected = variant.run_now(images, ("probabilities",))["probabilities"]
        np.testing.assert_allclose(result["probabilities"], expected, rtol=1e-5, atol=1e-6)


def test_batches_never_exceed_max_size(variant: LoadedVariant) -> None:
    recorder = _Recorder(variant)
    batcher = Batcher(recorder, OUTPUTS, max_size=4, max_wait_s=0.05)
    inputs = [_images(3, seed) for seed in range(5)]
    results = _concurrently(batcher, inputs, OUTPUTS)
    assert all(isinstance(r, dict) for r in results)
    assert sum(recorder.sizes) == 15
    assert max(recorder.sizes) <= 4


def test_a_request_as_large_as_a_batch_runs_alone(variant: LoadedVariant) -> None:
    recorder = _Recorder(variant)
    batcher = Batcher(recorder, OUTPUTS, max_size=4, max_wait_s=5.0)
    result = batcher.run(_images(4, 0), ("embedding",))
    assert recorder.sizes == [4]
    assert result["embedding"].shape == (4, 16)


def test_a_failed_run_fails_every_request_in_it(variant: LoadedVariant) -> None:
    recorder = _Recorder(variant, fail=True)
    # Three one-image requests fill a batch of three, so it runs without waiting out the window.
    batcher = Batcher(recorder, OUTPUTS, max_size=3, max_wait_s=5.0)
    results = _concurrently(batcher, [_images(1, s) for s in range(3)], OUTPUTS)
    assert [str(r) for r in results] == ["session failed"] * 3
    assert recorder.sizes == [3]


def test_settings_turn_batching_on(repository: Path) -> None:
    on = create_app(Settings(model_repository=repository, batch_max_size=8, batch_max_wait_ms=2))
    off = create_app(Settings(model_repository=repository))
    for app, expected in ((on, True), (off, False)):
        store: ModelStore = app.extensions["headstart.plane"].store
        batchers = [_batcher(v) for vs in store.models.values() for v in vs.values()]
        assert batchers
        assert all((b is not None) == expected for b in batchers)
    batcher = _batcher(on.extensions["headstart.plane"].store.variant("tiny", "baseline"))
    assert batcher is not None
    assert (batcher.max_size, batcher.max_wait_s) == (8, 0.002)


def _batcher(variant: LoadedVariant) -> Batcher | None:
    """The batcher a variant's run goes through, if batching wrapped it at load time."""
    owner = getattr(variant.run, "__self__", None)
    return owner if isinstance(owner, Batcher) else None


def test_classify_answers_alike_with_batching_on_and_off(repository: Path) -> None:
    digit = png(np.tile(np.arange(28, dtype=np.uint8) * 9, (28, 1)))
    answers = []
    for size in (1, 8):
        app = create_app(Settings(model_repository=repository, batch_max_size=size))
        response = app.test_client().post(
            "/v1/models/tiny/classify", data=digit, content_type="image/png"
        )
        assert response.status_code == 200
        answers.append(response.get_json())
    assert answers[0] == answers[1]
