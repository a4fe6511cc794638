"""The project's import graph: no cycles, and the layers import one way (swirl_envs <- swirl_core <- evals).

Every import statement counts, including lazy ones inside functions: a lazy import hides a cycle from
Python's start-up but not from a reader, and it breaks as soon as someone hoists it. Importing a submodule
is an edge to that submodule only; the parent package's `__init__` is already running or done by then.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("swirl_envs", "swirl_core", "evals")  # each may import only those before it
LAYER = {package: rank for rank, package in enumerate(PACKAGES)}


def project_modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imported_modules(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Project modules that `name` (its source at `path`) imports anywhere in its body."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            # `from package import name` imports the submodule when `name` is one, else the package itself
            submodules = {f"{base}.{alias.name}" for alias in node.names} & modules.keys()
            found.update(submodules or {base})
    return {m for m in found if m in modules and m != name}


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imported_modules(name, path, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path [a, b, ..., a], or None (depth-first search with three colours)."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" once fully explored
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return path[path.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_checker_sees_lazy_relative_and_from_imports(tmp_path):
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None
    source = tmp_path / "runner.py"
    source.write_text("from . import report\nfrom .metrics import f1\n\ndef later():\n    import pkg.cli\n")
    modules = {name: source for name in ("pkg", "pkg.runner", "pkg.report", "pkg.metrics", "pkg.cli")}
    assert imported_modules("pkg.runner", source, modules) == {"pkg.report", "pkg.metrics", "pkg.cli"}


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_layers_import_one_way():
    upward = [f"{name} -> {target}" for name, targets in import_graph().items() for target in sorted(targets)
              if LAYER[target.split(".")[0]] > LAYER[name.split(".")[0]]]
    assert not upward, f"imports from a layer above: {upward}"
