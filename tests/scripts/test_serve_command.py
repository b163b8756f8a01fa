"""``headstart serve`` turns its options into settings and execs the canonical gunicorn command."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from scripts.cli import build_parser, main
from scripts.commands.serve import PORT_IN_USE, resolve_settings, serve_environment
from service.server_command import GUNICORN_ARGS
from tests.server import ROOT, running_server
from tests.system import require

HEADSTART = str(Path(sys.executable).with_name("headstart"))


def test_canonical_gunicorn_arguments() -> None:
    assert GUNICORN_ARGS == ("--config", "python:service.gunicorn_conf", "service:create_app()")


def test_options_override_the_environment(
    repository: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEADSTART_WORKERS", "5")
    monkeypatch.setenv("HEADSTART_THREADS", "3")
    args = build_parser().parse_args(
        ["serve", "--model-repository", str(repository), "--port", "9001", "--workers", "1"]
    )
    env = serve_environment(resolve_settings(args), {"PATH": "/bin"})
    assert env["PATH"] == "/bin"
    assert env["HEADSTART_MODEL_REPOSITORY"] == str(repository.resolve())
    assert env["HEADSTART_PORT"] == "9001"
    assert env["HEADSTART_WORKERS"] == "1"
    assert env["HEADSTART_THREADS"] == "3"  # not given: the environment's value


def test_missing_repository_is_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["serve", "--model-repository", str(tmp_path / "nope")])
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("headstart: error: model repository ")
    assert "does not exist" in err
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--port", "70000"], "--port: Input should be less than or equal to 65535"),
        (["--workers", "0"], "--workers: Input should be greater than or equal to 1"),
    ],
)
def test_bad_option_is_one_line_error(
    repository: Path, capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    assert main(["serve", "--model-repository", str(repository), *argv]) == 1
    assert expected in capsys.readouterr().err


def test_bad_environment_names_the_variable(
    repository: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HEADSTART_THREADS", "many")
    assert main(["serve", "--model-repository", str(repository)]) == 1
    assert "HEADSTART_THREADS: Input should be a valid integer" in capsys.readouterr().err


def test_serve_runs_gunicorn_with_the_options(repository: Path, tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    command = [HEADSTART, "serve", "--model-repository", str(repository), "--workers", "1"]
    # The environment asks for 3 workers; the option must win.
    with (
        running_server(
            tmp_path / "ignored", {"HEADSTART_WORKERS": "3"}, log_path=log, command=command
        ) as url,
        urllib.request.urlopen(f"{url}/health/ready", timeout=5) as response,
    ):
        assert json.load(response) == {"status": "ready", "models": ["tiny"], "unavailable": []}
    text = log.read_text()
    assert text.count("Booting worker") == 1
    assert "Using worker: service.worker.ServiceWorker" in text


def test_a_busy_port_is_one_line_error(
    repository: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        argv = ["serve", "--model-repository", str(repository), "--host", "127.0.0.1"]
        code = main([*argv, "--port", str(port)])
    assert code == PORT_IN_USE
    err = capsys.readouterr().err
    assert err == (
        f"headstart: error: port {port} on 127.0.0.1 is already in use; choose another with "
        f"`make serve PORT={port + 1}` or `headstart serve --port {port + 1}`\n"
    )


def test_gunicorn_on_a_busy_port_leaves_no_metrics_folder(repository: Path, tmp_path: Path) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADSTART_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env.update(
            TMPDIR=str(scratch),
            HEADSTART_MODEL_REPOSITORY=str(repository),
            HEADSTART_HOST="127.0.0.1",
            HEADSTART_PORT=str(taken.getsockname()[1]),
        )
        gunicorn = [sys.executable, "-m", "gunicorn", *GUNICORN_ARGS]
        done = subprocess.run(
            gunicorn, check=False, env=env, capture_output=True, text=True, timeout=60
        )
    assert done.returncode != 0
    assert "Connection in use" in done.stderr
    assert list(scratch.iterdir()) == []


def _make_serve(env: dict[str, str], *args: str) -> str:
    """The command `make serve` would run, as make prints it without running anything."""
    clean = {k: v for k, v in os.environ.items() if k not in ("HOST", "PORT")}
    clean = {k: v for k, v in clean.items() if not k.startswith("HEADSTART_")}
    done = subprocess.run(
        ["make", "-n", "--no-print-directory", "serve", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return next(line for line in done.stdout.splitlines() if "headstart serve" in line)


def test_make_serve_binds_loopback_and_takes_host_and_port() -> None:
    require("make", "make")
    assert "serve --host 127.0.0.1 --port 8000 " in _make_serve({})
    honoured = _make_serve({"HEADSTART_HOST": "0.0.0.0", "HEADSTART_PORT": "9000"})
    assert "serve --host 0.0.0.0 --port 9000 " in honoured
    chosen = _make_serve({"HEADSTART_PORT": "9000"}, "PORT=8123", "HOST=127.0.0.2")
    assert "serve --host 127.0.0.2 --port 8123 " in chosen
