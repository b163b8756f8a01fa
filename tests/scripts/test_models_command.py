from __future__ import annotations

from pathlib import Path

import pytest

from scripts.cli import main


def test_list_valid_repository(repository: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "list", "--model-repository", str(repository)]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].split() == [
        "MODEL",
        "VARIANT",
        "ARCH",
        "METHOD",
        "LABELS/CLASS",
        "TEST",
        "ACC",
        "VERSION",
    ]
    assert lines[1].split()[:4] == ["tiny", "pretrained", "mlp", "dae"]
    assert lines[2].split()[:4] == ["tiny", "baseline", "mlp", "none"]
    assert err == ""


def test_list_reads_the_environment(
    repository: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEADSTART_MODEL_REPOSITORY", str(repository))
    assert main(["models", "list"]) == 0
    assert "tiny" in capsys.readouterr().out


def test_bad_entries_give_one_line_each(
    repository: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (repository / "tiny" / "baseline" / "manifest.json").write_text("{")
    (repository / "tiny" / "pretrained" / "model.onnx").write_bytes(b"tampered")
    assert main(["models", "list", "--model-repository", str(repository)]) == 1
    out, err = capsys.readouterr()
    problems = err.splitlines()
    assert len(problems) == 2
    assert any(
        line.startswith("problem: ") and "baseline/manifest.json: not valid JSON" in line
        for line in problems
    )
    assert any("pretrained/model.onnx: sha256" in line for line in problems)
    assert "tiny" not in out


def test_empty_repository(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "list", "--model-repository", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == f"no models in {tmp_path}"
