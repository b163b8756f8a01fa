"""The real image, built and run by podman from Debian's packages, on loopback.

The base image is made from Debian's packages (tests.deploy.base_image: no container
registry is reachable here) and passed as PYTHON_IMAGE; everything else is the
Dockerfile as a user builds it: once with the session's quick repository
(``tests/conftest.py``, MODEL_SOURCE=context), once training in the build (MODEL_SOURCE=build,
BUILD_OPTIONS=--quick). The containers use the host's network and bind
127.0.0.1 on a free port. Answers are compared with the service run from this
tree on the same repository. Run with ``-s`` to see the build and start times.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from service.settings import Settings
from tests.builders import write_repository
from tests.deploy import base_image
from tests.deploy.podman import Podman
from tests.deploy.probe import answers, hold_request, png, read_response, wait_ready
from tests.server import running_server
from tests.system import require

pytestmark = pytest.mark.system

RUNTIME_UID = 10001
REPOSITORY = "/srv/headstart/model_repository"
GRACEFUL_TIMEOUT = Settings.model_fields["graceful_timeout"].default
STOP_TIMEOUT = GRACEFUL_TIMEOUT + 5  # the README's --stop-timeout
TAG = "localhost/headstart-test"
WHEELHOUSE = Path(sys.prefix) / "wheelhouse"


@pytest.fixture(scope="module")
def podman() -> Podman:
    require("runc", "runc")
    require("debootstrap", "debootstrap")
    return Podman(require("podman", "podman"))


@pytest.fixture(scope="module")
def base(podman: Podman) -> str:
    began = time.monotonic()
    name = base_image.ensure(podman.program)
    print(f"\nbase image {name} ready in {time.monotonic() - began:.0f} s")
    return name


@pytest.fixture(scope="module")
def wheels() -> Path:
    if not any(WHEELHOUSE.glob("torch-*.whl")):
        pytest.fail(f"no torch wheel in {WHEELHOUSE}: run make test, whose install step fills it")
    return WHEELHOUSE


@pytest.fixture(scope="module")
def context_image(podman: Podman, base: str, wheels: Path, quick_repository: Path) -> str:
    tag = f"{TAG}:context"
    result, seconds = podman.build(
        tag,
        base,
        wheels,
        "--build-arg=MODEL_SOURCE=context",
        f"--build-context=model-repository={quick_repository}",
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    print(f"\nMODEL_SOURCE=context image built in {seconds:.0f} s, {podman.size(tag) / 1e6:.0f} MB")
    return tag


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Container:
    podman: Podman
    name: str
    port: int
    ready_seconds: float

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def started(podman: Podman) -> Iterator[list[str]]:
    """Names of the containers a test started, removed at the end."""
    names: list[str] = []
    yield names
    for name in names:
        podman.run("rm", "--force", "--ignore", name, check=False)


def _start(podman: Podman, started: list[str], name: str, image: str, *options: str) -> Container:
    port = _free_port()
    began = time.monotonic()
    podman.start(name, image, port, *options)
    started.append(name)
    url = f"http://127.0.0.1:{port}"
    try:
        ready = wait_ready(url, timeout=90)
    except OSError:
        pytest.fail(f"{name} never became ready:\n{podman.logs(name)}")
    assert ready["status"] == "ready", ready
    return Container(podman, name, port, time.monotonic() - began)


@pytest.fixture(scope="module")
def context_container(podman: Podman, context_image: str, started: list[str]) -> Container:
    container = _start(podman, started, "headstart-test-context", context_image)
    print(
        f"\nMODEL_SOURCE=context container ready {container.ready_seconds:.1f} s after podman run"
    )
    return container


def _classify(url: str, model: str, variant: str, body: bytes) -> dict[str, object]:
    request = urllib.request.Request(
        f"{url}/v1/models/{model}/classify?variant={variant}&invert=false&top_k=3",
        data=body,
        headers={"Content-Type": "image/png"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        answer: dict[str, object] = json.load(response)
    return answer


def _digit() -> bytes:
    pixels = np.zeros((28, 28), dtype=np.uint8)
    pixels[6:22, 12:16] = 255  # a "1", light on dark as MNIST draws it
    pixels[6:9, 9:13] = 255
    return png(pixels)


def _assert_serves_like_this_tree(container: Container, repository: Path) -> None:
    """Every variant answers a PNG as the service run from this tree does on ``repository``."""
    body = _digit()
    models = sorted(p.name for p in repository.iterdir() if p.is_dir())
    assert models, repository
    with running_server(repository) as reference:
        for model in models:
            for variant in ("pretrained", "baseline"):
                got = _classify(container.url, model, variant, body)
                want = _classify(reference, model, variant, body)
                assert got["variant"] == variant
                (prediction,) = got["predictions"]  # type: ignore[misc]
                (expected,) = want["predictions"]  # type: ignore[misc]
                assert prediction["label"] == expected["label"], (model, variant)
                assert prediction["probability"] == pytest.approx(expected["probability"], abs=1e-5)


def test_context_image_classifies_with_each_variant(
    context_container: Container, quick_repository: Path
) -> None:
    _assert_serves_like_this_tree(context_container, quick_repository)


def test_context_image_runs_as_its_user_without_torch(
    context_container: Container, podman: Podman
) -> None:
    assert podman.pid1_uid(context_container.name) == RUNTIME_UID
    torch = podman.run("exec", context_container.name, "python", "-c", "import torch", check=False)
    assert torch.returncode != 0
    assert "No module named 'torch'" in torch.stderr
    # Replicas share experiments through PostgreSQL, so the image carries its driver.
    podman.run("exec", context_container.name, "python", "-c", "import psycopg")
    log = podman.logs(context_container.name)
    assert "Traceback" not in log, log
    assert "telemetry" not in log.lower(), log  # ONNX Runtime's warning, with no HOME to write


def test_context_image_healthcheck_passes(context_container: Container, podman: Podman) -> None:
    result = podman.run("healthcheck", "run", context_container.name, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_podman_stop_drains_an_in_flight_request_and_exits_0(
    context_container: Container, podman: Podman, quick_repository: Path
) -> None:
    # Last of the tests on this container: it stops it.
    model = next(p.name for p in quick_repository.iterdir() if p.is_dir())
    target = f"/v1/models/{model}/classify?variant=pretrained&invert=false"
    body = _digit()
    sock = hold_request("127.0.0.1", context_container.port, target, body)
    began = time.monotonic()
    stop = subprocess.Popen(
        podman.command("stop", f"--time={STOP_TIMEOUT}", context_container.name),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # Bounded by podman's own timeout, after which it kills: a hang guard, not a speed limit.
    while answers("127.0.0.1", context_container.port, timeout=1.0):
        assert time.monotonic() - began < STOP_TIMEOUT, "still taking new requests when killed"
    sock.sendall(body)
    status, _, payload = read_response(sock)
    sock.close()
    assert status == 200, payload
    stop.wait(timeout=STOP_TIMEOUT + 10)
    seconds = time.monotonic() - began
    state = podman.run("inspect", "--format={{.State.ExitCode}}", context_container.name)
    # Drained, not killed: podman's kill after --time would exit 137, and the held request
    # above would have had no answer.
    assert state.stdout.strip() == "0", podman.logs(context_container.name)
    assert "Handling signal: term" in podman.logs(context_container.name)
    print(f"\npodman stop with a request in flight: exit 0 after {seconds:.1f} s")


def test_read_only_repository_of_another_owner_serves(
    podman: Podman, context_image: str, started: list[str], tmp_path: Path
) -> None:
    repository = write_repository(tmp_path / "mounted")
    for path in [repository, *repository.rglob("*")]:
        os.chown(path, 4242, 4242)
        path.chmod(0o755 if path.is_dir() else 0o644)
    container = _start(
        podman,
        started,
        "headstart-test-mounted",
        context_image,
        f"--volume={repository}:{REPOSITORY}:ro",
    )
    with urllib.request.urlopen(f"{container.url}/health/ready", timeout=5) as response:
        assert json.load(response)["models"] == ["tiny"]  # the mount, not the image's own
    assert podman.pid1_uid(container.name) == RUNTIME_UID
    _assert_serves_like_this_tree(container, repository)


def test_build_fails_on_a_repository_its_user_cannot_read(
    podman: Podman, base: str, wheels: Path, quick_repository: Path, tmp_path: Path
) -> None:
    # A variant folder as tempfile.mkdtemp leaves it: 0700, and root's in the image.
    repository = tmp_path / "model_repository"
    shutil.copytree(quick_repository, repository)
    private = next(repository.glob("*/pretrained"))
    private.chmod(0o700)
    result, _ = podman.build(
        f"{TAG}:unreadable",
        base,
        wheels,
        "--build-arg=MODEL_SOURCE=context",
        f"--build-context=model-repository={repository}",
    )
    assert result.returncode != 0
    relative = private.relative_to(repository)
    assert f"{relative}/manifest.json: cannot be read (Permission denied)" in result.stderr + (
        result.stdout
    )


@pytest.fixture(scope="module")
def trained_image(podman: Podman, base: str, wheels: Path) -> str:
    tag = f"{TAG}:build"
    result, seconds = podman.build(
        tag,
        base,
        wheels,
        "--build-arg=MODEL_SOURCE=build",
        "--build-arg=BUILD_OPTIONS=--quick --device cpu",
        timeout=1200,
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    print(f"\nMODEL_SOURCE=build image built in {seconds:.0f} s, {podman.size(tag) / 1e6:.0f} MB")
    return tag


def test_image_trained_in_the_build_serves_each_variant(
    podman: Podman, trained_image: str, started: list[str], tmp_path: Path
) -> None:
    container = _start(podman, started, "headstart-test-build", trained_image)
    assert podman.pid1_uid(container.name) == RUNTIME_UID
    podman.run("cp", f"{container.name}:{REPOSITORY}", str(tmp_path / "trained"))
    _assert_serves_like_this_tree(container, tmp_path / "trained")


COMMITTED = Path(__file__).resolve().parents[2] / "model_repository"


@pytest.fixture(scope="module")
def default_image(podman: Podman, base: str, wheels: Path) -> str:
    """The image as ``podman build .`` makes it: the committed default models, no training."""
    tag = f"{TAG}:default"
    result, seconds = podman.build(tag, base, wheels)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    print(f"\ndefault (MODEL_SOURCE=committed) image built in {seconds:.0f} s")
    return tag


def test_the_default_image_serves_the_committed_models_and_holds_no_torch(
    podman: Podman, default_image: str, started: list[str]
) -> None:
    container = _start(podman, started, "headstart-test-default", default_image)
    with urllib.request.urlopen(f"{container.url}/v1/models", timeout=10) as response:
        served = {
            (m["name"], v["variant"]): v["onnx_sha256"]
            for m in json.load(response)["models"]
            for v in m["variants"]
        }
    committed = {
        (p.parent.name, p.name): json.loads((p / "manifest.json").read_text())["onnx_sha256"]
        for p in COMMITTED.glob("*/*")
        if (p / "manifest.json").is_file()
    }
    assert served == committed
    _assert_serves_like_this_tree(container, COMMITTED)
    probe = podman.run("exec", container.name, "python", "-c", "import torch", check=False)
    assert probe.returncode != 0
    assert "No module named 'torch'" in probe.stderr
