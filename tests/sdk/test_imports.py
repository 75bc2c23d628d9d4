"""The SDK's modules import each other without cycles (every import counts: module-level,
inside functions and under ``TYPE_CHECKING``), and its public modules stay light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import uptake

_ROOT = Path(uptake.__file__).parent


def _module_name(path: Path) -> str:
    parts = ["uptake", *path.relative_to(_ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(path): path for path in _ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                edges.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                edges.add(node.module)
                edges.update(f"{node.module}.{alias.name}" for alias in node.names)
        # A package's __init__ is imported with each of its modules; uptake/__init__
        # imports nothing itself (names load on first use), so it is no edge.
        graph[name] = {edge for edge in edges if edge in modules and edge not in {name, "uptake"}}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                found.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_the_sdk_has_no_import_cycles() -> None:
    graph = _graph()
    assert {"uptake._tracker", "uptake._processor", "uptake.client"} <= set(graph)
    assert _cycles(graph) == []


def test_the_daemon_client_loads_neither_the_tracker_nor_its_worker() -> None:
    code = (
        "import sys, uptake.client\n"
        "heavy = {'uptake._tracker', 'uptake._processor', 'uptake._spool', 'platformdirs'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"
