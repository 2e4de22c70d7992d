"""The package's import graph: no cycle, and packages that point one way.

Every module of ``sense_plugin`` is read, every import of another of its modules (also those
under ``TYPE_CHECKING`` and inside functions) is an edge. No set of modules may reach each
other, and a package imports only packages of its own layer or below (the layers are listed
in ``LAYERS`` and drawn in the README's architecture). ``sense_plugin.testing``, the harness of
tests and benchmarks, is the top layer: nothing of the server imports it. The benchmarks in
``bench/`` import the package and the harness, never ``tests/``.
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
#: entry point, the one module that imports ``cli``; ``testing`` (the harness of tests and
#: benchmarks) sits above it, so only the harness imports the harness.
LAYERS = ("base", "media", "archive", "export", "cluster", "api", "client", "cli_commands",
          "cli", "testing")


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


def test_the_layer_rule_keeps_the_harness_out_of_the_server() -> None:
    graph = {"sense_plugin.cli": {"sense_plugin.testing.serverprocess"},
             "sense_plugin.testing.siteservers": {"sense_plugin.testing.serverprocess",
                                                  "sense_plugin.config"}}
    assert _upward(graph) == ["sense_plugin.cli -> sense_plugin.testing.serverprocess"]


BENCH = PACKAGE.parent / "bench"
TESTS = PACKAGE.parent / "tests"


def _imports_of_tests(path: Path, test_modules: set[str]) -> list[str]:
    """The imports in ``path`` of ``tests`` or of a module of ``tests/`` by its own name (as
    the tests' directory on ``sys.path`` would allow), with their line numbers."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            top = name.split(".")[0]
            if top == "tests" or top in test_modules:
                found.append(f"{path.name}:{node.lineno}: {name}")
    return found


def test_the_benchmarks_do_not_import_the_tests() -> None:
    test_modules = {path.stem for path in TESTS.glob("*.py")} - {"__init__"}
    benches = sorted(BENCH.glob("*.py"))
    assert len(benches) > 20 and len(test_modules) > 20  # both directories were found
    assert [hit for path in benches for hit in _imports_of_tests(path, test_modules)] == []


def test_the_bench_check_finds_an_import_of_the_tests(tmp_path: Path) -> None:
    bench = tmp_path / "bench_x.py"
    bench.write_text("import json\nfrom tests.pgserver import PgServer\nimport apiclient\n"
                     "from sense_plugin.testing.postgres import running_pg\n")
    assert _imports_of_tests(bench, {"apiclient", "conftest"}) == [
        "bench_x.py:2: tests.pgserver", "bench_x.py:3: apiclient"]


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
