"""The service's imports form no cycle, and lower layers never import the layers above them."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "service"

# Modules that must not import these (they sit below them).
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


def _imports() -> dict[str, set[str]]:
    """Every service module and the service modules it imports, at any depth in its body."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        name = _module_name(path)
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.startswith("service")
            ):
                found.add(node.module)
                found.update(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("service"))
        graph[name] = found
    modules = set(graph)
    return {name: {m for m in deps if m in modules and m != name} for name, deps in graph.items()}


def test_no_import_cycle() -> None:
    graph = _imports()
    # Packages' __init__ re-export lazily; a cycle through one is still a cycle.
    visiting: list[str] = []
    done: set[str] = set()

    def visit(name: str) -> None:
        if name in done:
            return
        assert name not in visiting, " -> ".join([*visiting[visiting.index(name) :], name])
        visiting.append(name)
        for dep in sorted(graph[name]):
            if dep != "service":  # the package's lazy __getattr__ imports nothing at load
                visit(dep)
        visiting.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)


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
