"""Online experiments against the real gunicorn: routing, exposures, feedback, durability."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.builders import write_repository
from tests.images import mnist, png
from tests.server import running_server

ADMIN = {"Authorization": "Bearer t-admin"}
FEEDBACK = {"Authorization": "Bearer t-feedback"}
TOKENS = {"HEADSTART_ADMIN_TOKEN": "t-admin", "HEADSTART_FEEDBACK_TOKEN": "t-feedback"}


def _definition(name: str, mode: str = "split", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "model": "tiny",
        "mode": mode,
        "arms": [
            {"name": "a", "variant": "pretrained", "weight": 1},
            {"name": "b", "variant": "baseline", "weight": 1},
        ],
        **extra,
    }


def _digit(i: int = 0) -> bytes:
    x, _ = mnist()
    return png(x[i])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    repo = write_repository(tmp_path_factory.mktemp("exp-repo"))
    with running_server(repo, {**TOKENS, "HEADSTART_WORKERS": "2"}) as url:
        yield url


def _create(url: str, name: str, mode: str = "split") -> None:
    response = requests.post(f"{url}/v1/experiments", json=_definition(name, mode), headers=ADMIN)
    assert response.status_code == 201, response.text


def _classify(
    url: str, experiment: str, unit: str | None, image: bytes | None = None, **headers: str
) -> requests.Response:
    h = dict(headers)
    if unit is not None:
        h["X-Experiment-Unit"] = unit
    return requests.post(
        f"{url}/v1/models/tiny/classify",
        params={"experiment": experiment, "top_k": 2},
        files={"image": ("d.png", image or _digit())},
        headers=h,
    )


def test_a_unit_gets_the_same_arm_from_every_worker(server: str) -> None:
    _create(server, "sticky")
    arms = {}
    for unit in ("u1", "u2", "u3", "u4", "u5", "u6"):
        seen = {_classify(server, "sticky", unit).headers["X-Experiment-Arm"] for _ in range(6)}
        assert len(seen) == 1, (unit, seen)
        arms[unit] = seen.pop()
    response = _classify(server, "sticky", "u1")
    body = response.json()
    assert body["experiment"] == {
        "name": "sticky",
        "arm": arms["u1"],
        "variant": body["variant"],
        "assignment": "unit",
    }
    assert body["variant"] == {"a": "pretrained", "b": "baseline"}[arms["u1"]]
    assert len(body["predictions"][0]["top_k"]) == 2
    assert response.headers["X-Request-ID"]


def test_exposures_and_feedback_reach_the_results(server: str) -> None:
    _create(server, "counted")
    x, y = mnist()
    ids, labels = [], []
    for i in range(40):
        r = _classify(server, "counted", f"user-{i % 20}", png(x[i]))
        assert r.status_code == 200
        ids.append(r.headers["X-Request-ID"])
        labels.append(int(y[i]))
    anonymous = _classify(server, "counted", None)
    assert anonymous.json()["experiment"]["assignment"] == "random"
    items = [{"request_id": r, "label": lab} for r, lab in zip(ids, labels, strict=True)]
    items.append({"request_id": anonymous.headers["X-Request-ID"], "outcome": 1.0})
    items.append({"request_id": "never-seen", "label": 1})
    stored = requests.post(f"{server}/v1/feedback", json={"items": items}, headers=FEEDBACK)
    assert stored.status_code == 200
    assert (stored.json()["stored"], stored.json()["unknown"]) == (41, 1)
    report = requests.get(f"{server}/v1/experiments/counted", headers=ADMIN).json()
    arms = {a["name"]: a for a in report["arms"]}
    assert sum(a["exposures"] for a in arms.values()) == 41
    assert sum(a["units"] for a in arms.values()) == 20
    assert sum(a["exposures_without_unit"] for a in arms.values()) == 1
    assert sum(a["labelled"] for a in arms.values()) == 40
    assert report["metric"] == "accuracy"
    assert "decision" in report["comparison"]
    metrics = requests.get(f"{server}/metrics").text
    # Requests are counted under the variant their arm ran, not the default one.
    assert arms["b"]["exposures"] > 0
    baseline = 'endpoint="/v1/models/<model>/classify",model="tiny",variant="baseline"'
    assert f"headstart_images_total{{{baseline}}}" in metrics
    assert (
        'headstart_experiment_exposures_total{arm="a",experiment="counted",role="served"}'
        in metrics
    )


def test_a_client_request_id_is_the_feedback_key(server: str) -> None:
    _create(server, "own-ids")
    r = _classify(server, "own-ids", "u", **{"X-Request-ID": "client-id-1"})
    assert r.headers["X-Request-ID"] == "client-id-1"
    again = _classify(server, "own-ids", "u", **{"X-Request-ID": "client-id-1"})
    assert again.status_code == 409
    assert "X-Request-ID" in again.json()["error"]["message"]


def test_unknown_stopped_and_mismatched_experiments_are_refused(server: str) -> None:
    missing = _classify(server, "nope", "u")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "experiment_not_found"
    _create(server, "halted")
    for _ in range(4):  # both workers have seen it running
        assert _classify(server, "halted", "u").status_code == 200
    requests.post(f"{server}/v1/experiments/halted/stop", headers=ADMIN)
    for _ in range(4):
        stopped = _classify(server, "halted", "u")
        assert stopped.status_code == 409
        assert stopped.json()["error"]["code"] == "experiment_stopped"
        assert "was stopped at" in stopped.json()["error"]["message"]
    report = requests.get(f"{server}/v1/experiments/halted", headers=ADMIN).json()
    assert sum(a["exposures"] for a in report["arms"]) == 4
    both = requests.post(
        f"{server}/v1/models/tiny/classify?experiment=sticky&variant=baseline",
        files={"image": ("d.png", _digit())},
    )
    assert both.status_code == 422
    two = requests.post(
        f"{server}/v1/models/tiny/classify?experiment=sticky",
        files=[("image", ("a.png", _digit(0))), ("image", ("b.png", _digit(1)))],
    )
    assert two.status_code == 422
    assert "exactly one image" in two.json()["error"]["message"]


def test_embed_is_routed_too(server: str) -> None:
    _create(server, "embedding")
    r = requests.post(
        f"{server}/v1/models/tiny/embed?experiment=embedding",
        files={"image": ("d.png", _digit())},
        headers={"X-Experiment-Unit": "u9"},
    )
    assert r.status_code == 200
    assert r.json()["experiment"]["arm"] == r.headers["X-Experiment-Arm"]
    assert len(r.json()["embeddings"]) == 1


def test_v2_infer_takes_the_experiment_in_parameters(server: str) -> None:
    _create(server, "v2-split")
    x, _ = mnist()
    body = {
        "parameters": {"experiment": "v2-split", "unit": "user-7"},
        "inputs": [
            {
                "name": "image",
                "datatype": "UINT8",
                "shape": [1, 1, 28, 28],
                "data": x[0].reshape(-1).tolist(),
            }
        ],
    }
    r = requests.post(f"{server}/v2/models/tiny-pretrained/infer", json=body)
    assert r.status_code == 200, r.text
    arm = r.headers["X-Experiment-Arm"]
    assert r.json()["parameters"]["experiment_arm"] == arm
    assert r.json()["model_name"] == {"a": "tiny-pretrained", "b": "tiny-baseline"}[arm]
    again = requests.post(f"{server}/v2/models/tiny-pretrained/infer", json=body)
    assert again.headers["X-Experiment-Arm"] == arm
    missing = requests.post(
        f"{server}/v2/models/tiny-pretrained/infer",
        json={**body, "parameters": {"experiment": "nope"}},
    )
    assert missing.status_code == 404
    assert "nope" in missing.json()["error"]


def test_shadow_mode_answers_with_the_control_and_records_the_challenger(server: str) -> None:
    _create(server, "shadowed", mode="shadow")
    x, y = mnist()
    ids = []
    for i in range(30):
        r = _classify(server, "shadowed", f"s{i}", png(x[i]))
        assert r.json()["experiment"]["arm"] == "a"
        ids.append((r.headers["X-Request-ID"], int(y[i])))
    requests.post(
        f"{server}/v1/feedback",
        json={"items": [{"request_id": r, "label": lab} for r, lab in ids]},
        headers=FEEDBACK,
    )
    deadline = time.monotonic() + 120  # a hang guard: the shadow queue takes what it takes
    while True:
        report = requests.get(f"{server}/v1/experiments/shadowed", headers=ADMIN).json()
        paired = report["comparison"]["paired"]
        if paired["pairs"] == 30 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert paired["pairs"] == 30
    assert 0.0 <= paired["agreement"] <= 1.0
    assert 0.0 <= paired["mean_divergence"] <= 1.0
    assert paired["labelled_pairs"] == 30
    assert report["arms"][1]["role"] == "shadow"
    assert report["arms"][1]["labelled"] == 30


def _workers_of(state_dir: str) -> list[int]:
    """gunicorn worker pids of the server whose state directory is ``state_dir`` (ours alone)."""
    found: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if f"HEADSTART_STATE_DIRECTORY={state_dir}".encode() in environ.split(b"\0"):
            found[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return [pid for pid, parent in found.items() if parent in found]


def _durability(tmp_path: Path, env: dict[str, str]) -> None:
    repo = write_repository(tmp_path / "repo")
    state = str(tmp_path / "state")
    env = {
        **TOKENS,
        "HEADSTART_WORKERS": "2",
        "HEADSTART_THREADS": "4",
        "HEADSTART_STATE_DIRECTORY": state,
        **env,
    }
    acknowledged: list[str] = []
    with running_server(repo, env) as url:
        _create(url, "durable")

        def send(i: int) -> str | None:
            try:
                r = _classify(url, "durable", f"unit-{i}")
            except requests.RequestException:
                return None  # the killed worker's connection: not acknowledged
            return r.headers["X-Request-ID"] if r.status_code == 200 else None

        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(send, i) for i in range(200)]
            time.sleep(0.3)
            workers = _workers_of(state)
            assert workers, "found no gunicorn worker of this server"
            os.kill(workers[0], signal.SIGKILL)
            acknowledged = [rid for f in futures if (rid := f.result()) is not None]
        assert len(acknowledged) > 100
    # A fresh server on the same database: every acknowledged exposure is there.
    with running_server(repo, env) as url:
        items = [{"request_id": rid, "label": 1} for rid in acknowledged]
        stored = requests.post(f"{url}/v1/feedback", json={"items": items}, headers=FEEDBACK)
        assert stored.json()["unknown"] == 0
        assert stored.json()["stored"] == len(acknowledged)
        report = requests.get(f"{url}/v1/experiments/durable", headers=ADMIN).json()
        assert sum(a["exposures"] for a in report["arms"]) >= len(acknowledged)
        assert sum(a["feedback"] for a in report["arms"]) == len(acknowledged)


def test_kill_9_and_a_restart_lose_nothing_acknowledged_sqlite(tmp_path: Path) -> None:
    _durability(tmp_path, {})


@pytest.mark.system
def test_kill_9_and_a_restart_lose_nothing_acknowledged_postgresql(tmp_path: Path) -> None:
    from tests.system.postgres import postgres_server

    with postgres_server() as database:
        _durability(tmp_path, {"HEADSTART_DATABASE_URL": database})


def test_a_ramp_reaches_every_worker_and_the_results_follow_it(server: str) -> None:
    from service.experiments.store import DEFINITION_TTL_S

    arms = [
        {"name": "a", "variant": "pretrained", "weight": 1},
        {"name": "b", "variant": "baseline", "weight": 1e-9},
    ]
    created = requests.post(
        f"{server}/v1/experiments",
        json={**_definition("ramped"), "arms": arms},
        headers=ADMIN,
    )
    assert created.status_code == 201, created.text
    before = {_classify(server, "ramped", f"u{i}").json()["experiment"]["arm"] for i in range(20)}
    assert before == {"a"}
    ramped = requests.patch(
        f"{server}/v1/experiments/ramped", json={"weights": {"a": 1e-9, "b": 1}}, headers=ADMIN
    )
    assert ramped.status_code == 200, ramped.text
    time.sleep(DEFINITION_TTL_S + 0.2)  # every worker's cached definition has expired
    after = {_classify(server, "ramped", f"u{i}").json()["experiment"]["arm"] for i in range(20)}
    assert after == {"b"}  # the same units, now in b: both workers use the new weights
    report = requests.get(f"{server}/v1/experiments/ramped", headers=ADMIN).json()
    assert [p["period"] for p in report["periods"]] == [0, 1]
    assert report["comparison"]["sample_ratio"]["expected"] == pytest.approx([20, 20], abs=1e-6)
    assert not report["comparison"]["sample_ratio"]["mismatch"]
    assert [a["action"] for a in report["actions"]] == ["create", "ramp"]
