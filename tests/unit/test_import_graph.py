"""No import cycle between the modules of include/winback, counting imports inside
functions too (a cycle hidden in a function is still a cycle: issue 16, gate <-> publish).

Read with ``ast``, not imported: every ``import winback...`` / ``from winback... import x``
(and relative imports) anywhere in a module is an edge to the module it names — to the
submodule when ``x`` is one, else to the package. A package's ``__init__`` importing its
own submodules is the usual layout, so a module is not taken to import its parent packages.
"""

from __future__ import annotations

import ast
from pathlib import Path

import winback

ROOT = Path(winback.__file__).resolve().parent


def _modules() -> dict[str, Path]:
    modules = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = ["winback", *path.relative_to(ROOT).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES.get(name, Path()).name == "__init__.py"


def _resolve(module: str, node: ast.ImportFrom) -> str | None:
    if node.level == 0:
        return node.module
    base = module.split(".") if _is_package(module) else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports_of(module: str) -> set[str]:
    """The winback modules ``module`` imports, at any depth of its code."""
    found: set[str] = set()
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "winback" or alias.name.startswith("winback."):
                    name = alias.name
                    while name not in MODULES and "." in name:
                        name = name.rsplit(".", 1)[0]
                    found.add(name)
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, node)
            if not target or not (target == "winback" or target.startswith("winback.")):
                continue
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                found.add(submodule if submodule in MODULES else target)
    found.discard(module)
    return {name for name in found if name in MODULES}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a path [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*path[path.index(target):], target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_every_module_is_read():
    assert {"winback.publish", "winback.quality.gate", "winback.kpi_definition", "winback.report.render"} <= set(
        MODULES)


def test_function_level_imports_count():
    assert find_cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


# Cycles tolerated for now (none: orchestration <-> deployment is gone, issue 16).
KNOWN_CYCLES: list[set[str]] = []


def _graph(without_known: bool) -> dict[str, set[str]]:
    graph = {module: imports_of(module) for module in MODULES}
    if without_known:
        for known in KNOWN_CYCLES:
            for module in known:
                graph[module] = graph[module] - known
    return graph


def test_no_import_cycle_in_include():
    cycle = find_cycle(_graph(without_known=True))
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_import_cycle_at_all():
    cycle = find_cycle(_graph(without_known=False))
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_gate_and_publish_share_the_fingerprint_without_importing_each_other():
    assert "winback.publish" not in imports_of("winback.quality.gate")
    assert not {"winback.quality", "winback.quality.gate", "winback.quality.suites"} & imports_of("winback.publish")
    assert "winback.kpi_definition" in imports_of("winback.quality.gate")
    assert "winback.kpi_definition" in imports_of("winback.publish")
