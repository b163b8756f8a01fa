"""The README's tritonclient snippet, run as written against the real server."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "## Open Inference Protocol (V2)"


def readme_snippet() -> str:
    """The first ``python`` code block of the README's V2 section."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index(SECTION) :]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, f"no python block in {SECTION!r}"
    return match.group(1)


def test_readme_snippet_classifies_a_digit(
    live_server: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = readme_snippet()
    # The README talks to the default server and model; this test's server has "tiny".
    assert '"localhost:8000"' in code
    assert '"mnist-pretrained"' in code
    code = code.replace('"localhost:8000"', repr(live_server.removeprefix("http://")))
    code = code.replace('"mnist-pretrained"', '"tiny-pretrained"')
    image = Image.new("L", (56, 56), 0)
    ImageDraw.Draw(image).line([(14, 14), (42, 14), (24, 44)], fill=255, width=6)
    image.save(tmp_path / "digit.png")
    monkeypatch.chdir(tmp_path)

    exec(compile(code, str(README), "exec"), {"__name__": "readme"})  # noqa: S102

    printed = capsys.readouterr().out
    entries = re.findall(r"b'([0-9.e-]+):(\d):(\d)'", printed)
    assert len(entries) == 3, printed
    scores = [float(score) for score, _, _ in entries]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 < s <= 1.0 for s in scores)
    assert all(index == label for _, index, label in entries)
