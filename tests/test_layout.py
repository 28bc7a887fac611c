"""The package's module graph: no import circle, function-local imports included.

A circle hidden by imports inside functions (``_base -> _io -> _logistic -> _base``
was one) makes a module impossible to read or test alone; this walks every
relative import in the source, wherever it stands, and fails on any circle.
"""

import ast
from pathlib import Path

import torchlogit

ROOT = Path(torchlogit.__file__).parent


def _modules():
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = ("torchlogit", *path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imports(name, path, modules):
    """The modules of torchlogit that ``name`` imports anywhere in its source."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if not (isinstance(node, ast.ImportFrom) and node.level):
            continue
        base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
        for alias in node.names:
            target = f"{base}.{alias.name}"
            out.add(target if target in modules else base)
    return {m for m in out if m in modules and m != name}


def _circles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
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
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_circles():
    modules = _modules()
    # the package's lazy __init__ names every export: it is the top, not part of a circle
    graph = {m: _imports(m, p, modules) - {"torchlogit"} for m, p in modules.items()}
    assert _circles(graph) == []


def test_the_circle_finder_finds_a_circle():
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_model_files_know_formats_not_estimators():
    modules = _modules()
    imported = _imports("torchlogit._io", modules["torchlogit._io"], modules)
    assert not imported & {"torchlogit._logistic", "torchlogit._linear", "torchlogit._base"}
