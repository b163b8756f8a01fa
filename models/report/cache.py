"""One file per finished run: numbers as JSON, arrays as ``.npz`` (never pickled)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from models.errors import DataError

Arrays = dict[str, NDArray[Any]]


class RunCache:
    """A folder of ``<key>.json`` (+ ``<key>.npz``); the JSON is written last, so its presence
    means the run finished and an interrupted sweep resumes where it stopped."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def get(self, key: str) -> dict[str, Any] | None:
        path = self.root / f"{key}.json"
        if not path.is_file():
            return None
        try:
            record: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: unreadable cached run ({exc}); delete it to rerun") from None
        return record

    def arrays(self, key: str) -> Arrays:
        """The run's arrays, or none if it kept none."""
        path = self.root / f"{key}.npz"
        if not path.is_file():
            return {}
        try:
            with np.load(path, allow_pickle=False) as data:
                return {name: data[name] for name in data.files}
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: unreadable cached arrays ({exc}); delete it") from None

    def put(self, key: str, record: dict[str, Any], arrays: Arrays | None = None) -> None:
        if arrays:
            self._atomic(
                self.root / f"{key}.npz",
                lambda fh: np.savez_compressed(fh, allow_pickle=False, **arrays),
            )
        text = json.dumps(record, indent=1, sort_keys=True).encode()
        self._atomic(self.root / f"{key}.json", lambda fh: fh.write(text))

    def _atomic(self, path: Path, write: Any) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".", suffix=path.suffix)
        try:
            with os.fdopen(fd, "wb") as fh:
                write(fh)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
