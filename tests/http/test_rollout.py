"""A rollout from start to end, in a real two-worker server, on SQLite and on PostgreSQL:
a second version of the served model is built into the repository and loaded while traffic
runs; an experiment compares it with the first, is ramped from 10% to 50%, and promotes it
by itself on labelled traffic; a broken third version is then rolled back by itself.

Version 2 is the project's pre-trained model; version 1 is the same network with a labelling
bug (classes 3 and 5 swapped), which version 2 fixes; version 3 is version 2 with every class
name shuffled. The digits are MNIST's, labelled with their true classes."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Self

import numpy as np
import pytest
import requests

from models.placement import place, plan
from service.repository import DEFAULT_VERSION_FILE
from tests.images import mnist, png
from tests.server import running_server

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "model_repository" / "mnist"
ADMIN = {"Authorization": "Bearer r-admin"}
FEEDBACK = {"Authorization": "Bearer r-feedback"}
ENV = {
    "HEADSTART_WORKERS": "2",
    "HEADSTART_GRPC": "false",
    "HEADSTART_ADMIN_TOKEN": "r-admin",
    "HEADSTART_FEEDBACK_TOKEN": "r-feedback",
    "HEADSTART_POLICY_INTERVAL_SECONDS": "0.5",
}
CYCLES = 20
BUDGET = 4000
"""Most labelled requests an experiment is given to reach its verdict (a hang guard)."""


def _version(source: Path, target: Path, variant: str, version: str, **changes: object) -> Path:
    """``source``'s model as ``version`` of ``variant``, in a folder of its own under ``target``."""
    target.mkdir(parents=True)
    shutil.copy(source / "model.onnx", target / "model.onnx")
    manifest = json.loads((source / "manifest.json").read_text())
    manifest.update(variant=variant, version=version, **changes)
    (target / "manifest.json").write_text(json.dumps(manifest))
    return target


def _build_next(repository: Path, source: Path, tmp_path: Path, **changes: object) -> str:
    """Put ``source``'s model into the repository as pretrained's next version, as
    ``headstart build`` does (the default stays); return the version."""
    variant_dir = repository / "mnist" / "pretrained"
    placement = plan(variant_dir, replace=False, make_default=False)
    staged = _version(
        source,
        tmp_path / f"staging-{placement.version}",
        "pretrained",
        placement.version,
        **changes,
    )
    place(staged, variant_dir, placement)
    return placement.version


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    """mnist/pretrained holds version 1 only (classes 3 and 5 swapped); baseline as shipped."""
    root = tmp_path / "repo"
    shutil.copytree(COMMITTED / "baseline", root / "mnist" / "baseline")
    swapped = [{"3": "5", "5": "3"}.get(str(c), str(c)) for c in range(10)]
    _version(
        COMMITTED / "pretrained",
        root / "mnist" / "pretrained",
        "pretrained",
        "1",
        class_names=swapped,
    )
    return root


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.system)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    if request.param == "sqlite":
        yield {}
        return
    from tests.system.postgres import postgres_server

    with postgres_server() as url:
        yield {"HEADSTART_DATABASE_URL": url}


