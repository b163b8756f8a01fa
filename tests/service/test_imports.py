"""The project's imports form no cycle, and lower layers never import the layers above them.

The layers, bottom up: ``service`` (torch-free serving), ``models`` (training), ``scripts``
(the command line). ``benchmarks`` measures the service and the models and may use both,
but not the command line, which drives the benchmarks.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES: tuple[str, ...] = ("service", "models", "scripts", "benchmarks")

# Each package and the packages it must not import (they sit above it).
ABOVE: dict[str, tuple[str, ...]] = {
    "service": ("models", "scripts", "benchmarks"),
    "models": ("scripts", "benchmarks"),
    "benchmarks": ("scripts",),
    "scripts": (),
}

# Modules that must not import these (they sit below them within their package).
BELOW: dict[str, tuple[str, ...]] = {
    "service.runtime": ("service.batching", "service.dataplane", "service.api", "service.v2"),
    "service.dataplane": ("service.api", "service.v2.api", "service.state", "service.app"),
    "service.metrics": ("service.v2", "service.api", "service.dataplane"),
    "service.repository": ("service.runtime", "service.dataplane"),
    "service.manifest": ("service.",),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _ours(name: str) -> bool:
    return name.split(".", 1)[0] in PACKAGES


def _imports() -> dict[str, set[str]]:
    """Every module of the project and the project modules it imports, at any depth in its
    body (an import inside a function is still an edge)."""
    graph: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            found: set[str] = set()
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and node.module and _ours(node.module):
                    found.add(node.module)
                    found.update(f"{node.module}.{a.name}" for a in node.names)
                elif isinstance(node, ast.Import):
                    found.update(a.name for a in node.names if _ours(a.name))
            graph[_module_name(path)] = found
    modules = set(graph)
    return {name: {m for m in deps if m in modules and m != name} for name, deps in graph.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """The first import cycle found, as the modules along it, or ``None``."""
    visiting: list[str] = []
    done: set[str] = set()

    def visit(name: str) -> list[str] | None:
        if name in done:
            return None
        if name in visiting:
            return [*visiting[visiting.index(name) :], name]
        visiting.append(name)
        for dep in sorted(graph[name]):
            # A package's own __init__ re-exports lazily and imports nothing at load.
            if dep not in PACKAGES and (found := visit(dep)) is not None:
                return found
        visiting.pop()
        done.add(name)
        return None

    for name in sorted(graph):
        if (found := visit(name)) is not None:
            return found
    return None


def _upward(graph: dict[str, set[str]]) -> list[str]:
    """``module -> imported`` for every import of a package above the importer's."""
    return sorted(
        f"{module} -> {dep}"
        for module, deps in graph.items()
        for dep in deps
        if dep.split(".", 1)[0] in ABOVE[module.split(".", 1)[0]]
    )


def test_no_import_cycle() -> None:
    cycle = _cycle(_imports())
    assert cycle is None, " -> ".join(cycle or [])


def test_no_package_imports_a_layer_above_it() -> None:
    assert _upward(_imports()) == []


def test_lower_layers_do_not_import_upper_ones() -> None:
    graph = _imports()
    for module, forbidden in BELOW.items():
        bad = sorted(d for d in graph[module] if d.startswith(forbidden) and d != module)
        assert not bad, f"{module} imports {bad}"


def test_the_guard_sees_real_edges() -> None:
    # The checks above would pass on a graph with no edges at all.
    graph = _imports()
    assert "service.runtime" in graph["service.dataplane"]
    assert "service.dataplane" in graph["service.state"]
    assert "scripts.errors" in graph["scripts.commands.experiments"]
    assert "service.experiments.statistics" in graph["benchmarks.experiment_live"]


def test_the_guard_catches_a_cycle_and_an_upward_import() -> None:
    graph = {
        "scripts.commands.a": {"scripts.commands.b"},
        "scripts.commands.b": {"scripts.commands.a"},
        "benchmarks.x": {"scripts.errors"},
        "scripts.errors": set(),
    }
    assert _cycle(graph) == ["scripts.commands.a", "scripts.commands.b", "scripts.commands.a"]
    assert _upward(graph) == ["benchmarks.x -> scripts.errors"]
