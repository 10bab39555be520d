"""The layers, read from the code's imports (every import: top-level, inside functions, under TYPE_CHECKING):

    modelsvc.catalog                      the floor: parsing, rules, names, capacity, keys, examples, edits
    modelsvc.review                       stands on the catalog
    gateway | infra                       stand on the catalog (the gateway also on the review: the console's
                                          actions ask it which confirmations a change needs), never on each other
    modelsvc.cli                          the top: the commands, over all of the above
    devtools, bench                       development tools: never imported by anything shipped

An arrow that runs back up, or two modules that import each other (directly or round a loop), fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

# package → the packages (prefixes) its modules may import, besides itself
ALLOWED = {
    "modelsvc": (),  # the package itself: empty
    "modelsvc.catalog": (),
    "gateway": ("modelsvc.catalog", "modelsvc.review"),  # the console's actions ask the review for confirmations
    "infra": ("modelsvc.catalog",),
    "modelsvc.review": ("modelsvc.catalog",),
    "modelsvc.cli": ("modelsvc.catalog", "modelsvc.review", "gateway", "infra"),
    "devtools": ("modelsvc", "gateway", "infra", "devtools"),
    "bench": ("modelsvc", "gateway", "infra", "devtools"),
}
OURS = ("modelsvc", "gateway", "infra", "devtools", "bench", "tests")
SHIPPED = ("modelsvc", "gateway", "infra")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    out = {}
    for top in ("modelsvc", "gateway", "infra", "devtools", "bench"):
        for p in (ROOT / top).rglob("*.py"):
            if any(part.startswith(".") for part in p.relative_to(ROOT).parts):
                continue  # installs beside the code (the bench's peers: bench/.venv-litellm), not modules of ours
            out[_module_name(p)] = p
    return out


def _imports(name: str, path: Path) -> list[tuple[str, int]]:
    """(imported module, line) for every import of ours in the file, relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((target, node.lineno))
            # `from pkg import module` imports that module too
            found += [(f"{target}.{a.name}", node.lineno) for a in node.names]
    return [(t, line) for t, line in found if t.split(".")[0] in OURS]


def _layer(name: str) -> str | None:
    return max((layer for layer in ALLOWED if name == layer or name.startswith(layer + ".")), key=len, default=None)


def _resolve(target: str, modules: dict[str, Path]) -> str | None:
    """The module an import names (the longest existing prefix: `from a.b import name` names a.b)."""
    while target and target not in modules:
        target = target.rpartition(".")[0]
    return target or None


def test_no_import_runs_back_up_the_layers():
    modules = _modules()
    bad = []
    for name, path in sorted(modules.items()):
        layer = _layer(name)
        assert layer is not None, f"{name} belongs to no layer: add its package to ALLOWED"
        for target, line in _imports(name, path):
            if target.split(".")[0] == "tests":
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {target} (tests are not code)")
                continue
            if _layer(target) == layer:
                continue
            if not any(target == a or target.startswith(a + ".") for a in ALLOWED[layer]):
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {target} ({layer} may import only "
                           f"{', '.join(ALLOWED[layer]) or 'itself'})")  # fmt: skip
    assert not bad, "imports against the layers:\n" + "\n".join(bad)


def test_nothing_shipped_imports_a_development_tool():
    modules = _modules()
    bad = [
        f"{path.relative_to(ROOT)}:{line} imports {target}"
        for name, path in modules.items()
        if name.split(".")[0] in SHIPPED
        for target, line in _imports(name, path)
        if target.split(".")[0] in ("devtools", "bench", "tests")
    ]
    assert not bad, "\n".join(bad)


def test_no_circular_imports():
    """No two modules import each other, directly or round a longer loop (Tarjan's strongly connected components);
    a package's __init__ re-exporting its own submodules is the one allowed loop (submodule → package → submodule)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges = set()
        for target, _ in _imports(name, path):
            t = _resolve(target, modules)
            if t is not None and t != name and not name.startswith(t + "."):  # a submodule may use its package
                edges.add(t)
        graph[name] = edges
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    loops: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
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
                loops.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not loops, "modules that import each other:\n" + "\n".join(" ↔ ".join(c) for c in loops)


def test_the_layer_check_sees_imports_inside_functions(tmp_path):
    """The check reads every import, so a lazy one cannot hide an arrow."""
    p = ROOT / "gateway" / "_layer_probe.py"
    p.write_text("def f():\n    from infra.render import render\n")
    try:
        assert ("infra.render", 2) in _imports("gateway._layer_probe", p)
    finally:
        p.unlink()
