"""The automatic policy in a real two-worker server: a challenger that wins on its labels is
promoted by the service itself, once, and becomes what every worker serves by default."""

from __future__ import annotations

import time
from pathlib import Path

import requests

from tests.builders import write_repository
from tests.http.balanced import balanced_units
from tests.images import mnist, png
from tests.server import running_server

ADMIN = {"Authorization": "Bearer p-admin"}
FEEDBACK = {"Authorization": "Bearer p-feedback"}
ENV = {
    "HEADSTART_WORKERS": "2",
    "HEADSTART_GRPC": "false",
    "HEADSTART_ADMIN_TOKEN": "p-admin",
    "HEADSTART_FEEDBACK_TOKEN": "p-feedback",
    "HEADSTART_POLICY_INTERVAL_SECONDS": "0.5",
}
REQUESTS = 300


def test_the_service_promotes_a_winning_challenger_by_itself(tmp_path: Path) -> None:
    repository = write_repository(tmp_path / "repo")
    database = f"sqlite:///{tmp_path / 'experiments.db'}"
    with running_server(repository, {**ENV, "HEADSTART_DATABASE_URL": database}) as url:
        arms = [{"name": "a", "variant": "pretrained"}, {"name": "b", "variant": "baseline"}]
        created = requests.post(
            f"{url}/v1/experiments",
            json={
                "name": "auto",
                "model": "tiny",
                "arms": arms,
                "guardrails": [{"metric": "latency", "margin": 0.5}],
                "policy": {"promote": True, "rollback": True},
            },
            headers=ADMIN,
            timeout=30,
        )
        assert created.status_code == 201, created.text
        assert created.json()["policy"] == {"promote": True, "rollback": True}
        image = png(mnist()[0][0])
        items = []
        for i, unit in enumerate(balanced_units(database, "auto", REQUESTS // 2)):
            answer = requests.post(
                f"{url}/v1/models/tiny/classify?experiment=auto",
                files={"image": ("d.png", image)},
                headers={"X-Experiment-Unit": unit},
                timeout=30,
            )
            assert answer.status_code == 200, answer.text
            arm = answer.json()["experiment"]["arm"]
            predicted = answer.json()["predictions"][0]["label"]
            # b is always right; a is right one time in two.
            right = arm == "b" or i % 2 == 0
            label = predicted if right else str((int(predicted) + 1) % 10)
            items.append({"request_id": answer.headers["X-Request-ID"], "label": label})
        stored = requests.post(
            f"{url}/v1/feedback", json={"items": items}, headers=FEEDBACK, timeout=60
        )
        assert stored.json()["stored"] == REQUESTS, stored.text
        deadline = time.monotonic() + 60  # a hang guard: the policy runs every half second
        while True:
            found = requests.get(f"{url}/v1/experiments/auto", headers=ADMIN, timeout=30).json()
            if found["status"] == "stopped" or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert found["status"] == "stopped", found["comparison"]["decision"]
        trail = [(a["action"], a["actor"]) for a in found["actions"]]
        assert trail == [("create", "admin"), ("promote", "policy")]
        promoted = found["actions"][-1]["detail"]
        assert promoted["arm"] == "b"
        assert promoted["decision"].startswith("arm b better than a")
        assert [g["breached"] for g in promoted["guardrails"]] == [False]
        # Every worker now serves the challenger when a request names no variant.
        time.sleep(1.5)  # each worker re-reads the default within a second
        for _ in range(20):
            plain = requests.post(
                f"{url}/v1/models/tiny/classify", files={"image": ("d.png", image)}, timeout=30
            )
            assert plain.json()["variant"] == "baseline"
        described = requests.get(f"{url}/v1/models/tiny", timeout=30).json()
        assert described["default_variant"] == "baseline"
