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


@pytest.mark.parametrize(
    ("layout", "reason"),
    [
        ({"notes.txt": "mine"}, "holds no model and no numbered version, but other files"),
        ({"1/keep": "x", "default_version": "\u00e9\n"}, "cannot take a new version"),
        ({"manifest.json": "{not json"}, "cannot take a new version"),
        ({"manifest.json": "[1]"}, "which is not a number"),
    ],
)
def test_a_folder_that_cannot_take_a_version_is_refused_and_kept(
    tmp_path: Path, layout: dict[str, str], reason: str
) -> None:
    folder = tmp_path / "repo" / "tiny" / "pretrained"
    for name, text in layout.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text, encoding="utf-8")
    with pytest.raises(PlacementError, match=reason):
        plan(folder, replace=False, make_default=False)
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) == sorted(
        layout
    )


def test_a_model_held_directly_with_version_folders_beside_it_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    write_variant(root, "tiny", "pretrained")
    write_variant(root, "tiny", "pretrained", version="2")
    folder = root / "tiny" / "pretrained"
    with pytest.raises(PlacementError, match="holds a model directly and numbered versions"):
        plan(folder, replace=False, make_default=False)
    (problem,) = [p for p in scan_repository(root).problems if p.path.parent == folder]
    assert problem.reason.startswith("ignored: the variant holds its model directly")


def test_until_a_new_version_is_promoted_it_is_never_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The marker is written before the version appears, so no reader sees it as default."""
    root = tmp_path / "repo"
    write_variant(root, "tiny", "pretrained", version="1")
    write_variant(root, "tiny", "pretrained", version="2")
    folder = root / "tiny" / "pretrained"
    placement = plan(folder, replace=False, make_default=False)
    staged = _staged(tmp_path, placement.version, seed=9)
    seen = []
    original = Path.rename

    def rename(self: Path, target: Path) -> Path:
        if self == staged:  # the moment before the new version shows
            seen.append((folder / DEFAULT_VERSION_FILE).read_text())
        return original(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    place(staged, folder, placement)
    assert seen == ["2\n"]
