"""Loading and unloading models while serving: the store's swap, the routes, the action log
that carries them to every worker, and the poll of the repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
from flask.testing import FlaskClient

from service.app import create_app
from service.live_repository import ActionLog, Watcher, reset
from service.runtime import UNLOADED, ModelStore
from service.settings import Settings
from tests.builders import admin_client, write_repository, write_variant

TOKEN = "load-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    return write_repository(tmp_path / "repo")


@pytest.fixture
def client(repository: Path, tmp_path: Path) -> FlaskClient:
    return admin_client(repository, tmp_path, TOKEN)


def _infer(client: FlaskClient, name: str) -> tuple[int, dict[str, object]]:
    pixels = np.random.default_rng(0).integers(0, 256, 28 * 28).tolist()
    request = {"inputs": [{"name": "image", "datatype": "UINT8", "shape": [1, 1, 28, 28]}]}
    request["inputs"][0]["data"] = pixels  # type: ignore[index]
    response = client.post(f"/v2/models/{name}/infer", json=request)
    return response.status_code, response.get_json()


def _admin(client: FlaskClient, action: str, name: str) -> int:
    return client.post(f"/v2/repository/models/{name}/{action}", headers=ADMIN).status_code


def _index(client: FlaskClient) -> dict[str, dict[str, str]]:
    entries = client.post("/v2/repository/index", json={}).get_json()
    return {e["name"]: e for e in entries}


def test_loading_needs_the_admin_token(repository: Path, tmp_path: Path) -> None:
    off = create_app(Settings(model_repository=repository, state_directory=tmp_path / "s"))
    for action in ("load", "unload"):
        response = off.test_client().post(f"/v2/repository/models/tiny-pretrained/{action}")
        assert response.status_code == 403
        assert "HEADSTART_ADMIN_TOKEN" in response.get_json()["error"]
    on = create_app(
        Settings(model_repository=repository, admin_token=TOKEN, state_directory=tmp_path / "s")
    ).test_client()
    response = on.post("/v2/repository/models/tiny-pretrained/unload")
    assert response.status_code == 401
    assert _infer(on, "tiny-pretrained")[0] == 200  # nothing was unloaded


def test_a_model_added_to_the_repository_serves_once_loaded(
    client: FlaskClient, repository: Path
) -> None:
    write_variant(repository, "fresh", "pretrained", seed=5)
    assert _infer(client, "fresh-pretrained")[0] == 404
    response = client.post("/v2/repository/models/fresh-pretrained/load", headers=ADMIN)
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {}
    status, body = _infer(client, "fresh-pretrained")
    assert status == 200, body
    assert _index(client)["fresh-pretrained"]["state"] == "READY"
    # The variant not loaded yet is still what the repository says of it: missing.
    assert client.get("/v1/models/fresh").status_code == 200


def test_a_rebuilt_model_replaces_the_old_one(client: FlaskClient, repository: Path) -> None:
    _, before = _infer(client, "tiny-pretrained")
    write_variant(repository, "tiny", "pretrained", seed=9)  # a rebuild: other weights
    _, still = _infer(client, "tiny-pretrained")
    assert still["outputs"] == before["outputs"]  # nothing changes until it is loaded
    assert _admin(client, "load", "tiny-pretrained") == 200
    _, after = _infer(client, "tiny-pretrained")
    assert after["outputs"] != before["outputs"]


def test_a_model_that_fails_to_load_leaves_the_old_one_serving(
    client: FlaskClient, repository: Path
) -> None:
    _, before = _infer(client, "tiny-pretrained")
    (repository / "tiny" / "pretrained" / "model.onnx").write_bytes(b"half a model")
    response = client.post("/v2/repository/models/tiny-pretrained/load", headers=ADMIN)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error.startswith("tiny/pretrained/model.onnx: sha256 ")
    assert str(repository) not in error  # clients never learn the server's paths
    status, after = _infer(client, "tiny-pretrained")
    assert (status, after["outputs"]) == (200, before["outputs"])
    entry = _index(client)["tiny-pretrained"]
    assert entry["state"] == "READY"
    assert entry["reason"].startswith("the latest load failed: tiny/pretrained/model.onnx: sha256")


def test_unloading_stops_serving_until_loaded_again(client: FlaskClient) -> None:
    assert _admin(client, "unload", "tiny-baseline") == 200
    status, body = _infer(client, "tiny-baseline")
    assert status == 503
    assert UNLOADED in str(body["error"])
    entry = _index(client)["tiny-baseline"]
    assert (entry["state"], entry["reason"]) == ("UNAVAILABLE", UNLOADED)
    # Asking twice is no error, as in Triton; the other variant never stopped.
    assert _admin(client, "unload", "tiny-baseline") == 200
    assert _infer(client, "tiny-pretrained")[0] == 200
    assert _admin(client, "load", "tiny-baseline") == 200
    assert _infer(client, "tiny-baseline")[0] == 200
    assert _index(client)["tiny-baseline"]["reason"] == ""


@pytest.mark.parametrize(
    ("name", "status", "message"),
    [
        ("nohyphen", 404, "unknown model 'nohyphen': V2 names are <model>-<variant>"),
        ("tiny-student", 404, "no model tiny-student in the repository: no folder tiny/student"),
        ("..-pretrained", 404, "no model ..-pretrained in the repository"),
        ("absent-pretrained", 404, "no folder absent/pretrained"),
        ("empty-pretrained", 400, "empty/pretrained/manifest.json: missing"),
    ],
)
def test_a_load_of_something_that_is_not_a_model_says_why(
    client: FlaskClient, repository: Path, name: str, status: int, message: str
) -> None:
    (repository / "empty" / "pretrained").mkdir(parents=True)  # a folder, with no model yet
    response = client.post(f"/v2/repository/models/{name}/load", headers=ADMIN)
    assert response.status_code == status
    assert message in response.get_json()["error"]


def test_unloading_what_is_not_served_is_404(client: FlaskClient) -> None:
    response = client.post("/v2/repository/models/absent-pretrained/unload", headers=ADMIN)
    assert response.status_code == 404
    assert "unknown model 'absent'" in response.get_json()["error"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"", 200),
        (b"{}", 200),
        (b'{"parameters": {"unload_dependents": true}}', 200),
        (b'{"parameters": {"config": "{}"}}', 400),
        (b'{"parameters": 3}', 400),
        (b'{"model": "x"}', 400),
        (b"[1]", 400),
        (b"not json", 400),
    ],
)
def test_load_bodies_are_triton_s(client: FlaskClient, body: bytes, status: int) -> None:
    response = client.post(
        "/v2/repository/models/tiny-pretrained/load",
        data=body,
        headers={**ADMIN, "Content-Type": "application/json"},
    )
    assert response.status_code == status, response.get_json()
    if status == 400:
        assert response.get_json()["error"].startswith("load request: ")


def test_the_action_log_is_shared_in_order(tmp_path: Path) -> None:
    first = ActionLog(tmp_path / "control", "first")
    second = ActionLog(tmp_path / "control", "second")
    assert first.append("load", "a", "pretrained").number == 1
    assert second.append("unload", "b", "baseline").number == 2
    assert [(e.number, e.action, e.model) for e in first.after(0)] == [
        (1, "load", "a"),
        (2, "unload", "b"),
    ]
    assert [e.number for e in second.after(1)] == [2]
    first.mark_applied(1)  # behind action 2
    second.mark_applied(2)
    assert second.behind(2) == [os.getpid()]  # the process the first reader lives in
    first.mark_applied(2)
    assert second.behind(2) == []
    # A worker that died behind (its replacement catches up on its own) holds nobody up.
    dead = subprocess.Popen(["true"])
    dead.wait()
    (tmp_path / "control" / "applied" / str(dead.pid)).write_text("0")
    assert second.behind(2) == []
    reset(tmp_path / "control")
    assert first.after(0) == []


def _store(repository: Path) -> ModelStore:
    return ModelStore.load(repository)


def test_a_load_reaches_every_worker_before_it_answers(repository: Path, tmp_path: Path) -> None:
    """Two stores stand for two workers: the one asked waits until the other has it."""
    folder = tmp_path / "control"
    asked = Watcher(_store(repository), ActionLog(folder, "asked"))
    other = Watcher(_store(repository), ActionLog(folder, "other"))
    for watcher in (asked, other):
        watcher.start_from_log()
    other.start()
    try:
        write_variant(repository, "fresh", "baseline", seed=3)
        asked.request("load", "fresh", "baseline")
        assert "baseline" in other.store.models["fresh"]  # before the request returned
        asked.request("unload", "tiny", "pretrained")
        assert "pretrained" not in other.store.models["tiny"]
    finally:
        other.stop()
    # A worker started later (a replacement) catches up with what was unloaded before it.
    late = Watcher(_store(repository), ActionLog(folder, "late"))
    late.start_from_log()
    assert "pretrained" not in late.store.models["tiny"]
    assert "baseline" in late.store.models["fresh"]


def test_requests_during_reloads_are_all_answered_by_a_whole_model(
    repository: Path, tmp_path: Path
) -> None:
    store = _store(repository)
    watcher = Watcher(store, ActionLog(None))
    images = np.zeros((1, 1, 28, 28), np.uint8)
    answers: list[int] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                out = store.variant("tiny", "pretrained").run(images, ("probabilities",))
                answers.append(int(out["probabilities"].shape[0]))
            except BaseException as exc:  # noqa: BLE001 -- any failure is the finding
                failures.append(exc)

    threads = [threading.Thread(target=serve) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        for seed in range(20):
            write_variant(repository, "tiny", "pretrained", seed=seed)
            watcher.request("load", "tiny", "pretrained")
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert failures == []
    assert answers
    assert set(answers) == {1}


def test_the_poll_loads_what_changed_and_unloads_what_is_gone(repository: Path) -> None:
    watcher = Watcher(_store(repository), ActionLog(None), poll_seconds=60)
    write_variant(repository, "fresh", "pretrained", seed=4)
    before = watcher.store.models["tiny"]["baseline"]
    watcher.poll()
    assert "pretrained" in watcher.store.models["fresh"]
    assert watcher.store.models["tiny"]["baseline"] is before  # unchanged: not loaded again
    shutil.rmtree(repository / "fresh")
    watcher.poll()
    assert "fresh" not in watcher.store.models


def test_a_worker_still_starting_when_a_load_was_logged_catches_up(
    repository: Path, tmp_path: Path
) -> None:
    """Its store was read from disk before the new model was there, its log after (it has
    no mark yet, so the load did not wait for it)."""
    folder = tmp_path / "control"
    starting = Watcher(_store(repository), ActionLog(folder, "starting"))
    asked = Watcher(_store(repository), ActionLog(folder, "asked"))
    asked.start_from_log()
    write_variant(repository, "fresh", "pretrained", seed=6)
    asked.request("load", "fresh", "pretrained")
    asked.request("load", "tiny", "pretrained")  # unchanged on disk
    first = starting.store.models["tiny"]["pretrained"]
    starting.start_from_log()
    assert "pretrained" in starting.store.models["fresh"]
    # What it read from disk and is unchanged there is not opened a second time.
    assert starting.store.models["tiny"]["pretrained"] is first


def test_every_load_and_unload_is_in_the_audit_trail(client: FlaskClient, repository: Path) -> None:
    assert _admin(client, "unload", "tiny-baseline") == 200
    assert _admin(client, "load", "tiny-baseline") == 200
    (repository / "tiny" / "pretrained" / "model.onnx").write_bytes(b"half a model")
    assert _admin(client, "load", "tiny-pretrained") == 400
    assert _admin(client, "unload", "absent-pretrained") == 404  # nothing happened: no record
    assert client.get("/v1/repository/actions").status_code == 401
    trail = client.get("/v1/repository/actions", headers=ADMIN).get_json()["actions"]
    assert [(a["action"], a["model"], a["variant"], a["outcome"]) for a in trail] == [
        ("load", "tiny", "pretrained", "failed"),
        ("load", "tiny", "baseline", "done"),
        ("unload", "tiny", "baseline", "done"),
    ]
    assert trail[0]["detail"]["reason"].startswith("tiny/pretrained/model.onnx: sha256 ")
    manifest = client.get("/v1/models/tiny").get_json()["variants"]
    (baseline,) = [v for v in manifest if v["variant"] == "baseline"]
    assert trail[1]["detail"] == {"onnx_sha256": baseline["onnx_sha256"]}
    assert {a["actor"] for a in trail} == {"admin"}
    assert trail[0]["at"] >= trail[1]["at"] >= trail[2]["at"]


def test_a_worker_that_starts_after_a_load_and_an_unload_answers_as_the_others(
    repository: Path, tmp_path: Path
) -> None:
    """It read the repository before the model was added, and its log once the model had
    been loaded and unloaded again: it must say "unloaded", as every other worker does, not
    "unknown model"."""
    folder = tmp_path / "control"
    late = Watcher(_store(repository), ActionLog(folder, "late"))
    asked = Watcher(_store(repository), ActionLog(folder, "asked"))
    asked.start_from_log()
    write_variant(repository, "fresh", "pretrained", seed=8)
    asked.request("load", "fresh", "pretrained")
    asked.request("unload", "fresh", "pretrained")
    late.start_from_log()
    for store in (asked.store, late.store):
        assert store.failure("fresh", "pretrained") == UNLOADED
