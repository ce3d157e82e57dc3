"""The package's layers hold: imports point downward, no cycles, upward hand-overs by name only.

The layers are read from the ``layers`` block of ``docs/ARCHITECTURE.md`` (top
to bottom), so the picture and the rule cannot drift apart. Every import
statement counts, function-local ones included. A lower layer may reach a
higher one only by resolving a name through the registry, and only where this
file allow-lists it: the contract's ``k.approximate()`` (through
``Kernel.approximation_class``) and ``k.to_gpytorch()`` / ``a.to_gpytorch()``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "kernelzoo"
ARCHITECTURE = ROOT / "docs" / "ARCHITECTURE.md"

#: (module, function) in a lower layer that may resolve a higher layer's name through
#: the registry: exactly the contract's hand-overs
ALLOWED_UPWARD = {
    ("kernelzoo.kernels.base", "Kernel.approximation_class"),  # k.approximate(method)
    ("kernelzoo.kernels.base", "Kernel.to_gpytorch"),
    ("kernelzoo.approx.base", "Approximation.to_gpytorch"),
}

#: registry functions and the layer (by a module there) whose names they resolve
_RESOLVERS = {
    "kernel": "kernelzoo.kernels.base",
    "kernel_class": "kernelzoo.kernels.base",
    "approximation_class": "kernelzoo.approx.base",
    "integration": "kernelzoo.integrations",
}
_TARGET = re.compile(r"^kernelzoo(\.\w+)+:\w+$")


def _modules() -> dict[str, Path]:
    mods = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


MODULES = _modules()


def _layers() -> list[tuple[str, list[str]]]:
    """``[(name, [module or package, ...]), ...]`` from the bottom up."""
    text = ARCHITECTURE.read_text()
    match = re.search(r"```layers\n(.*?)```", text, re.S)
    assert match, "docs/ARCHITECTURE.md has no ```layers block"
    layers = []
    for line in match.group(1).splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, *entries = line.split()
            layers.append((name, entries))
    return layers[::-1]


LAYERS = _layers()


def layer_of(module: str) -> int:
    """Index of the module's layer (0: the bottom); the longest matching entry wins.

    The root package ``kernelzoo`` (its ``__init__``) matches only itself.
    """
    best, best_len = None, -1
    for index, (_, entries) in enumerate(LAYERS):
        for entry in entries:
            hit = module == entry or (entry != "kernelzoo" and module.startswith(entry + "."))
            if hit and len(entry) > best_len:
                best, best_len = index, len(entry)
    if best is None:
        raise AssertionError(f"{module} is in no layer of docs/ARCHITECTURE.md")
    return best


def _resolve(name: str) -> str:
    """The kernelzoo module an import of ``name`` loads (a module, else its package)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def _imports(module: str) -> list[tuple[str, int]]:
    """``(imported kernelzoo module, line)`` for every import statement, anywhere in the file."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(_resolve(a.name), node.lineno) for a in node.names
                      if a.name.split(".")[0] == "kernelzoo"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            if name.split(".")[0] != "kernelzoo":
                continue
            for alias in node.names:  # `from pkg import module` imports the module
                full = f"{name}.{alias.name}"
                found.append((full if full in MODULES else _resolve(name), node.lineno))
    return found


def _graph() -> dict[str, set[str]]:
    return {m: {t for t, _ in _imports(m) if t != m} for m in MODULES}


def test_every_module_has_a_layer():
    for module in MODULES:
        layer_of(module)
    assert [name for name, _ in LAYERS][0] == "core"


def test_imports_point_downward():
    upward = []
    for module in MODULES:
        for target, line in _imports(module):
            if layer_of(target) > layer_of(module):
                upward.append(f"{MODULES[module].relative_to(ROOT)}:{line}: {module} "
                              f"({LAYERS[layer_of(module)][0]}) imports {target} "
                              f"({LAYERS[layer_of(target)][0]})")
    assert not upward, "imports from a lower layer to a higher one:\n" + "\n".join(upward)


def test_no_import_cycles():
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    assert not cycles, f"import cycles: {cycles}"


class _Resolutions(ast.NodeVisitor):
    """Calls that resolve a name through the registry: ``(function, target module)``."""

    def __init__(self, module: str) -> None:
        self.module = module
        self.scope: list[str] = []
        self.registry_names = {"registry"} if module != "kernelzoo.registry" else set()
        self.functions: dict[str, str] = {}  # local name -> registry function
        self.found: list[tuple[str, str, int]] = []

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module == "kernelzoo.registry":
            for alias in node.names:
                self.functions[alias.asname or alias.name] = alias.name
        if node.module == "kernelzoo":
            for alias in node.names:
                if alias.name == "registry":
                    self.registry_names.add(alias.asname or "registry")

    def _scoped(self, node, name: str) -> None:
        self.scope.append(name)
        self.generic_visit(node)
        self.scope.pop()

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._scoped(node, node.name)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._scoped(node, node.name)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = None
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            if func.value.id in self.registry_names:
                name = func.attr
        elif isinstance(func, ast.Name) and func.id in self.functions:
            name = self.functions[func.id]
        if name is not None:
            self.found.append((".".join(self.scope), self._target(name, node), node.lineno))
        self.generic_visit(node)

    @staticmethod
    def _target(name: str, node: ast.Call) -> str:
        if name in _RESOLVERS:
            return _RESOLVERS[name]
        if name != "resolve" or not node.args:
            return "kernelzoo.registry"  # parse_spec, available: no name resolved
        arg = node.args[0]
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            return arg.value.partition(":")[0]
        if isinstance(arg, ast.Subscript) and isinstance(arg.value, ast.Attribute):
            table = arg.value.attr
            return {"METHODS": "kernelzoo.approx.base", "FAMILIES": "kernelzoo.kernels.base",
                    "INTEGRATIONS": "kernelzoo.integrations"}.get(table, "?")
        return "?"  # a name only known at run time


def test_upward_hand_overs_are_only_the_allow_listed_registry_resolutions():
    seen, unexpected = set(), []
    for module in MODULES:
        visitor = _Resolutions(module)
        visitor.visit(ast.parse(MODULES[module].read_text()))
        for function, target, line in visitor.found:
            if target == "?":
                unexpected.append(f"{module}:{line} {function}: resolves a name known at run "
                                  f"time; resolve it from a registry table")
                continue
            if layer_of(_resolve(target)) <= layer_of(module):
                continue
            if (module, function) in ALLOWED_UPWARD:
                seen.add((module, function))
            else:
                unexpected.append(f"{module}:{line} {function}: resolves {target} (a higher "
                                  f"layer) through the registry")
    assert not unexpected, "\n".join(unexpected)
    assert seen == ALLOWED_UPWARD  # the allow-list holds nothing stale


def test_only_the_registry_names_modules():
    """``"kernelzoo.module:attr"`` strings live in the registry's tables and nowhere else."""
    named = []
    for module, path in MODULES.items():
        if module == "kernelzoo.registry":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                    _TARGET.match(node.value):
                named.append(f"{module}:{node.lineno}: {node.value}")
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                if "importlib" in names:
                    named.append(f"{module}:{node.lineno}: imports importlib")
    assert not named, "\n".join(named)


