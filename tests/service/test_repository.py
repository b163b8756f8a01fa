from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from service.repository import scan_repository
from tests.builders import write_repository, write_variant


def _reasons(root: Path) -> dict[str, str]:
    listing = scan_repository(root)
    return {str(p.path.relative_to(root)): p.reason for p in listing.problems}


def test_valid_repository_lists_both_variants(repository: Path) -> None:
    listing = scan_repository(repository)
    assert listing.problems == []
    assert [(e.name, e.variant) for e in listing.entries] == [
        ("tiny", "pretrained"),
        ("tiny", "baseline"),
    ]
    assert set(listing.models()["tiny"]) == {"pretrained", "baseline"}
    assert listing.entries[0].onnx_path == repository / "tiny" / "pretrained" / "model.onnx"


def test_missing_repository(tmp_path: Path) -> None:
    listing = scan_repository(tmp_path / "nope")
    assert listing.entries == []
    assert [p.reason for p in listing.problems] == ["model repository does not exist"]


def test_empty_repository(tmp_path: Path) -> None:
    listing = scan_repository(tmp_path)
    assert listing.entries == []
    assert listing.problems == []


def test_missing_onnx_file(repository: Path) -> None:
    (repository / "tiny" / "baseline" / "model.onnx").unlink()
    assert _reasons(repository) == {"tiny/baseline/model.onnx": "missing"}
    assert [e.variant for e in scan_repository(repository).entries] == ["pretrained"]


def test_missing_manifest(repository: Path) -> None:
    (repository / "tiny" / "pretrained" / "manifest.json").unlink()
    assert _reasons(repository) == {"tiny/pretrained/manifest.json": "missing"}


def test_bad_json(repository: Path) -> None:
    (repository / "tiny" / "pretrained" / "manifest.json").write_text("{not json")
    reasons = _reasons(repository)
    assert list(reasons) == ["tiny/pretrained/manifest.json"]
    assert reasons["tiny/pretrained/manifest.json"].startswith("not valid JSON")


def test_wrong_hash(repository: Path) -> None:
    onnx_path = repository / "tiny" / "baseline" / "model.onnx"
    onnx_path.write_bytes(onnx_path.read_bytes() + b"\0")
    reasons = _reasons(repository)
    assert list(reasons) == ["tiny/baseline/model.onnx"]
    assert "does not match the manifest's" in reasons["tiny/baseline/model.onnx"]
    assert [e.variant for e in scan_repository(repository).entries] == ["pretrained"]


def test_unknown_schema_version(repository: Path) -> None:
    path = repository / "tiny" / "pretrained" / "manifest.json"
    path.write_text(path.read_text().replace('"schema_version": 1', '"schema_version": 99'))
    assert _reasons(repository) == {
        "tiny/pretrained/manifest.json": "schema_version 99 is not supported (this headstart reads 1)"
    }


def test_variant_missing(repository: Path) -> None:
    shutil.rmtree(repository / "tiny" / "baseline")
    assert _reasons(repository) == {"tiny/baseline": "variant 'baseline' is missing"}


def test_unknown_variant_directory(repository: Path) -> None:
    (repository / "tiny" / "experimental").mkdir()
    assert _reasons(repository) == {
        "tiny/experimental": "unknown variant (expected one of pretrained, baseline)"
    }


def test_manifest_in_the_wrong_place(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    write_variant(root, "tiny", "pretrained")
    write_variant(root, "tiny", "baseline")
    shutil.move(root / "tiny", root / "other")
    reasons = _reasons(root)
    assert reasons["other/pretrained/manifest.json"] == (
        "describes tiny/pretrained but lies in other/pretrained"
    )


def test_stray_file_at_top_level(repository: Path) -> None:
    (repository / "README.txt").write_text("hi")
    assert _reasons(repository) == {"README.txt": "not a model directory (ignored)"}


def test_one_bad_model_does_not_hide_another(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    for name in ("good", "bad"):
        for variant in ("pretrained", "baseline"):
            write_variant(root, name, variant)
    (root / "bad" / "pretrained" / "manifest.json").write_text("")
    listing = scan_repository(root)
    assert {(e.name, e.variant) for e in listing.entries} == {
        ("good", "pretrained"),
        ("good", "baseline"),
        ("bad", "baseline"),
    }
    assert len(listing.problems) == 1


# A process that is not the owner, as the image's runtime user is not the owner of files a
# root build step wrote. As root (a container build, this test machine) the scan drops to
# nobody once Python has started (the interpreter may lie where nobody cannot reach);
# otherwise the owner itself loses the permission, which denies it the same way.
_NOBODY = 65534
_SCAN = """
import json, os, sys
from pathlib import Path
from service.repository import scan_repository
if os.geteuid() == 0:
    os.setgroups([])
    os.setgid(int(sys.argv[2]))
    os.setuid(int(sys.argv[2]))
root = Path(sys.argv[1])
listing = scan_repository(root)
print(json.dumps({
    "entries": [f"{e.name}/{e.variant}" for e in listing.entries],
    "problems": {str(p.path.relative_to(root)): p.reason for p in listing.problems},
}))
"""


@pytest.fixture
def shared_repository() -> Iterator[Path]:
    """A repository another user can reach: pytest's own temporary folders are private."""
    parent = Path(tempfile.mkdtemp(prefix="headstart-repo-"))
    parent.chmod(0o755)
    try:
        yield write_repository(parent / "repo")
    finally:
        for path in parent.rglob("*"):
            path.chmod(0o755)
        shutil.rmtree(parent)


def _scan_as_another_user(root: Path) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-c", _SCAN, str(root), str(_NOBODY)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        check=False,
    )
    assert result.returncode == 0, result.stderr  # no traceback: every entry is reported
    found: dict[str, Any] = json.loads(result.stdout)
    return found


@pytest.mark.parametrize(
    ("private", "mode", "reported"),
    [
        # The staging folder tempfile.mkdtemp makes, renamed into place by a root build.
        ("tiny/pretrained", 0o700, "tiny/pretrained/manifest.json"),
        ("tiny/pretrained/manifest.json", 0o600, "tiny/pretrained/manifest.json"),
        ("tiny/pretrained/model.onnx", 0o600, "tiny/pretrained/model.onnx"),
        ("tiny", 0o700, "tiny"),
    ],
)
def test_unreadable_entry_is_reported_not_raised(
    shared_repository: Path, private: str, mode: int, reported: str
) -> None:
    path = shared_repository / private
    path.chmod(mode if os.geteuid() == 0 else 0)
    found = _scan_as_another_user(shared_repository)
    assert found["problems"] == {reported: "cannot be read (Permission denied)"}
    usable = [] if private == "tiny" else ["tiny/baseline"]
    assert found["entries"] == usable
