"""The package graph reads top-down: no cnnjax module imports one that (directly or not) imports it back,
and every subpackage imports on its own in a fresh interpreter.

An edge is an explicit import wherever it stands (module level or inside a function: a lazy import that
closes a cycle is still a cycle). `from pkg import name` is an edge to `pkg.name` when that is a module,
else to `pkg` itself (the names come from its `__init__`).
"""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "cnnjax"


def _module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, pathlib.Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(name: str, path: pathlib.Path, modules: dict[str, pathlib.Path]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    edges = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            edges |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                edges.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return {e for e in edges if e in modules and e != name}


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_among_cnnjax_modules():
    graph = import_graph()
    assert len(graph) > 40 and "cnnjax.sharding" in graph["cnnjax.data.pipeline"]
    assert cycles(graph) == []


SUBPACKAGES = sorted(name for name, path in _modules().items() if path.name == "__init__.py")


@pytest.mark.parametrize("package", SUBPACKAGES)
def test_each_subpackage_imports_alone(package):
    result = subprocess.run([sys.executable, "-c", f"import {package}"], capture_output=True, text=True,
                            timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]


# What the entry scripts import before `jax.distributed.initialize()`, which must come before anything starts
# a JAX backend (a module-level jnp array would): multi-process runs fail at launch otherwise.
ENTRY_IMPORTS = ("cnnjax.train.loop", "cnnjax.train.seeds", "cnnjax.train.boosting", "cnnjax.evaluate.run",
                 "cnnjax.ensemble.run", "cnnjax.sweep", "cnnjax.cli", "cnnjax.transfer.features", "cnnjax.visualize")


def test_importing_the_library_starts_no_jax_backend():
    code = (f"import {', '.join(ENTRY_IMPORTS)}, socket, jax\n"
            "s = socket.socket(); s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]; s.close()\n"
            "jax.distributed.initialize(coordinator_address=f'127.0.0.1:{port}', num_processes=1, process_id=0)\n"
            "jax.distributed.shutdown()\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT,
                            env={**__import__("os").environ, "JAX_PLATFORMS": "cpu"})
    assert result.returncode == 0, result.stderr[-2000:]
