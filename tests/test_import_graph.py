"""The project's import graph, read from the source (nothing is imported): no cycle among
the modules of domain/, projections/ and adapters/; the layers point one way only
(domain imports neither projections nor adapters, projections does not import adapters);
and no module under tests/ imports a test module (shared helpers live in helper modules).

What counts as an import, for the cycle and the layers: the imports a module runs when it
is itself imported, that is its module-level statements (also inside `if`, `try`, `with`
and class bodies), but not those inside functions, which run only when called: importing
lazily inside a function is how the project keeps start-up cheap, and it is allowed to
point anywhere, back up the layers included. Imports under `if TYPE_CHECKING:` are left
out too, as they never run. `from package import name` is an edge to `package.name` when
that is a module of the project, else to `package`.
"""

from __future__ import annotations

import ast
import pkgutil
from collections.abc import Iterator
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
LAYERS = ("domain", "projections", "adapters")  # each may import itself and the ones before it


def project_modules() -> dict[str, Path]:
    """Every module of the layered packages, by dotted name, with its source file."""
    found: dict[str, Path] = {}

    def walk(name: str, directory: Path) -> None:
        found[name] = directory / "__init__.py"
        for info in pkgutil.iter_modules([str(directory)]):
            if info.ispkg:
                walk(f"{name}.{info.name}", directory / info.name)
            else:
                found[f"{name}.{info.name}"] = directory / f"{info.name}.py"

    for package in LAYERS:
        walk(package, PROJECT / package)
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class _ImportsRunAtImportTime(ast.NodeVisitor):
    def __init__(self) -> None:
        self.found: list[ast.Import | ast.ImportFrom] = []

    def visit_Import(self, node: ast.Import) -> None:
        self.found.append(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        self.found.append(node)

    def visit_If(self, node: ast.If) -> None:
        if not _is_type_checking(node.test):
            for statement in node.body:
                self.visit(statement)
        for statement in node.orelse:
            self.visit(statement)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        """Not run at import time (its decorators and defaults hold no imports)."""

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        """Not run at import time."""

    def visit_Lambda(self, node: ast.Lambda) -> None:
        """Not run at import time."""


def _all_imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    yield from (node for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom))


def _absolute(module: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join([*base, node.module] if node.module else base)


def imported_modules(
    module: str, path: Path, nodes: list[ast.Import | ast.ImportFrom], known: set[str] | dict[str, Path]
) -> set[str]:
    """The modules of `known` that these import statements of `module` name."""
    targets: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names if alias.name in known)
            continue
        source = _absolute(module, path, node)
        for alias in node.names:
            if f"{source}.{alias.name}" in known:
                targets.add(f"{source}.{alias.name}")
            elif source in known:
                targets.add(source)
    targets.discard(module)
    return targets


def import_graph() -> dict[str, set[str]]:
    """module -> the project modules it imports at import time."""
    modules = project_modules()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        visitor = _ImportsRunAtImportTime()
        visitor.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        graph[module] = imported_modules(module, path, visitor.found, modules)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path that ends where it starts (`a, b, a`), or None."""
    done: set[str] = set()
    for root in sorted(graph):
        if root in done:
            continue
        path = [root]
        on_path = {root}
        pending = [iter(sorted(graph[root]))]
        while pending:
            following = next(pending[-1], None)
            if following is None:
                pending.pop()
                done.add(path[-1])
                on_path.discard(path.pop())
            elif following in on_path:
                return [*path[path.index(following) :], following]
            elif following not in done:
                path.append(following)
                on_path.add(following)
                pending.append(iter(sorted(graph.get(following, ()))))
    return None


def _layer(module: str) -> int:
    return LAYERS.index(module.split(".")[0])


def test_the_walk_sees_the_packages_and_their_imports() -> None:
    graph = import_graph()
    assert {"domain", "domain.errors", "projections.runner", "adapters.bootstrap"} <= set(graph)
    assert "projections.runner" in graph["adapters.bootstrap"]
    assert all(_layer(module) >= 0 for module in graph)


def test_find_cycle_reports_the_path() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"b"}}) == ["b", "c", "b"]


def test_no_import_cycle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_layers_import_only_themselves_and_the_layers_below() -> None:
    upward = sorted(
        f"{module} -> {target}"
        for module, targets in import_graph().items()
        for target in targets
        if _layer(target) > _layer(module)
    )
    assert upward == [], f"imports against the layering {' < '.join(LAYERS)}:\n" + "\n".join(upward)


def test_layers_do_not_import_upwards_even_lazily_or_for_types() -> None:
    """The layering holds for every import, also inside functions and under TYPE_CHECKING."""
    modules = project_modules()
    upward = sorted(
        f"{module} -> {target}"
        for module, path in modules.items()
        for target in imported_modules(module, path, list(_all_imports(ast.parse(path.read_text("utf-8")))), modules)
        if _layer(target) > _layer(module)
    )
    assert upward == [], "\n".join(upward)


def test_tests_import_helpers_not_other_test_modules() -> None:
    tests = PROJECT / "tests"
    offending: list[str] = []
    for path in sorted(tests.rglob("*.py")):
        parts = path.relative_to(PROJECT).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        for node in _all_imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                source = _absolute(module, path, node)
                names = [source, *(f"{source}.{alias.name}" for alias in node.names)]
            offending.extend(
                f"{path.relative_to(PROJECT)}:{node.lineno} imports {name}"
                for name in names
                if name.startswith("tests.") and name.rsplit(".", 1)[-1].startswith("test_")
            )
    assert offending == [], "\n".join(offending)
