"""The package's rooms stay as the README's Layout draws them: no import cycles, small modules, and the
benchmarks beside the library (only the command line reaches them)."""
import ast
import os

import pytest

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "paddle_cls")


def _modules():
    found = {}
    for folder, _, names in os.walk(PACKAGE):
        for name in names:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                dotted = os.path.relpath(path, os.path.dirname(PACKAGE))[:-3].replace(os.sep, ".")
                found[dotted[:-len(".__init__")] if dotted.endswith(".__init__") else dotted] = path
    return found


def _imports(module, path, modules):
    """The package's modules that `module` imports, at the top or inside functions."""
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        if isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            target = (f"{base}.{node.module}" if node.module else base) if node.level else node.module
            for alias in node.names:
                name = f"{target}.{alias.name}"
                yield name if name in modules else target
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


def _cycle(graph):
    state = {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in graph[node]:
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt, stack + [nxt])
                if found:
                    return found
        state[node] = "done"
        return None

    for node in graph:
        if node not in state:
            found = visit(node, [node])
            if found:
                return found
    return None


def test_no_import_cycles_between_modules():
    modules = _modules()
    # A package's __init__ only re-exports; a module reaching its own package's names goes through it.
    graph = {m: {t for t in _imports(m, p, modules) if t in modules and t != m and not m.startswith(t + ".")}
             for m, p in modules.items()}
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("module", sorted(_modules()))
def test_modules_stay_small(module):
    lines = sum(1 for _ in open(_modules()[module], encoding="utf-8"))
    assert lines <= 300, f"{module} has {lines} lines: split it by job"


def test_the_library_never_imports_the_benchmarks():
    modules = _modules()
    users = sorted(m for m, p in modules.items() if not m.startswith("paddle_cls.benchmarks") and m != "paddle_cls.cli"
                   and any(t.startswith("paddle_cls.benchmarks") for t in _imports(m, p, modules)))
    assert "paddle_cls.benchmarks" in modules and users == []
    assert os.path.isfile(os.path.join(os.path.dirname(PACKAGE), "tools", "benchmark.py"))
