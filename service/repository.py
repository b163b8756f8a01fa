"""List and verify a model repository: ``<root>/<model>/<variant>/{model.onnx, manifest.json}``.

Every problem is reported with the path it concerns and the reason; a bad
entry is skipped, never used and never allowed to break the whole listing.
"""

from __future__ import annotations

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

    def models(self) -> dict[str, dict[str, ModelEntry]]:
        """Entries grouped as ``{model: {variant: entry}}``."""
        grouped: dict[str, dict[str, ModelEntry]] = {}
        for entry in self.entries:
            grouped.setdefault(entry.name, {})[entry.variant] = entry
        return grouped


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
                entry = load_variant(variant_dir, model=model_dir.name, variant=variant)
            except InvalidEntry as exc:
                listing.problems.append(exc.problem)
                continue
            listing.entries.append(entry)
    return listing
