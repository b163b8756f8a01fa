"""Where an exported variant goes in the model repository: the next version beside those
there, or in place of every one of them.

A variant folder holds its model directly (one version) until a second version arrives;
then each version lies in a numbered folder and ``default_version`` names the one served
when a request names none. A new version does not change what is served by default unless
asked: it is there to be tried (``?version=``, an experiment's arm) and then promoted.
Every change is made in a hidden folder and renamed into place, so a reader of the
repository sees the variant as it was or as it is, never half-written.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from models.errors import PlacementError
from service.manifest import MANIFEST_FILE
from service.repository import DEFAULT_VERSION_FILE, VERSION_PATTERN, named_default


@dataclass(frozen=True)
class Placement:
    """Where a new version goes and what the variant's default will be."""

    version: str
    default: str
    replace: bool


def plan(variant_dir: Path, *, replace: bool, make_default: bool) -> Placement:
    """The version the next export of ``variant_dir`` takes: 1 when it replaces everything
    (or there is nothing yet), else one more than the highest there."""
    if replace or not variant_dir.exists():
        return Placement("1", "1", replace=True)
    try:
        existing = _versions(variant_dir)
        if not existing:
            if any(variant_dir.iterdir()):
                raise PlacementError(
                    f"{variant_dir} holds no model and no numbered version, but other files: "
                    "move them away, or build with --replace to replace the folder"
                )
            return Placement("1", "1", replace=True)  # an empty folder
        version = str(max(int(v) for v in existing) + 1)
        default = version if make_default else _current_default(variant_dir, existing)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise PlacementError(
            f"{variant_dir} cannot take a new version: {exc} (fix the folder, or build with "
            "--replace to replace it)"
        ) from None
    return Placement(version, default, replace=False)


def _current_default(variant_dir: Path, existing: list[str]) -> str:
    """The version the marker names, if it is there, else the highest: what serves now."""
    named = named_default(variant_dir)
    return named if named in existing else max(existing, key=int)


def _versions(variant_dir: Path) -> list[str]:
    """The version numbers a variant folder holds, flat or numbered; PlacementError for a
    flat model whose version is not a number (it cannot move into a numbered folder) or one
    with numbered folders beside it."""
    flat = variant_dir / MANIFEST_FILE
    numbered = [p.name for p in variant_dir.iterdir() if VERSION_PATTERN.fullmatch(p.name)]
    if not flat.is_file():
        return numbered
    if numbered:
        raise PlacementError(
            f"{variant_dir} holds a model directly and numbered versions ({', '.join(numbered)}) "
            "beside it: keep one or the other, or build with --replace"
        )
    manifest = json.loads(flat.read_text(encoding="utf-8"))
    version = str(manifest.get("version", "1")) if isinstance(manifest, dict) else ""
    if not VERSION_PATTERN.fullmatch(version):
        raise PlacementError(
            f"{variant_dir} holds version {version!r}, which is not a number: a new version "
            "cannot be numbered beside it (build with --replace to replace it)"
        )
    return [version]


def place(staging: Path, variant_dir: Path, placement: Placement) -> Path:
    """Move the exported files in ``staging`` into the repository as ``placement`` says;
    return the folder they now lie in."""
    if placement.replace:
        _swap(staging, variant_dir)
        return variant_dir
    if (variant_dir / MANIFEST_FILE).is_file():
        # The flat model becomes a numbered version beside the new one, in one rename.
        (old_version,) = _versions(variant_dir)
        fresh = Path(tempfile.mkdtemp(prefix=f".{variant_dir.name}-", dir=variant_dir.parent))
        shutil.copytree(variant_dir, fresh / old_version)
        staging.rename(fresh / placement.version)
        _write_default(fresh, placement.default)
        fresh.chmod(0o755)
        _swap(fresh, variant_dir)
        return variant_dir / placement.version
    target = variant_dir / placement.version
    if placement.default != placement.version:
        # Named first: from the moment the new version is there, it is not the default.
        _write_default(variant_dir, placement.default)
        staging.rename(target)
    else:
        staging.rename(target)
        _write_default(variant_dir, placement.default)
    return target


def _swap(new: Path, target: Path) -> None:
    """Put ``new`` where ``target`` is, removing what was there."""
    if target.exists():
        old = target.parent / f".{target.name}-old"
        shutil.rmtree(old, ignore_errors=True)
        target.rename(old)
        shutil.rmtree(old)
    new.rename(target)


def _write_default(variant_dir: Path, version: str) -> None:
    """Name the default version, replacing the marker in one rename."""
    marker = variant_dir / DEFAULT_VERSION_FILE
    handle, temporary = tempfile.mkstemp(prefix=".default-", dir=variant_dir)
    with os.fdopen(handle, "w", encoding="ascii") as out:
        out.write(f"{version}\n")
    os.chmod(temporary, 0o644)
    os.replace(temporary, marker)