def test_registry_targets_exist_in_their_layers():
    from kernelzoo import registry

    for table, layer_module in ((registry.FAMILIES, "kernelzoo.kernels.base"),
                                (registry.METHODS, "kernelzoo.approx.base"),
                                (registry.INTEGRATIONS, "kernelzoo.integrations")):
        for target in table.values():
            module = target.partition(":")[0]
            assert module in MODULES, target
            assert layer_of(module) == layer_of(layer_module), target
            assert registry.resolve(target) is not None


@pytest.mark.parametrize("bad", ["tests.kernel_mixin:rel_err", "kernelzoo.registry"])
def test_resolve_refuses_names_outside_the_package(bad):
    from kernelzoo import registry

    with pytest.raises(ValueError, match="target"):
        registry.resolve(bad)


# ------------------------------------------------------------------ sizes of files and signatures
MAX_LINES = 550  # "about 500"
MAX_PARAMETERS = 8
REASON = "More than eight parameters because"


def test_no_module_is_a_god_file():
    """Every module of the package stays under about 500 lines."""
    big = {
        name: path.read_text().count("\n")
        for name, path in MODULES.items()
        if path.read_text().count("\n") > MAX_LINES
    }
    assert not big, f"modules over {MAX_LINES} lines (split them): {big}"


def test_long_signatures_say_why():
    """A function with more than eight parameters states why in its docstring."""
    unexplained = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            args = node.args
            params = [
                a.arg
                for a in args.posonlyargs + args.args + args.kwonlyargs
                if a.arg not in ("self", "cls")
            ]
            if len(params) > MAX_PARAMETERS and REASON not in (ast.get_docstring(node) or ""):
                unexplained.append(f"{name}.{node.name} ({len(params)})")
    assert not unexplained, (
        f"functions with more than {MAX_PARAMETERS} parameters whose docstring does not say "
        f"'{REASON} ...': {unexplained}"
    )
