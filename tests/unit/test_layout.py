"""The package's shape: imports flow one way (no cycles), and only edge.cli holds commands."""

from __future__ import annotations

import ast
from pathlib import Path

EDGE = Path(__file__).resolve().parents[2] / "edge"
STAGE_PACKAGES = ("edge.camera", "edge.identify", "edge.music", "edge.publish")


def module_name(path: Path) -> str:
    parts = path.relative_to(EDGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def edge_imports(path: Path) -> set[str]:
    """Every edge module a file imports at run time, at the top or inside functions."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking_only(node):
            return  # never executed: a reference for the type checker, not a dependency
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("edge"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("edge"):
            found.add(node.module)
            # ``from edge.cli import daemon`` imports the submodule edge.cli.daemon.
            found.update(f"{node.module}.{a.name}" for a in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


def import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in EDGE.rglob("*.py")}
    return {
        name: {m for m in edge_imports(path) if m in files} - {name} for name, path in files.items()
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := walk(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := walk(node)):
            return cycle
    return None


def test_edge_has_no_import_cycle() -> None:
    graph = import_graph()
    assert len(graph) > 40  # the walk really saw the package
    assert find_cycle(graph) is None


def test_the_cycle_finder_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_runtime_module_imports_the_cli_or_the_measurements() -> None:
    graph = import_graph()
    offenders = {
        (module, target)
        for module, targets in graph.items()
        if not module.startswith(("edge.cli", "edge.measure", "edge.__main__"))
        for target in targets
        if target.startswith(("edge.cli", "edge.measure"))
    }
    assert offenders == set()


def test_stage_packages_hold_no_command_code() -> None:
    for package in STAGE_PACKAGES:
        folder = EDGE / package.split(".")[1]
        assert not (folder / "cli.py").exists(), package
        for path in folder.rglob("*.py"):
            assert "argparse" not in path.read_text(encoding="utf-8"), path
