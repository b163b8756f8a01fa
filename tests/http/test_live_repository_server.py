"""Loading and unloading models in a real two-worker server, through tritonclient and plain
HTTP, while requests keep coming: no request fails, and once a load has answered every worker
serves what it loaded."""

from __future__ import annotations

import os
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests
import tritonclient.http as httpclient

from tests.builders import write_repository, write_variant
from tests.server import running_server
from tests.test_readme import block

DOCS_LOAD = 'curl -X POST -H "Authorization: Bearer $HEADSTART_ADMIN_TOKEN"'
TOKEN = "live-repository-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
FRESH_CONNECTIONS = 40
"""Requests on new connections after a change: the kernel hands them to both workers."""


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # "mnist" as the docs' example names it, in tiny models.
    return write_repository(tmp_path_factory.mktemp("live-repository"), names=("tiny", "mnist"))


@pytest.fixture(scope="module")
def server(repository: Path) -> Iterator[str]:
    env = {"HEADSTART_WORKERS": "2", "HEADSTART_ADMIN_TOKEN": TOKEN, "HEADSTART_GRPC": "false"}
    with running_server(repository, env) as url:
        yield url


def _infer(url: str, name: str) -> int:
    pixels = np.random.default_rng(0).integers(0, 256, 28 * 28).tolist()
    body = {"inputs": [{"name": "image", "datatype": "UINT8", "shape": [1, 1, 28, 28]}]}
    body["inputs"][0]["data"] = pixels  # type: ignore[index]
    # A new connection each time (no session), so that both workers answer some.
    return requests.post(f"{url}/v2/models/{name}/infer", json=body, timeout=60).status_code


def test_a_loaded_model_is_served_by_every_worker(server: str, repository: Path) -> None:
    write_variant(repository, "fresh", "pretrained", seed=7)
    client = httpclient.InferenceServerClient(url=server.removeprefix("http://"))
    assert not client.is_model_ready("fresh-pretrained")
    client.load_model("fresh-pretrained", headers=ADMIN)  # tritonclient's own call
    assert client.is_model_ready("fresh-pretrained")
    statuses = Counter(_infer(server, "fresh-pretrained") for _ in range(FRESH_CONNECTIONS))
    assert statuses == {200: FRESH_CONNECTIONS}
    client.unload_model("fresh-pretrained", headers=ADMIN)
    statuses = Counter(_infer(server, "fresh-pretrained") for _ in range(FRESH_CONNECTIONS))
    assert statuses == {503: FRESH_CONNECTIONS}
    index = {e["name"]: e for e in client.get_model_repository_index()}
    assert index["fresh-pretrained"]["state"] == "UNAVAILABLE"


def test_the_docs_load_command_runs_as_written(server: str) -> None:
    command = block("docs/api.md", DOCS_LOAD).text.replace("localhost:8000", server)
    env = {**os.environ, "HEADSTART_ADMIN_TOKEN": TOKEN}
    done = subprocess.run(
        ["bash", "-c", f"set -euo pipefail; {command} --fail-with-body -sS"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    assert done.stdout.strip() == "{}"


def test_twenty_loads_under_load_fail_no_request(server: str, repository: Path) -> None:
    statuses: Counter[int] = Counter()
    stop = threading.Event()

    def keep_asking() -> None:
        while not stop.is_set():
            statuses[_infer(server, "tiny-pretrained")] += 1

    askers = [threading.Thread(target=keep_asking) for _ in range(3)]
    for asker in askers:
        asker.start()
    loads = []
    try:
        for seed in range(20):
            write_variant(repository, "tiny", "pretrained", seed=100 + seed)  # a rebuild
            answer = requests.post(
                f"{server}/v2/repository/models/tiny-pretrained/load", headers=ADMIN, timeout=60
            )
            loads.append(answer.status_code)
    finally:
        stop.set()
        for asker in askers:
            asker.join()
    assert loads == [200] * 20
    assert set(statuses) == {200}, statuses
    assert statuses[200] >= 20


def test_a_model_that_fails_to_load_keeps_the_old_one_in_every_worker(
    server: str, repository: Path
) -> None:
    (repository / "tiny" / "baseline" / "model.onnx").write_bytes(b"truncated")
    answer = requests.post(
        f"{server}/v2/repository/models/tiny-baseline/load", headers=ADMIN, timeout=60
    )
    assert answer.status_code == 400
    assert answer.json()["error"].startswith("tiny/baseline/model.onnx: sha256 ")
    statuses = Counter(_infer(server, "tiny-baseline") for _ in range(FRESH_CONNECTIONS))
    assert statuses == {200: FRESH_CONNECTIONS}
    index = requests.post(f"{server}/v2/repository/index", json={}, timeout=10).json()
    (entry,) = [e for e in index if e["name"] == "tiny-baseline"]
    assert entry["state"] == "READY"
    assert entry["reason"].startswith("the latest load failed: ")
