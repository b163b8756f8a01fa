"""The gRPC server's life inside gunicorn: every worker serves the one port the master holds,
a busy port stops the start in one line, and HEADSTART_GRPC=false leaves gRPC out."""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

import pytest

from service.grpc.port import DEFAULT_PORT, PORT_IN_USE, PortInUse, reserve, wanted_port
from service.settings import Settings
from tests.builders import write_repository
from tests.server import ServerFailed, grpc_address, running_server


def test_the_port_follows_the_http_port_unless_set() -> None:
    assert wanted_port(Settings(port=8000)) == DEFAULT_PORT
    assert wanted_port(Settings(port=8080)) == 8081
    assert wanted_port(Settings(port=65535)) == 0
    assert wanted_port(Settings(port=0)) == 0
    assert wanted_port(Settings(port=0, grpc_port=9001)) == 9001


def test_reserving_a_held_port_names_it_and_the_way_out() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(PortInUse, match=f"gRPC port {port} on 127.0.0.1 is already in use"):
            reserve(Settings(host="127.0.0.1", grpc_port=port))


def test_reserved_port_zero_is_one_free_port_the_workers_can_join(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HEADSTART_GRPC_PORT", raising=False)
    holder = reserve(Settings(host="127.0.0.1", port=0))
    try:
        port = holder.getsockname()[1]
        assert port != 0
        assert Settings().grpc_port == port  # the workers read it from the environment
        joiner = socket.socket()
        joiner.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        joiner.bind(("127.0.0.1", port))
        joiner.close()
    finally:
        holder.close()


def test_every_worker_serves_the_one_port(tmp_path: Path) -> None:
    repo = write_repository(tmp_path / "repo")
    log = tmp_path / "gunicorn.log"
    with running_server(repo, {"HEADSTART_WORKERS": "2"}, log_path=log):
        address = grpc_address(log)
        for _ in range(600):  # the second worker may still be importing grpc
            if len(re.findall(r"gRPC serving at (\S+)", log.read_text())) == 2:
                break
            time.sleep(0.1)
        assert re.findall(r"gRPC serving at (\S+)", log.read_text()) == [address, address]


def test_a_busy_grpc_port_stops_the_start_in_one_line(tmp_path: Path) -> None:
    repo = write_repository(tmp_path / "repo")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with (
            pytest.raises(ServerFailed) as failed,
            running_server(repo, {"HEADSTART_GRPC_PORT": str(port)}),
        ):
            pass
    message = str(failed.value)
    assert f"gunicorn exited with {PORT_IN_USE}" in message
    assert f"headstart: error: gRPC port {port} on 127.0.0.1 is already in use" in message
    assert "Traceback" not in message


def test_grpc_can_be_turned_off(tmp_path: Path) -> None:
    repo = write_repository(tmp_path / "repo")
    log = tmp_path / "gunicorn.log"
    with running_server(repo, {"HEADSTART_GRPC": "false"}, log_path=log):
        pass
    assert "gRPC" not in log.read_text()
