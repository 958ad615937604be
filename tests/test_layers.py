"""The package's layers point down, and no module imports itself back through others.

Read from the source (every import statement, also those inside functions, except type-only
ones under ``if TYPE_CHECKING``), so a lazy import cannot hide an upward dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "workbench"

#: Lowest first; a module may import its own layer or any below it, never one above.
LAYERS: list[set[str]] = [
    {"workbench", "version", "errors", "messages", "progress", "privacy", "vocabulary", "recipe", "build_options",
     "files", "memory", "scratch"},
    {"model"},
    {"data"},
    {"profiles"},
    {"backends"},
    {"tasks"},
    {"measure"},
    {"precision", "pruning"},
    {"runs"},
    {"workflows", "cluster"},
    {"plots", "samples", "glossary"},
    # The faces: the report is a page of runs for people, and its reproduce command is the CLI's own flags.
    {"cli", "ui", "report", "lab", "__main__", "examples"},
]


def module_names() -> dict[str, Path]:
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def imported(path: Path, known: dict[str, Path]) -> set[str]:
    """The workbench modules ``path`` imports (a ``from package import module`` counts as the module)."""
    tree = ast.parse(path.read_text())
    type_only = {id(node) for block in ast.walk(tree)
                 if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
                 for node in ast.walk(block)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name in known}


def graph() -> dict[str, set[str]]:
    known = module_names()
    return {name: imported(path, known) - {name} for name, path in known.items()}


def layer_of(module: str) -> int:
    top = module.split(".")[1] if "." in module else module
    for index, layer in enumerate(LAYERS):
        if top in layer:
            return index
    raise AssertionError(f"{module} is in no layer: add its package to LAYERS in {Path(__file__).name}")


def test_every_module_has_a_layer_and_imports_only_down() -> None:
    upward = [f"{source} -> {target}" for source, targets in graph().items() for target in targets
              if layer_of(target) > layer_of(source)]
    assert upward == []


def test_no_import_cycles() -> None:
    edges = graph()
    # A package's __init__ importing its own modules is how packages work, not a cycle.
    edges = {source: {t for t in targets if not (source != "workbench" and t.startswith(source + "."))}
             for source, targets in edges.items()}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(edges[node]):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target):], target])
            elif target not in state:
                visit(target, [*path, target])
        state[node] = 2

    for start in sorted(edges):
        if start not in state:
            visit(start, [start])
    assert cycles == []


def test_the_walk_sees_imports_inside_functions(tmp_path: Path) -> None:
    """A lazy upward import is still upward: the reader must not miss it."""
    source = tmp_path / "lazy.py"
    source.write_text("def f():\n    from workbench.runs import pipeline\n    return pipeline\n")
    known = module_names()
    assert imported(source, known) == {"workbench.runs", "workbench.runs.pipeline"}


def test_no_function_is_longer_than_80_lines() -> None:
    """The developer guide's limit, read from the source like the imports above."""
    long = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno >= 80:
                long.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name}")
    assert long == []
