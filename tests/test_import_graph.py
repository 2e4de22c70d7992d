"""The package's import graph: no cycle, and packages that point one way.

Every module of ``sense_plugin`` is read, every import of another of its modules (also those
under ``TYPE_CHECKING`` and inside functions) is an edge. No set of modules may reach each
other, and a package imports only packages of its own layer or below (the layers are listed
in ``LAYERS`` and drawn in the README's architecture).
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import sense_plugin

PACKAGE = Path(sense_plugin.__file__).parent


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that ``path`` imports (a package's own ``__init__`` edges too)."""
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets.update(a.name for a in node.names if a.name in modules)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                if submodule in modules:
                    targets.add(submodule)
                elif node.module in modules:
                    targets.add(node.module)
    return targets


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


#: Lowest first. Modules directly in ``sense_plugin/`` are the base layer; ``__main__`` is the
#: entry point, the one module that imports ``cli``.
LAYERS = ("base", "media", "archive", "export", "cluster", "api", "client", "cli_commands",
          "cli")


def _layer(module: str) -> str:
    parts = module.split(".")
    if module == "sense_plugin.__main__":
        return "cli"
    if len(parts) > 2 or (len(parts) == 2 and parts[1] in LAYERS):
        return parts[1]
    return "base"


def _upward(graph: dict[str, set[str]]) -> list[str]:
    """The edges that point from a lower layer to a higher one."""
    rank = {name: i for i, name in enumerate(LAYERS)}
    return sorted(f"{source} -> {target}" for source, targets in graph.items()
                  for target in targets if rank[_layer(target)] > rank[_layer(source)])


def test_packages_import_only_their_own_layer_or_below() -> None:
    modules = _modules()
    assert all(_layer(name) in LAYERS for name in modules), "a package has no layer"
    graph = {name: _imports(path, modules) - {name} for name, path in modules.items()}
    assert _upward(graph) == []


def test_the_layer_rule_finds_an_upward_import() -> None:
    graph = {"sense_plugin.media.cutter": {"sense_plugin.export.model"},
             "sense_plugin.export.model": {"sense_plugin.ids"}}
    assert _upward(graph) == ["sense_plugin.media.cutter -> sense_plugin.export.model"]


def test_no_import_cycle_in_the_package() -> None:
    modules = _modules()
    graph = {name: _imports(path, modules) - {name} for name, path in modules.items()}
    assert len(graph) > 100  # the walk found the package
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("name", sorted(_modules()))
def test_every_module_imports_on_its_own(name: str) -> None:
    importlib.import_module(name)
