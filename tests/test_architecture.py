"""The package's import graph, read with `ast` (nothing is imported): no import cycle between edgekit's modules.

Only module-level imports count (including those in `try:` blocks and class bodies, which run at import time);
imports inside functions are lazy and allowed (except across layers, below), and `if TYPE_CHECKING:` blocks never
run. `from edgekit.x import y`
where y is a submodule is an edge to edgekit.x.y, else to edgekit.x (edges to the packages a module sits in are not
drawn: Python has started those before the module runs)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "edgekit"

# Cycles allowed on purpose: frozenset of modules -> why it cannot be broken yet. Keep this empty if you can.
ALLOWED_CYCLES: dict[frozenset[str], str] = {}


def _modules(package: Path = PACKAGE) -> dict[str, tuple[Path, bool]]:
    """module name -> (file, is a package __init__)."""
    out = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
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


def import_graph(lazy: bool = False, package: Path = PACKAGE) -> dict[str, set[str]]:
    """module -> the edgekit modules it imports (module level only, unless `lazy`); `package` is the edgekit folder
    to read (a planted copy in the tests of this test)."""
    modules = _modules(package)
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


# -- layers -------------------------------------------------------------------------------------------------------
# The package's layers, lowest first (docs/design.md's data flow: records and engines, then the stages that make
# artifacts and scores, then measurement, then the report, then the command line). A module imports its own layer
# or lower ones; `edgekit` is the package's own __init__.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("foundation", ("edgekit", "errors", "files", "host", "paths", "lifecycle", "migrations", "formats", "specs", "plugins", "runlog")),
    ("records and engines", ("store", "runtime", "metrics", "zoo")),
    ("stages", ("modelsource", "export", "evalsuite")),
    ("measurement", ("bench", "targets", "profile", "study", "farm")),
    ("report", ("report",)),
    ("commands", ("commands",)),
    ("cli", ("cli",)),
)

# Lazy (function-level) imports that reach up a layer, by package pair -> why. Module-level imports never may.
ALLOWED_LAZY_UPWARD: dict[tuple[str, str], str] = {
    ("export", "targets"): "export.calibration reads a target profile for its calibration defaults",
}


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "edgekit"


def layer_of(module: str) -> int:
    top = _top(module)
    for i, (_, members) in enumerate(LAYERS):
        if top in members:
            return i
    raise AssertionError(f"{module} is in no layer: add {top!r} to LAYERS in tests/test_architecture.py")


def upward_imports(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """(importer, imported) pairs where the imported module sits in a higher layer than its importer."""
    return sorted((a, b) for a, deps in graph.items() for b in deps if layer_of(b) > layer_of(a))


def _show(edges: list[tuple[str, str]]) -> str:
    return "\n".join(f"  {a} ({LAYERS[layer_of(a)][0]}) -> {b} ({LAYERS[layer_of(b)][0]})" for a, b in edges)


def test_every_module_is_in_a_layer():
    for module in import_graph():
        layer_of(module)


def test_no_module_level_import_reaches_a_higher_layer():
    found = upward_imports(import_graph())
    assert not found, "imports from a lower layer to a higher one (move the code, or import lazily with a " \
                      "reason in ALLOWED_LAZY_UPWARD):\n" + _show(found)


def test_lazy_imports_reach_up_only_where_allowed():
    found = upward_imports(import_graph(lazy=True))
    pairs = {(_top(a), _top(b)) for a, b in found}
    unexplained = [(a, b) for a, b in found if (_top(a), _top(b)) not in ALLOWED_LAZY_UPWARD]
    assert not unexplained, "lazy imports from a lower layer to a higher one:\n" + _show(unexplained)
    assert not any(layer_of(b) >= layer_of("edgekit.commands") for _, b in found), "the library imports the CLI"
    stale = sorted(set(ALLOWED_LAZY_UPWARD) - pairs)
    assert not stale, f"ALLOWED_LAZY_UPWARD entries no longer needed, remove them: {stale}"


def test_the_layer_check_catches_a_planted_upward_import(tmp_path):
    """Plant an upward import in a copy of the package: the checks above must see it."""
    import shutil

    copy = tmp_path / "edgekit"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "data"))
    errors = copy / "errors.py"
    errors.write_text(errors.read_text() + "\nfrom edgekit.report.fmt import num  # planted\n")
    store = copy / "store.py"
    store.write_text(store.read_text() + "\n\ndef _planted():\n    from edgekit.commands import common\n")
    assert upward_imports(import_graph(package=copy)) == [("edgekit.errors", "edgekit.report.fmt")]
    lazy = upward_imports(import_graph(lazy=True, package=copy))
    assert ("edgekit.store", "edgekit.commands.common") in lazy
    assert ("edgekit.store", "edgekit.commands.common") not in upward_imports(import_graph(lazy=True))


# -- one set of number formatters ---------------------------------------------------------------------------------

def test_commands_format_figures_through_report_fmt():
    """edgekit/commands/* define no number formatter of their own and write no significant-figure format spec
    (`{x:.3g}`): figures go through edgekit/report/fmt.py (sig, fixed, si, pct, num), one place for all views."""
    import re

    spec = re.compile(r"^[+]?\.\d+[gG]$|^[+]?\.[2-9]f$")
    offenders = []
    for path in sorted((PACKAGE / "commands").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and re.fullmatch(r"_?(fmt\w*|human|med|pct)", node.name):
                body = [n for n in node.body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
                delegates = len(body) == 2 and isinstance(body[0], ast.ImportFrom) and \
                    body[0].module == "edgekit.report.fmt"
                if not delegates:
                    offenders.append(f"{path.name}:{node.lineno} def {node.name}")
            if isinstance(node, ast.FormattedValue) and isinstance(node.format_spec, ast.JoinedStr):
                text = "".join(v.value for v in node.format_spec.values if isinstance(v, ast.Constant))
                if spec.match(text):
                    offenders.append(f"{path.name}:{node.lineno} {{...:{text}}}")
    assert not offenders, "number formatting in edgekit/commands (use edgekit.report.fmt):\n" + "\n".join(offenders)


def test_cli_figures():
    from edgekit.report import fmt

    assert fmt.sig(None) == "—" and fmt.sig(12.345) == "12.3" and fmt.sig(1234.5) == "1234"
    assert fmt.sig(999.7) == "1000" and fmt.sig(0.0001234) == "0.000123" and fmt.sig(38.4, 4, "GB/s") == "38.4 GB/s"
    assert fmt.fixed(0.5) == "0.500" and fmt.fixed(0.00012) == "0.00012" and fmt.fixed(None) == "—"
    assert fmt.si(1_234_567) == "1.23 M" and fmt.si(999) == "999" and fmt.si(2_000, "B") == "2.00 kB"
    assert fmt.pct(0.031) == "+3.1%" and fmt.pct(None) == "—"
