"""The house style that a linter does not check: typed public functions, and no private names reached across
modules (ruff, configured in pyproject.toml, checks the rest: `ruff check` in CI)."""
import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "paddle_cls")

# numpy's array reconstructor is what pickled arrays name: the restricted unpickler must admit that very object
PRIVATE_IMPORTS_ALLOWED = {("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "_reconstruct")}


def _python_files(*folders):
    for folder in folders:
        for where, _, names in os.walk(os.path.join(ROOT, folder)):
            yield from sorted(os.path.join(where, name) for name in names if name.endswith(".py"))


def _tree(path):
    return ast.parse(open(path, encoding="utf-8").read(), path)


def _public_functions(tree):
    """`(qualified name, node)` of the module's public functions and the public methods of its public classes."""
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"):
            yield node.name, node
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            for member in node.body:
                if isinstance(member, (ast.FunctionDef, ast.AsyncFunctionDef)) and not member.name.startswith("_"):
                    yield f"{node.name}.{member.name}", member


def _unannotated(function, method):
    """The names of `function`'s parameters without a type (and 'return' when it has no return type)."""
    arguments = function.args
    parameters = arguments.posonlyargs + arguments.args + arguments.kwonlyargs
    static = any(isinstance(d, ast.Name) and d.id == "staticmethod" for d in function.decorator_list)
    if method and not static and parameters:
        parameters = parameters[1:]  # self or cls
    parameters += [p for p in (arguments.vararg, arguments.kwarg) if p is not None]
    missing = [p.arg for p in parameters if p.annotation is None]
    return missing + (["return"] if function.returns is None else [])


def test_every_public_function_of_the_package_is_typed():
    untyped = []
    for path in _python_files("paddle_cls"):
        for name, function in _public_functions(_tree(path)):
            missing = _unannotated(function, "." in name)
            if missing:
                untyped.append(f"{os.path.relpath(path, ROOT)}:{function.lineno} {name} ({', '.join(missing)})")
    assert not untyped, "public functions need type hints on every parameter and the return:\n" + "\n".join(untyped)


def test_the_typing_check_sees_what_is_missing():
    tree = ast.parse("def f(a, b: int) -> int: ...\nclass C:\n    def m(self, x: int): ...\n"
                     "    def _private(self, y): ...\ndef _helper(z): ...\n")
    found = {name: _unannotated(node, "." in name) for name, node in _public_functions(tree)}
    assert found == {"f": ["a"], "C.m": ["return"]}


@pytest.mark.parametrize("folder", ["paddle_cls", "tools", "tests"])
def test_no_private_name_is_imported_from_another_module(folder):
    imported = []
    for path in _python_files(folder):
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    private = alias.name.startswith("_") and not alias.name.startswith("__")
                    if private and (node.module, alias.name) not in PRIVATE_IMPORTS_ALLOWED:
                        imported.append(f"{os.path.relpath(path, ROOT)}:{node.lineno} {node.module}.{alias.name}")
    assert not imported, "make these public in the module that owns them (or wrap them once):\n" + "\n".join(imported)


def test_paddles_private_thread_setting_is_reached_in_one_place():
    users = [os.path.relpath(path, ROOT) for path in _python_files("paddle_cls", "tools")
             if "core.set_num_threads" in open(path, encoding="utf-8").read()]
    assert users == [os.path.join("paddle_cls", "utils", "runtime.py")], users
