"""deploy/constraints.txt: current with pyproject.toml, and every requirement pinned exactly."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.deploy.dockerfile import ROOT

LOCK_SCRIPT = ROOT / "deploy" / "lock.py"


def _lock() -> ModuleType:
    spec = importlib.util.spec_from_file_location("headstart_deploy_lock", LOCK_SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pins(text: str) -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = Version(version)
    return pins


def test_lock_is_current_with_pyproject() -> None:
    result = subprocess.run(
        [sys.executable, str(LOCK_SCRIPT), "--check"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_lock_check_catches_a_changed_requirement(tmp_path: Path) -> None:
    # Guard for the test above: a pyproject.toml with one more dependency is not current.
    lock = _lock()
    changed = tmp_path / "pyproject.toml"
    text = (ROOT / "pyproject.toml").read_text()
    changed.write_text(text.replace('"flask>=3.0",', '"flask>=3.0",\n    "requests>=2",', 1))
    recorded = lock.recorded_digest(lock.CONSTRAINTS.read_text())
    assert recorded == lock.digest(lock.requirements())
    assert recorded != lock.digest(lock.requirements(changed))


def test_every_requirement_is_pinned_within_its_range() -> None:
    lock = _lock()
    pins = _pins(lock.CONSTRAINTS.read_text())
    for spec in lock.requirements():
        requirement = Requirement(spec)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is not locked"
        # A local label (torch's +cpu) is the build the lock chose; the range ignores it.
        assert requirement.specifier.contains(Version(pins[name].public)), (spec, pins[name])
    assert str(pins["torch"]).endswith("+cpu")  # the CPU build, not PyPI's CUDA one


def test_every_line_is_an_exact_pin() -> None:
    for line in _lock().CONSTRAINTS.read_text().splitlines():
        if line and not line.startswith("#"):
            assert "==" in line, line
            assert not any(c in line for c in "<>~;"), line
