"""The arrows point down (docs/architecture.md): what each package may import.

Every import of every module is read with ``ast`` (imports inside functions included), so
a lazy import cannot slip past. The pure core and the plan step do no I/O beyond reading
the plan's own files: no trio, no subprocess, no store, no sessions, no workspace, no run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "planrun"

#: What the pure core and the plan step never import: I/O, the run and the edges.
PURE = (
    "trio",
    "subprocess",
    "planrun.run",
    "planrun.state",
    "planrun.sessions",
    "planrun.workspace",
    "planrun.commands",
    "planrun.ui",
    "planrun.cli",
)

#: package → module prefixes it must never import
FORBIDDEN = {
    "core": (*PURE, "planrun.trackers", "planrun.changes"),
    "plan": (*PURE, "planrun.trackers", "planrun.changes"),
    "state": ("planrun.run", "planrun.changes", "planrun.commands", "planrun.ui", "planrun.cli"),
    "sessions": (
        "planrun.run",
        "planrun.state",
        "planrun.commands",
        "planrun.ui",
        "planrun.cli",
    ),
    "workspace": (
        "planrun.run",
        "planrun.changes",
        "planrun.commands",
        "planrun.ui",
        "planrun.cli",
    ),
    "report": ("trio", "planrun.run", "planrun.state", "planrun.commands", "planrun.cli"),
    "ui": ("planrun.run", "planrun.state", "planrun.commands", "planrun.cli"),
    "run": ("planrun.commands", "planrun.cli"),
    # the web board reads the store; it never runs, writes or lands anything
    "board": (
        "planrun.run",
        "planrun.workspace",
        "planrun.trackers",
        "planrun.changes",
        "planrun.commands",
        "planrun.ui",
        "planrun.cli",
    ),
    "changes": (
        "planrun.run",
        "planrun.sessions",
        "planrun.workspace",
        "planrun.commands",
        "planrun.ui",
        "planrun.cli",
    ),
    # a Plane agent's protocol: the run (serve's desk) drives it, never the other way
    "agents": (
        "planrun.run",
        "planrun.changes",
        "planrun.sessions",
        "planrun.workspace",
        "planrun.commands",
        "planrun.ui",
        "planrun.cli",
    ),
    "trackers": (
        "planrun.run",
        "planrun.changes",
        "planrun.sessions",
        "planrun.workspace",
        "planrun.commands",
        "planrun.ui",
        "planrun.cli",
    ),
}

#: The allowances, and why: a ``glob`` fan-out sees what git sees, which only
#: ``git ls-files`` can say (planrun/plan/files.py, run while the plan is compiled); a
#: ``tracker`` fan-out's items come from the tracker, read by one function
#: (planrun.trackers.source.fetch_items, imported lazily by planrun/plan/reads.py).
ALLOWED = {
    ("plan/files.py", "subprocess"),
    ("plan/reads.py", "planrun.trackers"),
    ("plan/reads.py", "planrun.changes"),  # a repositories query, as a tracker's items
}


def imports_of(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
    return found


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_package_imports_nothing_above_it(package: str) -> None:
    broken = []
    for path in modules(package):
        where = path.relative_to(ROOT).as_posix()
        for name in imports_of(path):
            for prefix in FORBIDDEN[package]:
                hit = name == prefix or name.startswith(prefix + ".")
                if hit and (where, prefix) not in ALLOWED:
                    broken.append(f"{where} imports {name}")
    assert broken == []


def test_the_layering_rules_cover_every_package() -> None:
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()}
    assert packages - set(FORBIDDEN) == {"commands"}  # the top: it may import anything


def test_no_module_is_over_500_lines() -> None:
    long = {
        p.relative_to(ROOT).as_posix(): n
        for p in ROOT.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 500
    }
    assert long == {}


def test_no_function_is_over_50_lines() -> None:
    long = []
    for path in ROOT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > 50:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines})")
    assert long == []
