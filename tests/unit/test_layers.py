"""Imports only go down: wire formats -> topology model -> controllers and services ->
emulation -> CLI (as faucet's valve_util -> valve_of -> valve_packet -> managers -> valve).

Every import in the tree, at module level or inside a function, is checked: a package
may import its own modules and those of lower layers, never a higher layer or a sibling
of its own layer (controllers and services share one layer and know nothing of each
other). Modules must not import each other in a circle either.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAYERS = {"wire": 0, "topologies": 1, "controllers": 2, "services": 2, "emulation": 3,
          "infralab": 4, "bench": 5, "tests": 6}


def _modules() -> dict[str, Path]:
    out = {}
    for top in LAYERS:
        for path in (ROOT / top).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path, known: dict[str, Path]) -> list[tuple[str, int]]:
    """(imported project module, line) for every import statement of one module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[str, int]] = []
    tree = ast.parse(path.read_text(), str(path))
    typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                   and ast.unparse(block.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")
                   for stmt in block.body for n in ast.walk(stmt)}
    for node in ast.walk(tree):
        if id(node) in typing_only:  # (for the type checker only: no import at run time)
            continue
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")
                up = up[:len(up) - (node.level - 1)]
                base = ".".join(up + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base
                       for a in node.names]
        for t in targets:
            while t and t not in known:  # `import a.b.c` of a name inside a module
                t = t.rpartition(".")[0]
            if t:
                found.append((t, node.lineno))
    return found


def _graph() -> tuple[dict[str, Path], dict[str, list[tuple[str, int]]]]:
    known = _modules()
    return known, {m: _imports(m, p, known) for m, p in known.items()}


def test_imports_only_go_down() -> None:
    known, graph = _graph()
    wrong = []
    for mod, imports in graph.items():
        top = mod.split(".")[0]
        for target, line in imports:
            ttop = target.split(".")[0]
            if ttop != top and LAYERS[ttop] >= LAYERS[top]:
                wrong.append(f"{known[mod].relative_to(ROOT)}:{line}: {mod} imports {target} "
                             f"(layer {LAYERS[ttop]} from layer {LAYERS[top]})")
    assert not wrong, "imports that go up or sideways:\n" + "\n".join(wrong)


def test_no_import_cycles() -> None:
    known, graph = _graph()
    edges = {m: sorted({t for t, _ in imps if t != m and not m.startswith(t + ".")})
             for m, imps in graph.items()}  # (a package's own __init__ is not a cycle)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in edges:
        if v not in index:
            visit(v)
    assert not cycles, f"modules importing each other in a circle: {cycles}"


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    """The rule is only worth its name if it can fail: an upward import is reported."""
    known = {"wire": tmp_path, "wire.frames": tmp_path / "f.py", "emulation": tmp_path,
             "emulation.build": tmp_path / "b.py"}
    src = tmp_path / "f.py"
    src.write_text("from emulation.build import x\nfrom . import frames\n")
    assert _imports("wire.frames", src, known) == [("emulation.build", 1), ("wire.frames", 2)]
