"""``headstart bench --grpc``: gRPC against V2 REST binary on one real server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import loadgen
from benchmarks.servers import Server, environment, running
from scripts.cli import main
from service.server_command import serve_command


def test_bench_grpc_measures_both_protocols_at_each_concurrency(
    repository: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "grpc.json"
    argv = ["bench", "--grpc", "--model-repository", str(repository), "--duration", "0.3"]
    code = main([*argv, "--rounds", "1", "--concurrency", "1,2", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    report = json.loads(out.read_text())
    assert [r["concurrency"] for r in report["results"]] == [1, 2]
    for row in report["results"]:
        for protocol in ("grpc", "rest_binary"):
            assert row[protocol]["requests"] > 0, row
            assert row[protocol]["failures"] == 0, row
    assert "gRPC / REST binary throughput at c=2" in printed
    assert set(report["server_mean_ms"]) == {"grpc", "rest_binary"}


def test_grpc_client_counts_failed_calls(repository: Path, tmp_path: Path) -> None:
    env = environment(
        {
            "HEADSTART_MODEL_REPOSITORY": str(repository),
            "HEADSTART_HOST": "127.0.0.1",
            "HEADSTART_PORT": "0",
            "HEADSTART_WORKERS": "1",
        }
    )
    with running({"headstart": Server(serve_command(), env, "/health/ready")}, tmp_path):
        from benchmarks.grpc_bench import grpc_address

        address = grpc_address(tmp_path / "headstart.log")
        result = loadgen.run_grpc(address, b"\xff not a request", concurrency=1, duration=0.3)
    assert result.requests > 0
    assert result.failures == result.requests
