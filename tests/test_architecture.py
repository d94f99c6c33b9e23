"""The floors hold: the ground imports no stage, a stage imports no other stage, only the study
imports the stages, and no package has an import cycle. Read from the source, so a deferred import
inside a function counts as much as one at the top (it is still an arrow at run time)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GROUND, STAGES, TOP = "bertin_bench", ("sampling", "pretraining", "benchmark"), "study"
PACKAGES = (GROUND, *STAGES, TOP)


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Project modules imported by one file (absolute and relative imports, at any depth)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    me = _module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    # Imports under `if TYPE_CHECKING:` are for annotations only: not an arrow at run time.
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                   and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING"
                   for stmt in node.body for n in ast.walk(stmt)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        found.update(n for n in names if n.split(".")[0] in PACKAGES)
    return found


def _graph() -> dict[str, set[str]]:
    files = [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")]
    modules = {_module_name(p): p for p in files}
    graph = {}
    for name, path in modules.items():
        # "from pkg import mod" names a module when mod is one; otherwise it names pkg
        graph[name] = {m for m in _imports(path) if m in modules} | {
            m.rpartition(".")[0] for m in _imports(path) if m not in modules and m.rpartition(".")[0] in modules}
        graph[name].discard(name)
    return graph


def _floor(module: str) -> str:
    return module.split(".")[0]


@pytest.mark.parametrize("package", PACKAGES)
def test_no_arrow_runs_up_or_across(package):
    allowed = {GROUND: {GROUND}, TOP: set(PACKAGES)}.get(package, {GROUND, package})
    wrong = sorted(f"{m} -> {dep}" for m, deps in _graph().items() if _floor(m) == package
                   for dep in deps if _floor(dep) not in allowed)
    assert not wrong, f"{package} may import only {sorted(allowed)}:\n  " + "\n  ".join(wrong)


def test_no_import_cycles():
    graph = _graph()
    cycles, state, stack = [], {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == "open":
                cycles.append(" -> ".join(stack[stack.index(dep):] + [dep]))
            elif dep not in state:
                visit(dep)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "import cycles:\n  " + "\n  ".join(cycles)


def test_the_checker_sees_real_arrows(tmp_path):
    """The test above would pass vacuously if the import parser found nothing."""
    graph = _graph()
    assert "bertin_bench.io" in graph["study.run"]
    assert "sampling.pipeline" in graph["study.run"]  # a deferred import inside a method
    assert any(dep.startswith("bertin_bench") for dep in graph["benchmark.runner"])
