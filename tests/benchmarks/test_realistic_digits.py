from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks import realistic_digits
from service.decode import DecodeOptions, decode_image
from service.manifest import MNIST_FRAMING, InputSpec
from tests.builders import write_repository
from tests.images import mnist

ROOT = Path(__file__).resolve().parents[2]

FRAMED = InputSpec(channels=1, height=28, width=28, framing=MNIST_FRAMING)


@pytest.mark.parametrize("name", list(realistic_digits.SETS))
def test_every_rendering_still_shows_the_digit(name: str) -> None:
    digits, _ = mnist()
    rng = np.random.default_rng(0)
    render = realistic_digits.SETS[name]
    diffs = [
        np.abs(decode_image(render(d, rng), FRAMED, DecodeOptions())[0].astype(int) - d).mean()
        for d in digits[:5]
    ]
    # Framed back, the renderings are near the test images they came from: they hold those
    # digits (measured on 20: 0.6 for the clean ones, 10-20 grey levels for the others).
    assert np.mean(diffs) < 25


def test_the_benchmark_reports_every_set_framed_and_not(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repository = write_repository(tmp_path / "repo")
    out = tmp_path / "figures.json"
    argv = ["--model-repository", str(repository), "--model", "tiny", "--dataset", "mnist-5k"]
    assert realistic_digits.main([*argv, "--count", "6", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    stored = json.loads(out.read_text())
    assert stored["count"] == 6
    figures = stored["sets"]
    assert list(figures) == list(realistic_digits.SETS)
    for name, row in figures.items():
        assert f"| {name} |" in table
        assert set(row) == {
            f"{variant} framing={choice}"
            for variant in ("pretrained", "baseline")
            for choice in ("none", "auto")
        }
        assert all(0.0 <= value <= 1.0 for value in row.values())
    assert "(6 test digits each)" in table


def test_the_api_page_table_is_the_stored_run() -> None:
    stored = json.loads((ROOT / "benchmarks" / "results" / "realistic_digits.json").read_text())
    printed = realistic_digits.table(stored["sets"], stored["count"])
    assert printed in (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
