"""Every command's ``--help``: a description, help on every option, defaults stated one way,
and each ``HEADSTART_*`` variable named by the option it sets; errors print their own usage."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.cli import build_parser, main
from scripts.commands.serve import OPTIONS as SERVE_OPTIONS
from service.settings import Settings
from tests.server import ROOT

# "(default: VALUE)" or "(default: VALUE; env HEADSTART_NAME)", closing the help text.
DEFAULT = re.compile(r"\(default: [^;]+?(?:; env (HEADSTART_[A-Z_]+))?\)$")
READS_ENV = re.compile(r"environ(?:\.get\(|\[)\"(HEADSTART_[A-Z_]+)\"")


def _commands() -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every command and sub-command parser, named as typed (``experiments create``)."""

    def walk(
        name: str, parser: argparse.ArgumentParser
    ) -> Iterator[tuple[str, argparse.ArgumentParser]]:
        yield name, parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub, child in action.choices.items():
                    yield from walk(f"{name} {sub}".strip(), child)

    for name, parser in walk("", build_parser()):
        if name:
            yield name, parser


def _options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    skip = (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)
    return [a for a in parser._actions if not isinstance(a, skip)]


COMMANDS = sorted(name for name, _ in _commands())


def test_the_walk_finds_the_nested_commands() -> None:
    assert {"build", "serve", "experiments", "experiments create", "models list"} <= set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_describes_itself_and_every_option(command: str) -> None:
    parser = dict(_commands())[command]
    assert parser.description, f"`headstart {command} --help` has no description"
    for action in _options(parser):
        name = "/".join(action.option_strings) or action.dest
        text = action.help or ""
        assert text, f"{command}: {name} has no help"
        if "default" in text or "HEADSTART_" in text:
            assert DEFAULT.search(text), f"{command}: {name} states its default otherwise: {text!r}"
        if action.option_strings and action.default not in (None, False, argparse.SUPPRESS):
            assert "(default: " in text, f"{command}: {name} hides its default {action.default!r}"


def _named(action: argparse.Action) -> str | None:
    match = DEFAULT.search(action.help or "")
    return match.group(1) if match else None


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_a_setting_backs_names_its_variable(command: str) -> None:
    # serve's options override the service's settings; every command's --model-repository
    # defaults to the setting's value.
    backed = set(SERVE_OPTIONS) if command == "serve" else {"model_repository"}
    for action in _options(dict(_commands())[command]):
        if action.dest in backed:
            assert action.dest in Settings.model_fields
            assert _named(action) == f"HEADSTART_{action.dest.upper()}", (command, action.dest)


def test_every_variable_the_command_line_reads_is_named_in_some_help() -> None:
    read = set()
    for path in (ROOT / "scripts").rglob("*.py"):
        read |= set(READS_ENV.findall(path.read_text(encoding="utf-8")))
    assert read, "the scan found no variable at all"
    named = {
        _named(action) for _, parser in _commands() for action in _options(parser) if _named(action)
    }
    assert read <= named, read - named


def test_only_the_options_that_apply_are_offered() -> None:
    commands = dict(_commands())

    def flags(command: str) -> set[str]:
        return {s for a in _options(commands[command]) for s in a.option_strings}

    assert "--pretrain-epochs" not in flags("finetune")
    assert "--max-epochs" in flags("finetune")
    assert "--max-epochs" not in flags("pretrain")
    assert "--pretrain-epochs" in flags("pretrain")
    assert {"--pretrain-epochs", "--max-epochs"} <= flags("build")


@pytest.mark.parametrize(
    ("argv", "command", "unknown"),
    [
        (["build", "--bogus"], "build", "--bogus"),
        (["serve", "--nope", "1"], "serve", "--nope 1"),
        (
            ["experiments", "create", "x", "--model", "m", "--arm", "a=b", "--zz"],
            "experiments create",
            "--zz",
        ),
    ],
)
def test_a_wrong_flag_prints_the_commands_own_usage(
    capsys: pytest.CaptureFixture[str], argv: list[str], command: str, unknown: str
) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: headstart {command} [-h]")
    assert err.endswith(f"headstart {command}: error: unrecognized arguments: {unknown}\n")


def test_experiments_create_with_one_arm_fails_before_calling_the_server(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HEADSTART_ADMIN_TOKEN", "t")
    # Nothing listens on port 9 (discard) on loopback: a call would fail as "cannot reach".
    argv = ["experiments", "create", "x", "--model", "m", "--arm", "a=pretrained"]
    assert main([*argv, "--url", "http://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "headstart: error: an experiment needs two or more arms, got 1: give --arm once per "
        "arm, e.g. --arm a=baseline --arm b=pretrained\n"
    )
