"""List and verify a model repository: ``<root>/<model>/<variant>/{model.onnx, manifest.json}``,
or numbered versions of a variant, ``<root>/<model>/<variant>/<version>/{...}``.

A variant folder holds its model directly (one version: the manifest's), or one folder per
version, numbered 1, 2, ...; its ``default_version`` file names the version served when a
request names none, else the highest is.

Every problem is reported with the path it concerns and the reason; a bad
entry is skipped, never used and never allowed to break the whole listing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from service.manifest import (
    MANIFEST_FILE,
    ONNX_FILE,
    VARIANTS,
    Manifest,
    ManifestError,
    parse_manifest,
    sha256_file,
)


@dataclass(frozen=True)
class ModelEntry:
    """One verified variant of one model, ready to be loaded."""

    manifest: Manifest
    directory: Path

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def variant(self) -> str:
        return self.manifest.variant

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def onnx_path(self) -> Path:
        return self.directory / ONNX_FILE


@dataclass(frozen=True)
class Problem:
    """Why one path in the repository cannot be used."""

    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


class InvalidEntry(Exception):
    """One repository path cannot be used; carries the :class:`Problem`."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.problem = Problem(path, reason)


@dataclass
class RepositoryListing:
    """What a scan found: usable entries and one problem per unusable path."""

    root: Path
    entries: list[ModelEntry] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    defaults: dict[tuple[str, str], str] = field(default_factory=dict)
    """Each variant's default version, by ``(model, variant)``."""
    marked_at: dict[tuple[str, str], float] = field(default_factory=dict)
    """When each variant's ``default_version`` file was written (seconds since the epoch);
    absent where no file names the default."""

    def models(self) -> dict[str, dict[str, ModelEntry]]:
        """Each variant's default version, grouped as ``{model: {variant: entry}}``."""
        grouped: dict[str, dict[str, ModelEntry]] = {}
        for entry in self.entries:
            if self.defaults.get((entry.name, entry.variant)) == entry.version:
                grouped.setdefault(entry.name, {})[entry.variant] = entry
        return grouped


VERSION_PATTERN = re.compile(r"[1-9][0-9]{0,8}")
"""A version folder's name: a positive number, as Triton numbers a model's versions."""

DEFAULT_VERSION_FILE = "default_version"
"""In a variant folder of numbered versions: the version served when a request names none."""


@dataclass
class VariantListing:
    """What one variant folder holds: its verified versions, and why others cannot be used."""

    entries: list[ModelEntry] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    default: str | None = None
    """The version served when a request names none; None when no version is usable."""
    marked_at: float | None = None
    """When the ``default_version`` file that names it was written; None without one."""


def version_key(version: str) -> tuple[int, str]:
    """Versions in order: numbered ones by number, any other name after them."""
    return (int(version), "") if version.isdigit() else (1 << 40, version)


def _unreadable(exc: OSError | UnicodeDecodeError) -> str:
    detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return f"cannot be read ({detail})"


def _is_file(path: Path) -> bool:
    """Whether ``path`` is a file; InvalidEntry when its folder cannot be searched."""
    try:
        return path.is_file()
    except OSError as exc:  # is_file() only swallows "does not exist"; EACCES comes through
        raise InvalidEntry(path, _unreadable(exc)) from None


def _is_dir(path: Path) -> bool:
    """Whether ``path`` is a directory; InvalidEntry when its folder cannot be searched."""
    try:
        return path.is_dir()
    except OSError as exc:
        raise InvalidEntry(path, _unreadable(exc)) from None


def _listed(directory: Path) -> list[Path]:
    """The visible entries of ``directory``, sorted; InvalidEntry when it cannot be read."""
    try:
        return sorted(p for p in directory.iterdir() if not p.name.startswith("."))
    except OSError as exc:
        raise InvalidEntry(directory, _unreadable(exc)) from None


def load_variant(directory: Path, *, model: str, variant: str) -> ModelEntry:
    """Validate one ``<model>/<variant>`` directory; raise ``InvalidEntry`` naming the file."""
    manifest_path = directory / MANIFEST_FILE
    onnx_path = directory / ONNX_FILE
    if not _is_file(manifest_path):
        raise InvalidEntry(manifest_path, "missing")
    try:
        text = manifest_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidEntry(manifest_path, _unreadable(exc)) from None
    try:
        manifest = parse_manifest(text)
    except ManifestError as exc:
        raise InvalidEntry(manifest_path, str(exc)) from None
    if manifest.name != model or manifest.variant != variant:
        raise InvalidEntry(
            manifest_path,
            f"describes {manifest.name}/{manifest.variant} but lies in {model}/{variant}",
        )
    if not _is_file(onnx_path):
        raise InvalidEntry(onnx_path, "missing")
    try:
        actual = sha256_file(onnx_path)
    except OSError as exc:
        raise InvalidEntry(onnx_path, _unreadable(exc)) from None
    if actual != manifest.onnx_sha256:
        raise InvalidEntry(
            onnx_path, f"sha256 {actual} does not match the manifest's {manifest.onnx_sha256}"
        )
    return ModelEntry(manifest=manifest, directory=directory)