class Traffic:
    """Classify requests in a loop on a thread of its own; every answer that is not 200 is
    kept, with what the request asked."""

    def __init__(self, url: str, query: str) -> None:
        self.url, self.query = url, query
        self.images = [png(d) for d in mnist()[0][:50]]
        self.answered = 0
        self.failed: list[tuple[str, int, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        with requests.Session() as session:
            while not self._stop.is_set():
                image = self.images[self.answered % len(self.images)]
                answer = session.post(
                    f"{self.url}/v1/models/mnist/classify{self.query}",
                    files={"image": ("d.png", image)},
                    timeout=60,
                )
                if answer.status_code != 200:
                    self.failed.append((self.query, answer.status_code, answer.text[:200]))
                self.answered += 1


def _admin(url: str, method: str, path: str, body: object = None) -> dict[str, object]:
    answer = requests.request(method, f"{url}{path}", json=body, headers=ADMIN, timeout=60)
    assert answer.status_code in (200, 201), (path, answer.text)
    return answer.json()  # type: ignore[no-any-return]


def _versions_served(url: str, query: str, times: int = 20) -> set[str]:
    """The versions that answered ``times`` requests (both workers answer some)."""
    image = png(mnist()[0][0])
    seen = set()
    for _ in range(times):
        answer = requests.post(
            f"{url}/v1/models/mnist/classify{query}", files={"image": ("d.png", image)}, timeout=60
        )
        assert answer.status_code == 200, answer.text
        seen.add(answer.json()["version"])
    return seen


def _run_until_decided(url: str, name: str, start: int, ramp_at: int | None) -> dict[str, object]:
    """Send labelled digits through the experiment (feedback every 100) until the policy
    has acted; ramp to 1:1 after ``ramp_at`` requests."""
    digits, labels = mnist()
    # The digits come sorted by class; people send them in no such order.
    order = np.random.default_rng(0).permutation(len(digits))
    items: list[dict[str, str]] = []
    for i in range(start, start + BUDGET):
        if ramp_at is not None and i == start + ramp_at:
            ramped = _admin(
                url, "PATCH", f"/v1/experiments/{name}", {"weights": {"v1": 1, "v2": 1}}
            )
            assert ramped["period"] == 1
        answer = requests.post(
            f"{url}/v1/models/mnist/classify?experiment={name}",
            files={"image": ("d.png", png(digits[order[i % len(digits)]]))},
            headers={"X-Experiment-Unit": f"user-{i}"},
            timeout=60,
        )
        if answer.status_code == 409:  # the policy stopped it between two requests
            break
        assert answer.status_code == 200, answer.text
        items.append(
            {
                "request_id": answer.headers["X-Request-ID"],
                "label": str(labels[order[i % len(labels)]]),
            }
        )
        if len(items) == 100:
            stored = requests.post(
                f"{url}/v1/feedback", json={"items": items}, headers=FEEDBACK, timeout=60
            )
            assert stored.json()["stored"] == 100, stored.text
            items = []
            found = _admin(url, "GET", f"/v1/experiments/{name}")
            if found["status"] == "stopped":
                return found
    deadline = time.monotonic() + 30  # the policy runs every half second
    while time.monotonic() < deadline:
        found = _admin(url, "GET", f"/v1/experiments/{name}")
        if found["status"] == "stopped":
            return found
        time.sleep(0.2)
    return found


def test_a_second_version_is_loaded_tried_ramped_promoted_and_a_broken_one_rolled_back(
    repository: Path, database: dict[str, str], tmp_path: Path
) -> None:
    with running_server(repository, {**ENV, **database}) as url:
        assert _versions_served(url, "") == {"1"}

        # A second version is built into the repository and loaded while traffic runs.
        assert _build_next(repository, COMMITTED / "pretrained", tmp_path) == "2"
        assert (repository / "mnist" / "pretrained" / DEFAULT_VERSION_FILE).read_text() == "1\n"
        # Unloads and loads of pretrained while baseline is asked; then loads while both
        # versions of pretrained are asked: no request may fail.
        with Traffic(url, "?variant=baseline") as other:
            for _ in range(CYCLES):
                _admin(url, "POST", "/v2/repository/models/mnist-pretrained/unload")
                _admin(url, "POST", "/v2/repository/models/mnist-pretrained/load")
        with Traffic(url, "?version=1") as first, Traffic(url, "?version=2") as second:
            for _ in range(CYCLES):
                _admin(url, "POST", "/v2/repository/models/mnist-pretrained/load")
        for traffic in (other, first, second):
            assert traffic.answered > 0
            assert traffic.failed == [], traffic.failed[:3]
        assert _versions_served(url, "?version=2") == {"2"}
        assert _versions_served(url, "") == {"1"}  # the default stays until promoted

        # An experiment v1 against v2 at 10%, ramped to 50%, promotes v2 by itself.
        _admin(
            url,
            "POST",
            "/v1/experiments",
            {
                "name": "v1-vs-v2",
                "model": "mnist",
                "arms": [
                    {"name": "v1", "variant": "pretrained", "version": "1", "weight": 9},
                    {"name": "v2", "variant": "pretrained", "version": "2", "weight": 1},
                ],
                "policy": {"promote": True, "rollback": True},
            },
        )
        found = _run_until_decided(url, "v1-vs-v2", 0, ramp_at=200)
        assert found["status"] == "stopped", found
        trail = [(a["action"], a["actor"]) for a in found["actions"]]  # type: ignore[union-attr]
        assert trail == [("create", "admin"), ("ramp", "admin"), ("promote", "policy")]
        detail = found["actions"][-1]["detail"]  # type: ignore[index]
        assert (detail["arm"], detail["version"]) == ("v2", "2")
        time.sleep(1.5)  # each worker re-reads the default within a second
        assert _versions_served(url, "") == {"2"}

        # A broken third version (its class names shuffled) is rolled back by itself.
        shuffled = [str(c) for c in np.random.default_rng(0).permutation(10)]
        assert (
            _build_next(repository, COMMITTED / "pretrained", tmp_path, class_names=shuffled) == "3"
        )
        _admin(url, "POST", "/v2/repository/models/mnist-pretrained/load")
        _admin(
            url,
            "POST",
            "/v1/experiments",
            {
                "name": "v2-vs-v3",
                "model": "mnist",
                "arms": [
                    {"name": "v1", "variant": "pretrained", "version": "2"},
                    {"name": "v2", "variant": "pretrained", "version": "3"},
                ],
                "policy": {"promote": True, "rollback": True},
            },
        )
        found = _run_until_decided(url, "v2-vs-v3", BUDGET, ramp_at=None)
        assert found["status"] == "stopped", found
        last = found["actions"][-1]  # type: ignore[index]
        assert (last["action"], last["actor"], last["detail"]["version"]) == (
            "rollback",
            "policy",
            "2",
        )
        time.sleep(1.5)
        assert _versions_served(url, "") == {"2"}
        refused = requests.post(
            f"{url}/v1/models/mnist/classify?experiment=v2-vs-v3",
            files={"image": ("d.png", png(mnist()[0][0]))},
            timeout=60,
        )
        assert refused.status_code == 409, refused.text
