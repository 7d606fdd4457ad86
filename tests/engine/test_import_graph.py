"""The engine's modules import one another one way only.

Every ``import`` is counted, at module level and inside functions alike: a function-level import
that dodges a circle at import time still ties the two modules into one, so it is a cycle here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import visionbench.engine

ENGINE = Path(visionbench.engine.__file__).parent
PACKAGE = "visionbench.engine"
MODULES = {path.stem for path in ENGINE.glob("*.py")}

# The modules below the training loop and prediction: they must never reach up into them.
LOWER = ("inference_spec", "masks", "run_model", "results", "task")
LOOP = ("train", "predict", "classify", "detect", "segment")


def _targets(node: ast.Import | ast.ImportFrom) -> list[str]:
    """The engine modules (``MODULES`` names, ``__init__`` for the package) an import statement loads."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:  # relative: resolved against this package (the engine has no subpackages)
            base = PACKAGE + (f".{base}" if base else "")
        if base == PACKAGE:  # `from visionbench.engine import rundir, NonFiniteLossError`
            return [alias.name if alias.name in MODULES else "__init__" for alias in node.names]
        names = [base]
    found = []
    for name in names:
        if name == PACKAGE:
            found.append("__init__")
        elif name.startswith(PACKAGE + "."):
            found.append(name[len(PACKAGE) + 1:].split(".")[0])
    return [name for name in found if name in MODULES]


def import_graph() -> dict[str, set[str]]:
    """Engine module → the engine modules it imports anywhere in its source."""
    graph = {}
    for path in sorted(ENGINE.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        imports = [node for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)]
        graph[path.stem] = {target for node in imports for target in _targets(node)} - {path.stem}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, …, a]``, or ``None`` (depth-first search, white/grey/black)."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "grey"
        stack.append(node)
        for child in sorted(graph.get(node, ())):
            if state.get(child) == "grey":
                return [*stack[stack.index(child):], child]
            if child not in state and (cycle := visit(child)):
                return cycle
        stack.pop()
        state[node] = "black"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module ``start`` imports, directly or through others."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        for child in graph.get(todo.pop(), ()):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


def test_the_engine_import_graph_has_no_cycle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle in visionbench/engine: " + " -> ".join(cycle or [])


def test_the_lower_modules_never_import_the_loop() -> None:
    graph = import_graph()
    for module in LOWER:
        assert not reachable(graph, module) & set(LOOP), (module, sorted(reachable(graph, module)))


def test_the_graph_counts_function_level_and_package_imports() -> None:
    graph = import_graph()
    assert "file_evaluation" in graph["detect"]  # imported inside evaluate_and_write only
    assert {"rundir", "__init__"} <= graph["train"]  # `from visionbench.engine import NonFiniteLossError, rundir`
    assert {"inference_spec", "run_model"} <= graph["train"]


def test_find_cycle_finds_a_cycle_through_several_modules() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
