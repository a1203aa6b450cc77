"""The import graph of the package: no cycle, imports run down the layers, and no function-local import of the
package outside the command line (where it keeps `marlbench --help` from importing torch)."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# source folder -> the package it is installed as (setup.cfg package_dir)
FOLDERS = {"marlbench": "marlbench", "algorithms": "marlbench.algorithms", "baselines": "marlbench.baselines",
           "analysis": "marlbench.analysis"}
LOWER = ("marlbench.envs", "marlbench.data", "marlbench.behaviour")
UPPER = ("marlbench.cli", "marlbench.sweep", "marlbench.tuning", "marlbench.executors", "marlbench.protocol",
         "marlbench.catalog", "marlbench.analysis", "marlbench.families")
LAZY_IMPORTS_ALLOWED = {"marlbench.cli"}  # the package's __init__: `marlbench --help` must not import torch


def _modules() -> dict[str, Path]:
    out = {}
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join([package, *parts])] = path
    return out


def _imports(path: Path, modules: dict[str, Path]) -> list[tuple[str, int, bool]]:
    """(imported module, line, inside a function) for every import of a package module in ``path``."""
    tree = ast.parse(path.read_text())
    local = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
             for n in ast.walk(f)}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # `from pkg import mod` imports pkg.mod when that is a module, else names from pkg
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                     for a in node.names]
        else:
            continue
        for name in names:
            while name not in modules and "." in name:  # a name inside a module
                name = name.rsplit(".", 1)[0]
            if name in modules and name != "marlbench":
                out.append((name, node.lineno, id(node) in local))
    return out


def _graph() -> tuple[dict[str, set[str]], dict[str, list]]:
    modules = _modules()
    imports = {m: _imports(p, modules) for m, p in modules.items()}
    return {m: {t for t, _, _ in imps if t != m} for m, imps in imports.items()}, imports


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_import_graph_has_no_cycle():
    graph, _ = _graph()
    assert len(graph) > 60  # the walk found the package
    assert _cycles(graph) == []


def test_the_cycle_check_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_envs_data_and_behaviour_import_nothing_above_them():
    graph, _ = _graph()
    upward = [f"{m} -> {t}" for m, targets in graph.items() if m.startswith(LOWER)
              for t in targets if t.startswith(UPPER)]
    assert upward == []


def test_no_function_local_import_of_the_package_outside_the_cli():
    _, imports = _graph()
    local = [f"{m}:{line} imports {t}" for m, imps in imports.items() if m not in LAZY_IMPORTS_ALLOWED
             for t, line, inside in imps if inside]
    assert local == []
