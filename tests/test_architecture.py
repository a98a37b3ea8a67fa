"""The package's import graph, read with `ast` (nothing is imported): no import cycle between edgekit's modules.

Only module-level imports count (including those in `try:` blocks and class bodies, which run at import time);
imports inside functions are lazy and allowed, and `if TYPE_CHECKING:` blocks never run. `from edgekit.x import y`
where y is a submodule is an edge to edgekit.x.y, else to edgekit.x (edges to the packages a module sits in are not
drawn: Python has started those before the module runs)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "edgekit"

# Cycles allowed on purpose: frozenset of modules -> why it cannot be broken yet. Keep this empty if you can.
ALLOWED_CYCLES: dict[frozenset[str], str] = {}


def _modules() -> dict[str, tuple[Path, bool]]:
    """module name -> (file, is a package __init__)."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (path, is_pkg)
    return out


def _owner(name: str, modules: dict[str, tuple[Path, bool]]) -> str | None:
    """The module a dotted name lives in: the name itself, else its nearest enclosing module."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _is_type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def import_graph(lazy: bool = False) -> dict[str, set[str]]:
    """module -> the edgekit modules it imports (module level only, unless `lazy`)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, (path, is_pkg) in modules.items():
        package = name if is_pkg else name.rpartition(".")[0]
        deps: set[str | None] = set()

        def visit(node: ast.AST, package: str = package, deps: set[str | None] = deps) -> None:
            if not lazy and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                return
            if _is_type_checking(node):
                return
            if isinstance(node, ast.Import):
                deps.update(_owner(a.name, modules) for a in node.names if a.name.split(".")[0] == "edgekit")
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join([*base, node.module] if node.module else base)
                else:
                    target = node.module or ""
                if target.split(".")[0] == "edgekit":
                    for a in node.names:
                        sub = f"{target}.{a.name}"
                        deps.add(sub if sub in modules else _owner(target, modules))
            for child in ast.iter_child_nodes(node):
                visit(child)

        for stmt in ast.parse(path.read_text(encoding="utf-8")).body:
            visit(stmt)
        deps.discard(None)
        deps.discard(name)
        graph[name] = {d for d in deps if d is not None}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = set()
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    comp.add(top)
                    if top == node:
                        break
                if len(comp) > 1:
                    found.append(frozenset(comp))
    return found


def _describe(cycle: frozenset[str], graph: dict[str, set[str]]) -> str:
    edges = [f"{a} -> {b}" for a in sorted(cycle) for b in sorted(graph[a]) if b in cycle]
    return "{" + ", ".join(sorted(cycle)) + "}: " + "; ".join(edges)


def test_the_walker_sees_imports_and_cycles():
    """The walker itself: it finds known edges, and a cycle in a made-up graph."""
    graph = import_graph()
    assert "edgekit.errors" in graph["edgekit.specs"] and "edgekit.paths" in graph["edgekit.specs"]
    assert "edgekit.commands.common" in graph["edgekit.commands.bench"]
    assert "edgekit.commands.targets" not in graph["edgekit.commands.bench"]  # lazy, inside bench_cmd
    assert "edgekit.commands.targets" in import_graph(lazy=True)["edgekit.commands.bench"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [frozenset("abc")]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_between_edgekit_modules():
    graph = import_graph()
    found = [c for c in cycles(graph) if c not in ALLOWED_CYCLES]
    assert not found, "import cycles (break them, or allow-list with a reason):\n" + "\n".join(
        _describe(c, graph) for c in found)
    stale = [sorted(c) for c in ALLOWED_CYCLES if c not in cycles(graph)]
    assert not stale, f"allow-listed cycles that no longer exist, remove them: {stale}"


def test_commands_do_not_import_each_other_in_a_circle():
    """The CLI modules are a thin layer: even counting lazy imports, no two of them import each other (shared
    rendering lives in commands/render.py, `runs` in commands/runs.py)."""
    graph = import_graph(lazy=True)
    commands = {m: {d for d in deps if d.startswith("edgekit.commands.")}
                for m, deps in graph.items() if m.startswith("edgekit.commands.")}
    assert cycles(commands) == []
