"""Numbered versions of a variant: how the repository holds them, which one serves by
default, how each protocol asks for one, and how an experiment compares and promotes them."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from flask.testing import FlaskClient

from service.repository import DEFAULT_VERSION_FILE, scan_repository
from service.runtime import ModelStore
from tests.builders import admin_client, write_variant
from tests.images import png

TOKEN = "versions-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
IMAGE = png(np.eye(28, dtype=np.uint8) * 255)


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    """tiny/pretrained in versions 1 and 2 (different weights), tiny/baseline flat."""
    root = tmp_path / "repo"
    write_variant(root, "tiny", "pretrained", version="1", seed=0)
    write_variant(root, "tiny", "pretrained", version="2", seed=5)
    write_variant(root, "tiny", "baseline")
    return root


@pytest.fixture
def client(repository: Path, tmp_path: Path) -> FlaskClient:
    return admin_client(repository, tmp_path, TOKEN)


def _classify(client: FlaskClient, query: str = "") -> tuple[int, dict[str, object]]:
    response = client.post(
        f"/v1/models/tiny/classify{query}", data=IMAGE, headers={"Content-Type": "image/png"}
    )
    return response.status_code, response.get_json()


# --- the repository ---------------------------------------------------------------------------


def test_numbered_versions_are_listed_and_the_highest_is_the_default(repository: Path) -> None:
    listing = scan_repository(repository)
    assert listing.problems == []
    versions = sorted((e.variant, e.version) for e in listing.entries)
    assert versions == [("baseline", "1"), ("pretrained", "1"), ("pretrained", "2")]
    assert listing.defaults == {("tiny", "pretrained"): "2", ("tiny", "baseline"): "1"}
    assert listing.models()["tiny"]["pretrained"].version == "2"


def test_the_default_version_file_names_the_default(repository: Path) -> None:
    (repository / "tiny" / "pretrained" / DEFAULT_VERSION_FILE).write_text("1\n")
    assert scan_repository(repository).defaults[("tiny", "pretrained")] == "1"


def test_a_default_that_is_not_there_is_reported_and_the_highest_serves(
    repository: Path,
) -> None:
    (repository / "tiny" / "pretrained" / DEFAULT_VERSION_FILE).write_text("7\n")
    listing = scan_repository(repository)
    assert listing.defaults[("tiny", "pretrained")] == "2"
    (problem,) = listing.problems
    assert problem.path.name == DEFAULT_VERSION_FILE
    assert "names version '7'" in problem.reason


def test_versions_ordered_by_number_not_by_text(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    for version in ("2", "10"):
        write_variant(root, "tiny", "pretrained", version=version)
    assert scan_repository(root).defaults[("tiny", "pretrained")] == "10"


def test_a_version_folder_that_describes_another_version_is_refused(repository: Path) -> None:
    shutil.copytree(
        repository / "tiny" / "pretrained" / "2", repository / "tiny" / "pretrained" / "3"
    )
    (repository / "tiny" / "pretrained" / "notes").mkdir()
    listing = scan_repository(repository)
    reasons = {"/".join(p.path.relative_to(repository).parts): p.reason for p in listing.problems}
    assert reasons == {
        "tiny/pretrained/3/manifest.json": "describes version 2 but lies in folder 3",
        "tiny/pretrained/notes": "not a version folder (versions are numbered 1, 2, ...)",
    }
    assert listing.defaults[("tiny", "pretrained")] == "2"


# --- the store --------------------------------------------------------------------------------


def test_the_store_serves_every_version_and_the_default_when_none_is_named(
    repository: Path,
) -> None:
    store = ModelStore.load(repository)
    assert list(store.variant_versions("tiny", "pretrained")) == ["1", "2"]
    assert store.variant("tiny", "pretrained").manifest.version == "2"
    assert store.variant("tiny", "pretrained", "1").manifest.version == "1"
    from service.errors import VariantNotFound

    with pytest.raises(VariantNotFound, match=r"has no version '3' \(loaded: 1, 2\)"):
        store.variant("tiny", "pretrained", "3")


def test_a_load_with_one_broken_version_changes_nothing(repository: Path) -> None:
    from service.errors import LoadFailed

    store = ModelStore.load(repository)
    before = store.variant_versions("tiny", "pretrained")
    broken = write_variant(repository, "tiny", "pretrained", version="3", seed=9)
    (broken / "model.onnx").write_bytes(b"not onnx")
    with pytest.raises(LoadFailed, match=r"tiny/pretrained/3/model\.onnx: sha256"):
        store.load_variant("tiny", "pretrained")
    assert store.variant_versions("tiny", "pretrained") == before
    assert "tiny/pretrained/3/model.onnx" in store.load_failures[("tiny", "pretrained")]


def test_a_load_keeps_the_sessions_of_versions_that_did_not_change(repository: Path) -> None:
    store = ModelStore.load(repository)
    first = store.variant("tiny", "pretrained", "1")
    write_variant(repository, "tiny", "pretrained", version="3", seed=7)
    store.load_variant("tiny", "pretrained")
    assert store.variant("tiny", "pretrained", "1") is first
    assert store.variant("tiny", "pretrained").manifest.version == "3"


# --- the protocols ----------------------------------------------------------------------------


def test_v1_serves_the_version_asked_for_and_says_which_answered(client: FlaskClient) -> None:
    status, default = _classify(client)
    assert status == 200
    assert default["version"] == "2"
    status, one = _classify(client, "?version=1")
    assert status == 200
    assert one["version"] == "1"
    assert one["predictions"] != default["predictions"]  # two different models answered
    status, missing = _classify(client, "?version=9")
    assert status == 404
    assert missing["error"]["message"] == (  # type: ignore[index]
        "variant 'pretrained' of model 'tiny' has no version '9' (loaded: 1, 2)"
    )


def test_the_model_description_lists_every_version(client: FlaskClient) -> None:
    described = client.get("/v1/models/tiny").get_json()
    versions = {v["variant"]: (v["version"], v["versions"]) for v in described["variants"]}
    assert versions == {"pretrained": ("2", ["1", "2"]), "baseline": ("1", ["1"])}


def test_v2_serves_any_loaded_version_and_lists_them(client: FlaskClient) -> None:
    pixels = np.eye(28, dtype=np.uint8).reshape(-1).tolist()
    body = {"inputs": [{"name": "image", "datatype": "UINT8", "shape": [1, 1, 28, 28]}]}
    body["inputs"][0]["data"] = pixels  # type: ignore[index]
    outputs = {}
    for version in ("1", "2"):
        answer = client.post(f"/v2/models/tiny-pretrained/versions/{version}/infer", json=body)
        assert answer.status_code == 200, answer.get_json()
        assert answer.get_json()["model_version"] == version
        outputs[version] = answer.get_json()["outputs"][0]["data"]
    assert outputs["1"] != outputs["2"]
    assert client.post("/v2/models/tiny-pretrained/versions/4/infer", json=body).status_code == 404
    metadata = client.get("/v2/models/tiny-pretrained").get_json()
    assert metadata["versions"] == ["1", "2"]
    index = client.post("/v2/repository/index", json={}).get_json()
    assert [(e["name"], e["version"]) for e in index] == [
        ("tiny-baseline", "1"),
        ("tiny-pretrained", "1"),
        ("tiny-pretrained", "2"),
    ]


def test_a_new_version_loaded_while_serving_is_served_by_number(
    client: FlaskClient, repository: Path
) -> None:
    (repository / "tiny" / "pretrained" / DEFAULT_VERSION_FILE).write_text("2\n")
    write_variant(repository, "tiny", "pretrained", version="3", seed=11)
    assert _classify(client, "?version=3")[0] == 404  # not loaded yet
    loaded = client.post("/v2/repository/models/tiny-pretrained/load", headers=ADMIN)
    assert loaded.status_code == 200, loaded.get_json()
    assert _classify(client, "?version=3")[1]["version"] == "3"
    assert _classify(client)[1]["version"] == "2"  # the marked default still serves


# --- experiments between versions -------------------------------------------------------------


def _experiment(client: FlaskClient, versions: tuple[str, str]) -> dict[str, object]:
    arms = [{"name": f"v{v}", "variant": "pretrained", "version": v} for v in versions]
    created = client.post(
        "/v1/experiments",
        json={"name": "v1-vs-v2", "model": "tiny", "arms": arms},
        headers=ADMIN,
    )
    return {"http": created.status_code, **created.get_json()}


def test_an_experiment_routes_each_arm_to_its_version(client: FlaskClient) -> None:
    created = _experiment(client, ("1", "2"))
    assert created["http"] == 201, created
    assert [a["version"] for a in created["arms"]] == ["1", "2"]  # type: ignore[index]
    seen = {}
    for unit in range(40):
        response = client.post(
            "/v1/models/tiny/classify?experiment=v1-vs-v2",
            data=IMAGE,
            headers={"Content-Type": "image/png", "X-Experiment-Unit": f"u{unit}"},
        )
        assert response.status_code == 200, response.get_json()
        answer = response.get_json()
        seen[answer["experiment"]["arm"]] = answer["version"]
    assert seen == {"v1": "1", "v2": "2"}


def test_a_routed_request_may_not_choose_its_version(client: FlaskClient) -> None:
    assert _experiment(client, ("1", "2"))["http"] == 201
    response = client.post(
        "/v1/models/tiny/classify?experiment=v1-vs-v2&version=1",
        data=IMAGE,
        headers={"Content-Type": "image/png", "X-Experiment-Unit": "u1"},
    )
    assert response.status_code == 422
    assert response.get_json()["error"]["field"] == "version"


def test_an_arm_of_a_version_that_is_not_loaded_is_refused(client: FlaskClient) -> None:
    created = _experiment(client, ("1", "5"))
    assert created["http"] == 422
    assert created["error"]["field"] == "arms.1.version"  # type: ignore[index]
    assert "has no version '5'" in created["error"]["message"]  # type: ignore[index]


def test_promoting_a_version_makes_it_the_default(
    client: FlaskClient, repository: Path, tmp_path: Path
) -> None:
    from service.experiments.attach import experiment_store

    (repository / "tiny" / "pretrained" / DEFAULT_VERSION_FILE).write_text("1\n")
    client = admin_client(repository, tmp_path, TOKEN)
    assert _classify(client)[1]["version"] == "1"
    assert _experiment(client, ("1", "2"))["http"] == 201
    with client.application.app_context():
        experiment_store().promote("v1-vs-v2", "v2", {"decision": "told"})
    status, answer = _classify(client)
    assert (status, answer["version"], answer["variant"]) == (200, "2", "pretrained")
    assert _classify(client, "?variant=pretrained")[1]["version"] == "2"
    assert _classify(client, "?version=1")[1]["version"] == "1"
    trail = client.get("/v1/experiments/v1-vs-v2", headers=ADMIN).get_json()["actions"]
    assert trail[-1]["detail"]["version"] == "2"
    # A default named in the repository after the promotion is the latest word, and holds.
    write_variant(repository, "tiny", "pretrained", version="3", seed=7)
    (repository / "tiny" / "pretrained" / DEFAULT_VERSION_FILE).write_text("3\n")
    assert (
        client.post("/v2/repository/models/tiny-pretrained/load", headers=ADMIN).status_code == 200
    )
    assert _classify(client)[1]["version"] == "3"


def test_a_version_that_fails_its_requests_is_rolled_back_by_the_errors_guardrail(
    client: FlaskClient, repository: Path
) -> None:
    from service.experiments import policy
    from service.experiments.attach import experiment_store

    arms = [
        {"name": "v1", "variant": "pretrained", "version": "1"},
        {"name": "v2", "variant": "pretrained", "version": "2"},
    ]
    created = client.post(
        "/v1/experiments",
        json={
            "name": "flaky",
            "model": "tiny",
            "arms": arms,
            "guardrails": [{"metric": "errors"}],
            "policy": {"promote": True, "rollback": True},
        },
        headers=ADMIN,
    )
    assert created.status_code == 201, created.get_json()
    # Version 2 leaves the repository and the load drops it: its arm's requests now fail.
    shutil.rmtree(repository / "tiny" / "pretrained" / "2")
    assert (
        client.post("/v2/repository/models/tiny-pretrained/load", headers=ADMIN).status_code == 200
    )
    statuses: dict[str, set[int]] = {}
    for unit in range(300):
        response = client.post(
            "/v1/models/tiny/classify?experiment=flaky",
            data=IMAGE,
            headers={"Content-Type": "image/png", "X-Experiment-Unit": f"u{unit}"},
        )
        arm = response.headers.get("X-Experiment-Arm") or "v2"
        statuses.setdefault(arm, set()).add(response.status_code)
    assert statuses == {"v1": {200}, "v2": {404}}
    # V2's routed requests are recorded the same way.
    pixels = [0] * 28 * 28
    for unit in range(300, 340):
        body = {
            "inputs": [{"name": "image", "datatype": "UINT8", "shape": [1, 1, 28, 28]}],
            "parameters": {"experiment": "flaky", "unit": f"u{unit}"},
        }
        body["inputs"][0]["data"] = pixels  # type: ignore[index]
        client.post("/v2/models/tiny-pretrained/infer", json=body)
    with client.application.app_context():
        store = experiment_store()
        experiment = store.get("flaky")
        assert experiment is not None
        routed = store.routed(experiment.id)
        assert len(routed) == 340  # every routed request, v1 and V2 alike, is accounted for
        assert {(r.arm, r.failed) for r in routed} == {("v1", False), ("v2", True)}
        assert policy.Runner(lambda: store, interval=60).tick() == [("flaky", "rollback")]
    found = client.get("/v1/experiments/flaky", headers=ADMIN).get_json()
    (check,) = found["comparison"]["guardrails"]
    assert (check["metric"], check["breached"]) == ("errors", True)
    assert found["actions"][-1]["action"] == "rollback"
    assert found["actions"][-1]["detail"]["version"] == "1"
    assert _classify(client)[1]["version"] == "1"


def test_the_poll_serves_a_new_version_and_a_new_default_and_keeps_a_renumbered_variant(
    tmp_path: Path,
) -> None:
    from service.live_repository import ActionLog, Watcher

    root = tmp_path / "repo"
    write_variant(root, "tiny", "pretrained", seed=0)  # flat: version 1
    write_variant(root, "tiny", "baseline")
    watcher = Watcher(ModelStore.load(root), ActionLog(None), poll_seconds=60)
    watcher.poll()
    store = watcher.store
    # As a build adds version 2: version 1 moves into 1/, the marker keeps it the default.
    variant_dir = root / "tiny" / "pretrained"
    shutil.copytree(variant_dir, tmp_path / "one")
    shutil.rmtree(variant_dir)
    shutil.copytree(tmp_path / "one", variant_dir / "1")
    write_variant(root, "tiny", "pretrained", version="2", seed=5)
    (variant_dir / DEFAULT_VERSION_FILE).write_text("1\n")
    watcher.poll()
    assert list(store.variant_versions("tiny", "pretrained")) == ["1", "2"]
    assert store.variant("tiny", "pretrained").manifest.version == "1"
    (variant_dir / DEFAULT_VERSION_FILE).write_text("2\n")
    watcher.poll()
    assert store.variant("tiny", "pretrained").manifest.version == "2"
