"""``headstart experiments``: the admin commands against a real gunicorn, and the simulation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.cli import main
from tests.server import running_server

TOKEN = "cli-admin-token"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from tests.builders import write_repository

    repo = write_repository(tmp_path_factory.mktemp("cli-repo"))
    with running_server(repo, {"HEADSTART_ADMIN_TOKEN": TOKEN}) as url:
        yield url


@pytest.fixture
def admin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADSTART_ADMIN_TOKEN", TOKEN)


@pytest.mark.usefixtures("admin")
def test_create_list_show_stop(server: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "experiments",
            "create",
            "cli-ab",
            "--model",
            "tiny",
            "--arm",
            "a=pretrained",
            "--arm",
            "b=baseline:3",
            "--mde",
            "0.02",
            "--url",
            server,
        ]
    )
    assert code == 0
    assert "created cli-ab on tiny (split): a=pretrained:1, b=baseline:3" in capsys.readouterr().out
    assert main(["experiments", "list", "--url", server]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[0].split() == ["NAME", "MODEL", "MODE", "STATUS", "ARMS"]
    assert listing[1].split()[:4] == ["cli-ab", "tiny", "split", "running"]
    assert main(["experiments", "show", "cli-ab", "--url", server]) == 0
    shown = capsys.readouterr().out
    assert "b - a: not enough feedback yet" in shown
    assert "decision: still collecting" in shown
    assert main(["experiments", "show", "cli-ab", "--json", "--url", server]) == 0
    assert json.loads(capsys.readouterr().out)["minimum_detectable_effect"] == 0.02
    assert main(["experiments", "promote", "cli-ab", "--url", server]) == 1
    assert "has no winner to promote: still collecting" in capsys.readouterr().err
    ramp = ["experiments", "ramp", "cli-ab", "--weight", "a=1", "--weight", "b=1"]
    assert main([*ramp, "--url", server]) == 0
    assert capsys.readouterr().out == "ramped cli-ab (period 1): a=1, b=1\n"
    assert main(["experiments", "stop", "cli-ab", "--url", server]) == 0
    assert capsys.readouterr().out == "stopped cli-ab\n"
    assert main(["experiments", "show", "cli-ab", "--url", server]) == 0
    trail = [
        line.split("  ", 1)[1] for line in capsys.readouterr().out.splitlines() if " UTC  " in line
    ]
    assert [line.split(":")[0] for line in trail] == [
        "create by admin",
        "ramp by admin",
        "stop by admin",
    ]


@pytest.mark.usefixtures("admin")
def test_guardrails_and_the_policy_from_the_command_line(
    server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    create = ["experiments", "create", "cli-rails", "--model", "tiny", "--url", server]
    arms = ["--arm", "a=pretrained", "--arm", "b=baseline"]
    rails = ["--guardrail", "latency:0.1", "--guardrail", "outcome", "--auto", "rollback"]
    assert main([*create, *arms, *rails]) == 0
    capsys.readouterr()
    assert main(["experiments", "show", "cli-rails", "--json", "--url", server]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["guardrails"] == [
        {"metric": "latency", "margin": 0.1},
        {"metric": "outcome", "margin": 0.0},
    ]
    assert shown["policy"] == {"promote": False, "rollback": True}
    assert main(["experiments", "show", "cli-rails", "--url", server]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "guardrail latency (b, margin 0.1): not enough requests yet" in lines
    bad = ["experiments", "create", "cli-bad", "--model", "tiny", "--url", server, *arms]
    assert main([*bad, "--guardrail", "latency:x"]) == 2
    assert "--guardrail latency:x: the margin 'x' is not a number" in capsys.readouterr().err
    assert main([*bad, "--guardrail", "speed"]) == 1
    assert "guardrails.0.metric" in capsys.readouterr().err


@pytest.mark.usefixtures("admin")
def test_server_errors_are_one_line(server: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["experiments", "show", "missing", "--url", server]) == 1
    err = capsys.readouterr().err
    assert err.startswith("headstart: error: GET /v1/experiments/missing: HTTP 404: no experiment")
    code = main(
        [
            "experiments",
            "create",
            "x",
            "--model",
            "tiny",
            "--arm",
            "a=pretrained",
            "--arm",
            "b=nope",
            "--url",
            server,
        ]
    )
    assert code == 1
    assert "arms.1.variant" in capsys.readouterr().err


def test_a_wrong_token_and_no_token(
    server: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HEADSTART_ADMIN_TOKEN", raising=False)
    assert main(["experiments", "list", "--url", server]) == 2
    assert "HEADSTART_ADMIN_TOKEN" in capsys.readouterr().err
    assert main(["experiments", "list", "--url", server, "--token", "wrong"]) == 1
    assert "HTTP 401" in capsys.readouterr().err


@pytest.mark.usefixtures("admin")
@pytest.mark.parametrize("arm", ["a", "=pretrained", "a=pretrained:x"])
def test_bad_arms_are_usage_errors(arm: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "experiments",
            "create",
            "x",
            "--model",
            "m",
            "--arm",
            arm,
            "--arm",
            "b=c",
            "--url",
            "http://127.0.0.1:9",
        ]
    )
    assert code == 2
    assert "--arm" in capsys.readouterr().err


@pytest.mark.usefixtures("admin")
def test_an_unreachable_server_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["experiments", "list", "--url", "http://127.0.0.1:9"]) == 1
    assert "cannot reach the server at http://127.0.0.1:9" in capsys.readouterr().err


def test_simulate_in_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_json, svg = tmp_path / "sim.json", tmp_path / "aa.svg"
    code = main(
        [
            "experiments",
            "simulate",
            "--runs",
            "30",
            "--ab-runs",
            "5",
            "--items",
            "1000",
            "--json",
            str(out_json),
            "--svg",
            str(svg),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "| always-valid (mSPRT) |" in printed
    figures = json.loads(out_json.read_text())
    assert figures["aa"]["runs"] == 30
    assert figures["aa"]["sequential"] <= figures["aa"]["fixed"]
    assert figures["ab"]["wrong"] == 0
    assert len(figures["ab"]["needed"]) + figures["ab"]["undecided"] == 5
    assert figures["srm"]["healthy_flagged"] < figures["srm"]["broken_flagged"]
    # Through a ramp over a change in traffic, only the periods compared apart stay honest.
    assert figures["ramp"]["runs"] == 30
    assert figures["ramp"]["stratified"] <= 5 < figures["ramp"]["pooled"]
    assert svg.read_text().startswith("<svg")


def test_an_arm_may_name_a_version_of_its_variant() -> None:
    from scripts.commands.experiments import arm_text, parse_arm
    from scripts.errors import CommandError

    arm = parse_arm("v2=pretrained@2:9")
    assert arm == {"name": "v2", "variant": "pretrained", "weight": 9.0, "version": "2"}
    assert arm_text(arm) == "v2=pretrained@2:9"
    assert parse_arm("a=baseline") == {"name": "a", "variant": "baseline", "weight": 1.0}
    with pytest.raises(CommandError, match=r"NAME=VARIANT\[@VERSION\]\[:WEIGHT\]"):
        parse_arm("v2=pretrained@:1")