def scan_repository(root: Path) -> RepositoryListing:
    """List every model in ``root``, verifying manifests and hashes."""
    listing = RepositoryListing(root=root)
    if not root.exists():
        listing.problems.append(Problem(root, "model repository does not exist"))
        return listing
    if not root.is_dir():
        listing.problems.append(Problem(root, "model repository is not a directory"))
        return listing
    try:
        model_dirs = _listed(root)
    except InvalidEntry as exc:
        listing.problems.append(exc.problem)
        return listing
    for model_dir in model_dirs:
        try:
            if not _is_dir(model_dir):
                listing.problems.append(Problem(model_dir, "not a model directory (ignored)"))
                continue
            found = _listed(model_dir)
        except InvalidEntry as exc:
            listing.problems.append(exc.problem)
            continue
        for extra in found:
            if extra.name not in VARIANTS:
                listing.problems.append(
                    Problem(extra, f"unknown variant (expected one of {', '.join(VARIANTS)})")
                )
        for variant in VARIANTS:
            variant_dir = model_dir / variant
            try:
                if not _is_dir(variant_dir):
                    listing.problems.append(Problem(variant_dir, f"variant {variant!r} is missing"))
                    continue
            except InvalidEntry as exc:
                listing.problems.append(exc.problem)
                continue
            found_variant = scan_variant(variant_dir, model=model_dir.name, variant=variant)
            listing.entries.extend(found_variant.entries)
            listing.problems.extend(found_variant.problems)
            if found_variant.default is not None:
                listing.defaults[(model_dir.name, variant)] = found_variant.default
            if found_variant.marked_at is not None:
                listing.marked_at[(model_dir.name, variant)] = found_variant.marked_at
    return listing


def scan_variant(directory: Path, *, model: str, variant: str) -> VariantListing:
    """Every verified version in one variant folder, one problem per unusable path, and the
    default version."""
    listing = VariantListing()
    try:
        flat = _is_file(directory / MANIFEST_FILE)
        if flat:
            entry = load_variant(directory, model=model, variant=variant)
        listed = _listed(directory)
        numbered = [p for p in listed if VERSION_PATTERN.fullmatch(p.name)]
        if flat:
            ignored = [
                Problem(p, "ignored: the variant holds its model directly, not in version folders")
                for p in numbered
            ]
            return VariantListing([entry], ignored, entry.version)
        if not numbered:
            raise InvalidEntry(directory / MANIFEST_FILE, "missing")
        for extra in listed:
            if extra not in numbered and extra.name != DEFAULT_VERSION_FILE:
                listing.problems.append(
                    Problem(extra, "not a version folder (versions are numbered 1, 2, ...)")
                )
    except InvalidEntry as exc:
        listing.problems.append(exc.problem)
        return listing
    for folder in numbered:
        try:
            if not _is_dir(folder):
                raise InvalidEntry(folder, "not a version folder")
            entry = load_variant(folder, model=model, variant=variant)
            if entry.version != folder.name:
                raise InvalidEntry(
                    folder / MANIFEST_FILE,
                    f"describes version {entry.version} but lies in folder {folder.name}",
                )
        except InvalidEntry as exc:
            listing.problems.append(exc.problem)
            continue
        listing.entries.append(entry)
    listing.entries.sort(key=lambda e: version_key(e.version))
    listing.default = _default_version(directory, listing)
    return listing


def named_default(directory: Path) -> str | None:
    """The version a variant folder's ``default_version`` file names, if it has one;
    ``OSError`` or ``UnicodeDecodeError`` when it cannot be read."""
    marker = directory / DEFAULT_VERSION_FILE
    return marker.read_text(encoding="ascii").strip() if marker.is_file() else None


def _default_version(directory: Path, listing: VariantListing) -> str | None:
    """The version the variant folder's marker names, else the highest usable one."""
    versions = [e.version for e in listing.entries]
    marker = directory / DEFAULT_VERSION_FILE
    try:
        named = named_default(directory)
        written = marker.stat().st_mtime if named is not None else None
    except (OSError, UnicodeDecodeError) as exc:
        listing.problems.append(Problem(marker, _unreadable(exc)))
        named = written = None
    if named is not None and named not in versions:
        listing.problems.append(
            Problem(marker, f"names version {named[:40]!r}, which is not usable here (ignored)")
        )
        named = written = None
    listing.marked_at = written
    return named if named is not None else (versions[-1] if versions else None)
