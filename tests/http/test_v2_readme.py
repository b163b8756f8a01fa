"""docs/api.md's tritonclient snippet, run as written against a quick build of the default model.

It opens ``docs/digits/digit0.png``, the committed digit the page's curl examples send, from
the checkout as a reader runs it. The output
shown under it is the default models' (``python -m benchmarks.readme_examples`` writes it);
a quick build's must have its form: three classes, best first, ``probability:index:label``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from benchmarks.readme_examples import API, ROOT, examples
from service.manifest import Manifest

ENTRY = re.compile(r"b'([0-9.e-]+):(\d+):([^']+)'")


def _entries(printed: str, classes: list[str]) -> list[float]:
    """The scores of a printed ``[[b'probability:index:label' ...]]``, checked for form."""
    assert re.fullmatch(r"\[\[(b'[^']*'\s*)+\]\]", printed.strip()), printed
    entries = ENTRY.findall(printed)
    assert len(entries) == 3, printed
    assert all(classes[int(index)] == label for _, index, label in entries), printed
    scores = [float(score) for score, _, _ in entries]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in scores)
    return scores


def test_readme_snippet_classifies_a_digit(
    quick_server: str,
    quick_repository: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    snippet = examples(API.read_text(encoding="utf-8"))[-1]
    assert snippet.language == "python"
    code = snippet.command
    # The page talks to the default server; this test's server listens elsewhere.
    assert '"localhost:8000"' in code
    assert 'Image.open("docs/digits/digit0.png")' in code
    code = code.replace('"localhost:8000"', repr(quick_server.removeprefix("http://")))
    monkeypatch.chdir(ROOT)

    exec(compile(code, str(API), "exec"), {"__name__": "readme"})  # noqa: S102

    classes = Manifest.model_validate_json(
        (quick_repository / "mnist" / "pretrained" / "manifest.json").read_text(encoding="utf-8")
    ).class_names
    _entries(capsys.readouterr().out, classes)
    shown = _entries(snippet.shown, classes)
    assert shown[0] > 0.5, "the default model is sure of the page's digit 0"
