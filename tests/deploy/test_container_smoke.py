"""The image's runtime stage, reproduced outside Docker, serves and drains like the container.

No Docker engine runs on the test machines, so ``tests.deploy.without_docker``
carries out the Dockerfile's own instructions for the runtime stage and the
stages it copies from, under a temporary root: the ``serve-env`` stage builds a
fresh virtual environment with only the base dependencies, the runtime stage's
build check runs, and its exact CMD starts with its ENV. What differs from the
image: absolute paths sit under the temporary root, the server binds loopback on
a free port, pip installs from the wheelhouse that make test's install step
fills (no package index), a tiny real model repository stands
in for the trained one, and the Python is this machine's, not the base image's.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from tests.deploy import dockerfile
from tests.deploy.probe import answers, hold_request, png, read_response, wait_ready
from tests.deploy.without_docker import Builder, here, stage_named

_LISTENING = re.compile(r"Listening at: http://([\d.]+):(\d+)")


@dataclass(frozen=True)
class ImageTree:
    """The runtime stage's files under ``root``, and how to run its command."""

    root: Path
    workdir: Path
    env: dict[str, str]
    command: list[str]
    install_seconds: float

    def path(self, image_path: str) -> Path:
        """Where an absolute path of the image lies here."""
        return self.root / image_path.lstrip("/")


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> ImageTree:
    """Build the runtime stage's files by following the Dockerfile's instructions."""
    wheelhouse = Path(sys.prefix) / "wheelhouse"
    if not any(wheelhouse.glob("*.whl")):
        pytest.fail(f"no wheels in {wheelhouse}: run make test, whose install step fills it")
    builder = Builder(tmp_path_factory.mktemp("image"))
    # Tests reach no package index: pip installs from the wheels of make test's install step.
    builder.base_env.update(PIP_NO_INDEX="1", PIP_FIND_LINKS=str(wheelhouse))
    started = time.monotonic()
    builder.build("serve-env")
    install_seconds = time.monotonic() - started
    workdir, env = builder.build(dockerfile.stages()[-1].name or "")
    assert (builder.root / "src" / "service" / "app.py").is_file()

    command = dockerfile.exec_form(stage_named("runtime").last("CMD"))
    program = shutil.which(command[0], path=env["PATH"])
    assert program == str(builder.root / "opt/venv/bin" / command[0]), program
    return ImageTree(builder.root, workdir, env, [program, *command[1:]], install_seconds)


def test_fresh_environment_has_base_dependencies_only(image: ImageTree) -> None:
    python = str(image.path("/opt/venv/bin/python"))
    torch = subprocess.run(
        [python, "-c", "import torch"], capture_output=True, text=True, env=image.env, check=False
    )
    assert torch.returncode != 0
    assert "No module named 'torch'" in torch.stderr
    probe = "import service, onnxruntime; print(service.__file__)"
    located = subprocess.run(
        [python, "-c", probe], capture_output=True, text=True, env=image.env, cwd="/", check=True
    )
    # The installed wheel, not the source tree, is what runs.
    assert located.stdout.strip().startswith(str(image.path("/opt/venv")))
    print(f"serve-env install took {image.install_seconds:.1f}s")


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    host: str
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def read_log(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


@pytest.fixture
def server(image: ImageTree) -> Iterator[Server]:
    """The image's CMD with the image's ENV, on a free loopback port."""
    env = {**image.env, "HEADSTART_HOST": "127.0.0.1", "HEADSTART_PORT": "0"}
    log = image.root / "gunicorn.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            image.command, cwd=image.workdir, env=env, stdout=sink, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 60
        match = None
        while match is None:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"no 'Listening at' line:\n{log.read_text()}"
            match = _LISTENING.search(log.read_text())
            time.sleep(0.05)
        yield Server(process, match.group(1), int(match.group(2)), log)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def _expected_label(image: ImageTree, pixels: np.ndarray) -> str:
    """The class the pre-trained variant's ONNX graph gives these pixels, run here directly."""
    variant = image.path("/srv/headstart/model_repository") / "tiny" / "pretrained"
    session = ort.InferenceSession(str(variant / "model.onnx"), providers=["CPUExecutionProvider"])
    (probabilities,) = session.run(["probabilities"], {"image": pixels[None, None]})
    names = json.loads((variant / "manifest.json").read_text())["class_names"]
    return str(names[int(np.argmax(probabilities[0]))])


def _healthcheck(image: ImageTree, port: int) -> subprocess.CompletedProcess[str]:
    """The image's HEALTHCHECK command, run as the container would run it."""
    check = stage_named("runtime").last("HEALTHCHECK")
    command = dockerfile.exec_form(check[check.index("CMD") + 3 :].strip())
    program = shutil.which(command[0], path=image.env["PATH"])
    assert program is not None
    args = [program, *(here(arg, image.root) for arg in command[1:])]
    env = {**image.env, "HEADSTART_PORT": str(port)}
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=10, check=False)


def test_image_command_serves_classifies_and_drains_on_sigterm(
    image: ImageTree, server: Server
) -> None:
    ready = wait_ready(server.url)
    assert ready["status"] == "ready", ready
    assert _healthcheck(image, server.port).returncode == 0

    pixels = np.random.default_rng(7).integers(0, 256, (28, 28), dtype=np.uint8)
    body = png(pixels)
    target = "/v1/models/tiny/classify?variant=pretrained&invert=false"
    request = urllib.request.Request(
        server.url + target, data=body, headers={"Content-Type": "image/png"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        answer = json.load(response)
    assert answer["predictions"][0]["label"] == _expected_label(image, pixels)

    # The wheel carried its package data, and the metrics work from the image's layout.
    for page in ("/", "/docs"):
        with urllib.request.urlopen(server.url + page, timeout=10) as response:
            assert response.headers.get_content_type() == "text/html", page
    with urllib.request.urlopen(server.url + "/metrics", timeout=10) as response:
        exposition = response.read().decode()
    counted = re.findall(r"^headstart_images_total\{[^}]*\} (\S+)$", exposition, re.MULTILINE)
    assert sum(float(value) for value in counted) >= 1, exposition

    # A request in flight, its body held back until the server is shutting down.
    sock = hold_request(server.host, server.port, target, body)

    server.process.send_signal(signal.SIGTERM)
    # A hang guard, not a speed limit: twice gunicorn's default graceful timeout.
    deadline = time.monotonic() + 60
    while answers(server.host, server.port, timeout=1.0):
        assert time.monotonic() < deadline, "still taking new requests 60 s after SIGTERM"
    assert server.process.poll() is None, "exited with a request in flight"

    sock.sendall(body)
    status, _, payload = read_response(sock)
    sock.close()
    assert status == 200, payload
    assert json.loads(payload)["predictions"][0]["label"] == _expected_label(image, pixels)

    assert server.process.wait(timeout=30) == 0, server.read_log()
    assert "Handling signal: term" in server.read_log()
    failed = _healthcheck(image, server.port)
    assert failed.returncode == 1
    assert "healthcheck:" in failed.stderr
