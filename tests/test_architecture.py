"""The import graph of the library: no cycles, no library module importing a front end.

The graph is read from the source (every ``import`` statement, also those inside
functions), so a lazy import that closes a cycle is caught as well. An edge goes from a
module to each module it names; ``from package import name`` points at
``package.name`` when that is a module, else at the package. A package is not an edge
of its own submodules (Python imports it first anyway, but that is not a dependency the
code chose).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "imaging"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(LIBRARY.rglob("*.py"))}


def _resolve(current: str, is_package: bool, level: int, target: str | None) -> str:
    if level == 0:
        return target or ""
    base = current.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def import_graph() -> dict[str, set[str]]:
    """Module -> the library modules it imports (anywhere in its source)."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                package = _resolve(name, is_package, node.level, node.module)
                for alias in node.names:
                    submodule = f"{package}.{alias.name}"
                    targets.append(submodule if submodule in modules else package)
            for target in targets:
                # "import a.b.c" depends on a.b.c; keep the longest prefix that is a library module.
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in graph[node]:
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def test_the_graph_sees_the_library():
    graph = import_graph()
    assert "imaging.run.runner" in graph
    assert "imaging.solvers.registry" in graph["imaging.run.runner"]
    assert "imaging.io.atomic" in graph["imaging.run.runner"]


def test_cycle_detection_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles():
    assert _cycles(import_graph()) == []


def test_no_library_module_imports_the_command_line():
    offenders = {
        module: sorted(target for target in targets if target.startswith("imaging.cli"))
        for module, targets in import_graph().items()
        if not module.startswith("imaging.cli") and module != "imaging.__main__"
    }
    assert {module: targets for module, targets in offenders.items() if targets} == {}


def test_argparse_only_in_the_command_line():
    users = [
        name
        for name, path in _modules().items()
        if not name.startswith("imaging.cli") and "argparse" in path.read_text()
    ]
    assert users == []


@pytest.mark.parametrize(
    "layer, forbidden",
    [
        # The data containers and the physics know nothing of solvers, runs or front ends.
        ("imaging.measurements", ("imaging.solvers", "imaging.run", "imaging.io", "imaging.cli")),
        ("imaging.results", ("imaging.solvers", "imaging.run", "imaging.io", "imaging.cli")),
        ("imaging.operators", ("imaging.solvers", "imaging.run", "imaging.io", "imaging.cli")),
        ("imaging.models", ("imaging.solvers", "imaging.run", "imaging.io", "imaging.cli")),
        # The file layer builds Measurements/results but never runs a solver.
        ("imaging.io", ("imaging.solvers", "imaging.run", "imaging.cli")),
        # Solvers are driven by the runner, never the other way round.
        ("imaging.solvers", ("imaging.run", "imaging.cli")),
    ],
)
def test_layers_import_downwards_only(layer, forbidden):
    deprecated_shims = {"imaging.solvers.runner", "imaging.solvers"}  # lazy aliases of moved names
    offending = {
        module: sorted(t for t in targets if t.startswith(forbidden))
        for module, targets in import_graph().items()
        if (module == layer or module.startswith(layer + ".")) and module not in deprecated_shims
    }
    assert {m: t for m, t in offending.items() if t} == {}


def test_phantoms_load_without_pytorch():
    # napari's File > Open Sample runs on the GUI thread: the phantoms must not pull in
    # PyTorch and the solvers (about a second) through ``imaging``'s public names.
    import subprocess
    import sys

    code = "import sys, imaging.phantoms; print('torch' in sys.modules)"
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert completed.stdout.strip() == "False"


def test_public_names_and_subpackages_load_on_first_use():
    import imaging

    assert imaging.reconstruct is imaging.run.reconstruct
    assert imaging.Measurements is imaging.measurements.Measurements
    assert set(imaging.__all__) <= set(dir(imaging))
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        imaging.nonexistent  # noqa: B018
