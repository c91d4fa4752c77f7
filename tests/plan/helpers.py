"""Small helpers for the plan tests: compile plan text, collect its errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from planrun.errors import PlanError
from planrun.plan.load import load_plan
from planrun.plan.resolved import CompiledPlan


def compile_text(text: str, folder: Path, name: str = "plan.yaml") -> CompiledPlan:
    """Compile dedented ``text`` as if it were ``folder/name`` (nothing is written)."""
    return load_plan(folder / name, textwrap.dedent(text))


def errors_of(text: str, folder: Path, name: str = "plan.yaml") -> list[str]:
    """The diagnostics of a plan that must not compile, as ``line:col: message``."""
    with pytest.raises(PlanError) as caught:
        compile_text(text, folder, name)
    return [f"{d.location.line}:{d.location.column}: {d.message}" for d in caught.value.diagnostics]


def write(folder: Path, files: dict[str, str]) -> None:
    """Create ``files`` (relative path → text) under ``folder``."""
    for relative, text in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
