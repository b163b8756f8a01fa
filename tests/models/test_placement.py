"""Where a build puts a variant: the next version beside those there, or in place of them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.errors import PlacementError
from models.placement import place, plan
from service.repository import DEFAULT_VERSION_FILE, scan_repository
from tests.builders import write_variant


def _staged(tmp_path: Path, version: str, seed: int) -> Path:
    """An exported variant as the build leaves it in its hidden folder, numbered ``version``."""
    folder = write_variant(tmp_path / "staging" / version, "tiny", "pretrained", seed=seed)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["version"] = version
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def _build(root: Path, tmp_path: Path, seed: int, **how: bool) -> Path:
    variant_dir = root / "tiny" / "pretrained"
    variant_dir.parent.mkdir(parents=True, exist_ok=True)  # as the export makes it
    placement = plan(
        variant_dir, replace=how.get("replace", False), make_default=how.get("make_default", False)
    )
    return place(_staged(tmp_path, placement.version, seed), variant_dir, placement)


def test_a_first_build_is_version_one_in_the_variant_folder(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    assert _build(root, tmp_path, seed=0) == root / "tiny" / "pretrained"
    assert (root / "tiny" / "pretrained" / "manifest.json").is_file()


def test_the_next_build_is_the_next_version_and_the_default_stays(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    write_variant(root, "tiny", "pretrained")  # version 1, flat
    assert _build(root, tmp_path, seed=3) == root / "tiny" / "pretrained" / "2"
    assert _build(root, tmp_path, seed=4) == root / "tiny" / "pretrained" / "3"
    listing = scan_repository(root)
    assert [p.reason for p in listing.problems] == ["variant 'baseline' is missing"]
    assert sorted(e.version for e in listing.entries) == ["1", "2", "3"]
    assert listing.defaults[("tiny", "pretrained")] == "1"  # what served before still does
    assert not [p for p in (root / "tiny").iterdir() if p.name.startswith(".")]


def test_make_default_makes_the_new_version_the_default(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    write_variant(root, "tiny", "pretrained")
    _build(root, tmp_path, seed=3, make_default=True)
    marker = root / "tiny" / "pretrained" / DEFAULT_VERSION_FILE
    assert marker.read_text() == "2\n"
    assert scan_repository(root).defaults[("tiny", "pretrained")] == "2"


def test_replace_leaves_one_version_whatever_was_there(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    write_variant(root, "tiny", "pretrained", version="1")
    write_variant(root, "tiny", "pretrained", version="2")
    assert _build(root, tmp_path, seed=8, replace=True) == root / "tiny" / "pretrained"
    listing = scan_repository(root)
    assert [(e.version, e.directory) for e in listing.entries] == [
        ("1", root / "tiny" / "pretrained")
    ]


def test_a_flat_model_whose_version_is_not_a_number_is_not_renumbered(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    folder = write_variant(root, "tiny", "pretrained")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["version"] = "beta"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(PlacementError, match=r"not a number.*--replace"):
        plan(folder, replace=False, make_default=False)
