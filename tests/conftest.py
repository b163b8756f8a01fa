from __future__ import annotations

from pathlib import Path

import pytest

from tests.builders import write_repository


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    """A valid model repository with both variants of one tiny model, ``tiny``."""
    return write_repository(tmp_path / "repo")
