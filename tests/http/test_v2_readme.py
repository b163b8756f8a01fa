"""The README's tritonclient snippet, run as written against a quick build of the default model.

It opens ``digit0.png``, which the README's "With curl" part makes a few lines above; the
test makes it with that part's own command, in the folder the snippet runs in.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from benchmarks.readme_examples import README, examples, run
from service.manifest import Manifest

SECTION = "## Open Inference Protocol (V2)"


def readme_snippet() -> str:
    """The first ``python`` code block of the README's V2 section."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index(SECTION) :]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, f"no python block in {SECTION!r}"
    return match.group(1)


def test_readme_snippet_classifies_a_digit(
    quick_server: str,
    quick_repository: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = readme_snippet()
    # The README talks to the default server; this test's server listens elsewhere.
    assert '"localhost:8000"' in code
    assert 'Image.open("digit0.png")' in code
    code = code.replace('"localhost:8000"', repr(quick_server.removeprefix("http://")))
    digits = examples(README.read_text(encoding="utf-8"))[0]
    made = run(digits.command, "", tmp_path)
    assert made.returncode == 0, made.stderr
    monkeypatch.chdir(tmp_path)

    exec(compile(code, str(README), "exec"), {"__name__": "readme"})  # noqa: S102

    printed = capsys.readouterr().out
    entries = re.findall(r"b'([0-9.e-]+):(\d+):([^']+)'", printed)
    assert len(entries) == 3, printed
    scores = [float(score) for score, _, _ in entries]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in scores)
    classes = Manifest.model_validate_json(
        (quick_repository / "mnist" / "pretrained" / "manifest.json").read_text(encoding="utf-8")
    ).class_names
    assert all(classes[int(index)] == label for _, index, label in entries)
