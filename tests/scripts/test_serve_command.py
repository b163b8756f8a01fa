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
from tests.builders import write_repository
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


def _clean_env(**headstart: str) -> dict[str, str]:
    """This environment without its ``HEADSTART_*`` variables, plus ``headstart``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADSTART_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return {**env, **headstart}


def _gunicorn(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The canonical gunicorn command, expected to stop at once."""
    command = [sys.executable, "-m", "gunicorn", *GUNICORN_ARGS]
    return subprocess.run(
        command, check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("state", ["missing", "empty", "a file"])
def test_every_launch_path_refuses_a_repository_without_models_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], state: str
) -> None:
    root = tmp_path / "repo"
    if state == "empty":
        (root / ".hidden").mkdir(parents=True)
    elif state == "a file":
        root.write_text("not a directory")
    assert main(["serve", "--model-repository", str(root)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"headstart: error: model repository {root} ")
    assert "`headstart build`" in err
    assert err.count("\n") == 1
    # gunicorn started by hand (the container's command) says exactly the same and stops.
    done = _gunicorn(_clean_env(HEADSTART_MODEL_REPOSITORY=str(root), HEADSTART_PORT="0"))
    assert done.returncode == 1
    assert done.stderr == err
    assert "Listening at" not in done.stdout + done.stderr


def test_gunicorn_names_the_repository_it_was_not_given(tmp_path: Path) -> None:
    # No HEADSTART_MODEL_REPOSITORY: the default, relative to where gunicorn runs, in full.
    done = subprocess.run(
        [sys.executable, "-m", "gunicorn", *GUNICORN_ARGS],
        check=False,
        cwd=tmp_path,
        env=_clean_env(HEADSTART_PORT="0", PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.startswith(
        f"headstart: error: model repository {tmp_path / 'model_repository'} does not exist ("
    )


def test_every_launch_path_binds_loopback_unless_told(repository: Path) -> None:
    args = build_parser().parse_args(["serve", "--model-repository", str(repository)])
    env = serve_environment(resolve_settings(args), {})
    assert env["HEADSTART_HOST"] == "127.0.0.1"
    # The gunicorn configuration on its own, as the container's command reads it.
    done = subprocess.run(
        [sys.executable, "-c", "import service.gunicorn_conf as c; print(c.bind)"],
        check=True,
        cwd=ROOT,
        env=_clean_env(HEADSTART_MODEL_REPOSITORY=str(repository)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout == "127.0.0.1:8000\n"


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
        f"`make serve PORT={port + 2}` or `headstart serve --port {port + 2}`\n"
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
            HEADSTART_GRPC_PORT="0",  # not 8001, which another server may hold
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


def test_make_serve_on_a_busy_port_fails_with_one_line_from_headstart(tmp_path: Path) -> None:
    require("make", "make")
    write_repository(tmp_path / "repo", ("mnist",))  # so `build --if-missing` builds nothing
    env = _clean_env(HEADSTART_MODEL_REPOSITORY=str(tmp_path / "repo"))
    env = {k: v for k, v in env.items() if k not in ("HOST", "PORT", "MAKEFLAGS")}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # -o: take the installed environment as it is, whatever the stamps' times.
        stamps = ("-o", ".venv/.serve-installed", "-o", ".venv/.train-installed")
        make = ["make", "--no-print-directory", *stamps, "serve"]
        done = subprocess.run(
            [*make, f"PORT={port}", f"BIN={Path(sys.executable).parent}"],
            check=False,
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode != 0
    lines = done.stderr.splitlines()
    assert lines[0] == (
        f"headstart: error: port {port} on 127.0.0.1 is already in use; choose another with "
        f"`make serve PORT={port + 2}` or `headstart serve --port {port + 2}`"
    )
    assert len(lines) <= 2  # make's own "Error 75" line at most, no traceback


def test_make_serve_binds_loopback_and_takes_host_and_port() -> None:
    require("make", "make")
    assert _make_serve({}).endswith(" serve --host 127.0.0.1 --port 8000")
    honoured = _make_serve({"HEADSTART_HOST": "0.0.0.0", "HEADSTART_PORT": "9000"})
    assert honoured.endswith(" serve --host 0.0.0.0 --port 9000")
    chosen = _make_serve({"HEADSTART_PORT": "9000"}, "PORT=8123", "HOST=127.0.0.2")
    assert chosen.endswith(" serve --host 127.0.0.2 --port 8123")


def _make_serve_plan(repository: Path) -> list[str]:
    """Every command `make serve` would run from scratch (-B) for ``repository``."""
    env = {k: v for k, v in _clean_env().items() if k not in ("HOST", "PORT", "MAKEFLAGS")}
    done = subprocess.run(
        ["make", "-n", "-B", "--no-print-directory", "serve"],
        cwd=ROOT,
        env={**env, "HEADSTART_MODEL_REPOSITORY": str(repository)},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.splitlines()


def test_make_serve_installs_no_torch_and_trains_nothing_when_the_default_models_are_there(
    tmp_path: Path,
) -> None:
    require("make", "make")
    present = _make_serve_plan(write_repository(tmp_path / "repo", ("mnist",)))
    installs = [line for line in present if "pip install" in line]
    assert len(installs) == 1, installs
    assert installs[0].endswith(" -e ."), installs  # the base package: no extra
    assert not any("headstart build" in line or "train" in line for line in present), present
    assert present[-1].endswith(" serve --host 127.0.0.1 --port 8000")


def test_make_serve_builds_the_default_models_when_a_variant_is_missing(tmp_path: Path) -> None:
    require("make", "make")
    root = write_repository(tmp_path / "repo", ("mnist",))
    (root / "mnist" / "baseline" / "model.onnx").unlink()
    for repository in (root, tmp_path / "nowhere"):
        plan = _make_serve_plan(repository)
        assert any("pip install" in line and "-e '.[train]'" in line for line in plan), plan
        assert ".venv/bin/headstart build --if-missing" in plan
        assert plan[-1].endswith(" serve --host 127.0.0.1 --port 8000")


def test_http_and_grpc_on_one_port_is_one_line_error(
    repository: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEADSTART_GRPC_PORT", "8123")
    argv = ["serve", "--model-repository", str(repository), "--host", "127.0.0.1"]
    assert main([*argv, "--port", "8123"]) == 1
    assert capsys.readouterr().err == (
        "headstart: error: HTTP and gRPC cannot share port 8123: choose another gRPC port with "
        "HEADSTART_GRPC_PORT=8124, or leave it unset (the HTTP port plus one)\n"
    )
