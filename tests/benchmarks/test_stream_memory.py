"""``python -m benchmarks.stream_memory``, on one small folder."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_stream_memory_reports_each_size(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.stream_memory", "--sizes", "300",
         "--workdir", str(tmp_path), "--", "--hidden", "16,16"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    header, _, row = result.stdout.splitlines()
    assert header == "| images | peak RSS (MiB) | build wall time (s) |"
    match = re.fullmatch(r"\| 300 \| (\d+) \| (\d+) \|", row)
    assert match is not None, row
    assert int(match[1]) > 50  # a Python process with torch loaded
    for variant in ("pretrained", "baseline"):
        assert (tmp_path / "repository-300" / "mnist" / variant / "model.onnx").is_file()
    assert not (tmp_path / "images-300").exists()  # removed without --keep
