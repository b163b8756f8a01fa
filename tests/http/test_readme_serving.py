"""The README's serving examples run as written against a live server, and answer as shown."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.builders import write_repository
from tests.server import running_server

README = Path(__file__).resolve().parents[2] / "README.md"


def _section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("## Serving API")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def _examples() -> list[tuple[str, str]]:
    """Each ``sh`` command of the section's "With curl" part and its commented output."""
    part = _section().split("### With curl", 1)[1].split("\n### ", 1)[0]
    examples = []
    for block in re.findall(r"```sh\n(.*?)```", part, flags=re.DOTALL):
        command: list[str] = []
        shown: list[str] = []
        for line in [*block.splitlines(), ""]:
            if line.startswith("#"):
                shown.append(line[1:].strip())
            elif line.strip():
                if shown:
                    examples.append((" ".join(command), " ".join(shown)))
                    command, shown = [], []
                command.append(line.rstrip("\\").strip())
        if command:
            examples.append((" ".join(command), " ".join(shown)))
    return examples


@pytest.fixture(scope="module")
def mnist_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = write_repository(
        tmp_path_factory.mktemp("readme") / "model_repository", names=("mnist",)
    )
    with running_server(root) as url:
        yield url


def _strip_latency(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_latency(v) for k, v in value.items() if k != "latency_ms"}
    return value


def test_readme_has_the_promised_examples() -> None:
    commands = [c for c, _ in _examples()]
    assert sum("/classify" in c for c in commands) == 3
    assert any("-F image=@" in c and "/classify" in c for c in commands)
    assert any("Content-Type: image/png" in c for c in commands)
    assert any("application/json" in c and "base64" in c for c in commands)
    assert any("/embed" in c for c in commands)
    assert any("/compare" in c and "label=" in c for c in commands)


def test_readme_examples_answer_as_shown(mnist_server: str, tmp_path: Path) -> None:
    if shutil.which("curl") is None or shutil.which("jq") is None:
        pytest.fail("the README examples need curl and jq on PATH")
    host = mnist_server.removeprefix("http://")
    for command, shown in _examples():
        command = command.replace(".venv/bin/python", sys.executable).replace(
            "localhost:8000", host
        )
        result = subprocess.run(
            ["bash", "-c", command],
            check=False,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, f"{command}\n{result.stderr}"
        output = result.stdout.strip()
        if "…" not in shown and shown.startswith("{"):
            # A complete JSON answer: equal, except the measured times.
            assert _strip_latency(json.loads(output)) == _strip_latency(json.loads(shown)), command
        else:
            # An abbreviated answer: what is shown before the first ellipsis is verbatim.
            prefix = shown.split("…", 1)[0].replace(" ", "")
            assert output.replace(" ", "").startswith(prefix), f"{command}\n{output}"
