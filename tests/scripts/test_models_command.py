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


def test_load_unload_and_history_on_a_running_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.builders import write_repository, write_variant
    from tests.server import running_server

    repository = write_repository(tmp_path / "repo")
    monkeypatch.setenv("HEADSTART_ADMIN_TOKEN", "models-token")
    with running_server(repository, {"HEADSTART_ADMIN_TOKEN": "models-token"}) as url:
        write_variant(repository, "fresh", "pretrained", seed=3)
        assert main(["models", "load", "fresh-pretrained", "--url", url]) == 0
        assert capsys.readouterr().out == "loaded fresh-pretrained in every worker\n"
        assert main(["models", "unload", "fresh-pretrained", "--url", url]) == 0
        assert capsys.readouterr().out == "unloaded fresh-pretrained in every worker\n"
        (repository / "tiny" / "baseline" / "manifest.json").write_text("{")
        assert main(["models", "load", "tiny-baseline", "--url", url]) == 1
        error = capsys.readouterr().err
        assert error.startswith("headstart: error: POST /v2/repository/models/tiny-baseline/load")
        assert "HTTP 400: tiny/baseline/manifest.json: " in error
        assert main(["models", "history", "--url", url]) == 0
        lines = [line.split("  ", 1)[1] for line in capsys.readouterr().out.splitlines()]
    assert [line.split(" (")[0] for line in lines] == [
        "load fresh-pretrained by admin: done",
        "unload fresh-pretrained by admin: done",
        "load tiny-baseline by admin: failed",
    ]


def test_every_version_is_listed_and_the_default_marked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.builders import write_variant

    for version in ("1", "2"):
        write_variant(tmp_path, "tiny", "pretrained", version=version)
    (tmp_path / "tiny" / "pretrained" / "default_version").write_text("1\n")
    write_variant(tmp_path, "tiny", "baseline")
    assert main(["models", "list", "--model-repository", str(tmp_path)]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[1:]]
    assert [(r[1], " ".join(r[6:])) for r in rows] == [
        ("pretrained", "1 (default)"),
        ("pretrained", "2"),
        ("baseline", "1"),
    ]
