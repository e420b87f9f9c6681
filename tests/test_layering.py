"""The layering the README promises: only ``marketmap.orchestration`` imports Airflow; domain
packages never import the orchestration layer back; no import cycles between packages."""

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "include" / "marketmap"
# The command line drives Airflow (it runs DAGs), so it may use the orchestration layer.
TOP = {"cli"}


def _module(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


MODULES = {_module(p): _imports(p) for p in sorted(PKG.rglob("*.py"))}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


@pytest.mark.parametrize("module", sorted(MODULES))
def test_only_orchestration_imports_airflow(module):
    if _layer(module) in {"orchestration"} | TOP:
        return
    bad = sorted(i for i in MODULES[module] if i == "airflow" or i.startswith("airflow."))
    assert not bad, f"{module} imports Airflow ({bad}); only marketmap.orchestration may"
    back = sorted(i for i in MODULES[module] if i.startswith("marketmap.orchestration"))
    assert not back, f"{module} imports the orchestration layer ({back})"


def test_no_import_cycles_between_packages():
    """Packages (scoring, crm, ...) form a DAG: a cycle means two layers are really one."""
    graph: dict[str, set[str]] = {}
    for module, imports in MODULES.items():
        src = _layer(module)
        for i in imports:
            if i.startswith("marketmap."):
                dst = i.split(".")[1]
                if dst != src and (PKG / dst).is_dir() and (PKG / src).is_dir():
                    graph.setdefault(src, set()).add(dst)
    cycles = []

    def visit(node, path):
        for nxt in graph.get(node, ()):
            if nxt in path:
                cycles.append(path[path.index(nxt) :] + [nxt])
            elif len(path) < 12:
                visit(nxt, path + [nxt])

    for start in graph:
        visit(start, [start])
    assert not cycles, "package import cycles: " + "; ".join(" -> ".join(c) for c in cycles[:5])
