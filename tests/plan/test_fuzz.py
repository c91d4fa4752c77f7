"""No input makes the loader raise anything but PlanError, and `planrun validate` exits 0 or 2.

Three kinds of input: arbitrary text, YAML-ish documents built from the plan vocabulary (so
that they get past parsing into validation and compilation), and the example plans under
plans/ with random edits.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from planrun.cli import main
from planrun.errors import PlanError
from planrun.plan.load import load_plan
from planrun.plan.model import PlanFile

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = [p.read_text(encoding="utf-8") for p in sorted((ROOT / "plans").glob("*.yaml"))]
#: PLANRUN_FUZZ_EXAMPLES=5000 pytest tests/plan/test_fuzz.py for a long run
EXAMPLES_PER_TEST = int(os.environ.get("PLANRUN_FUZZ_EXAMPLES", "80"))
FAST = settings(
    max_examples=EXAMPLES_PER_TEST,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)


def _field_names(model: Any, seen: set[str]) -> set[str]:
    names: set[str] = set()
    for name, field in getattr(model, "model_fields", {}).items():
        names.add(name)
        for arg in _models_in(field.annotation):
            if arg.__name__ not in seen:
                seen.add(arg.__name__)
                names |= _field_names(arg, seen)
    return names


def _models_in(annotation: Any) -> Iterator[Any]:
    if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
        yield annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        yield from _models_in(arg)


KEYS = sorted(_field_names(PlanFile, set()) | {"a", "b", "c", "KEY", "x[1]", "<<", "id", "path"})
WORDS = [
    "90s", "10m", "0s", "1h30m", "shell", "claude", "codex", "a", "b", "c", "b[x]", "KEY",
    "{{ task.key }}", "{{ item.path }}", "{{ nope }}", "{{ ''.__class__ }}", "{% if %}",
    "{{ item.items }}", "**/*.py", "*.txt", "../x", "/etc/*", "plan.yaml", ".", "(", "[a-z]+",
    "failed", "conflict", "merge", "none", "argv", "stdin", "3.10", "", " ", "$(touch pwned)",
]  # fmt: skip
SCALARS = (
    st.sampled_from(WORDS)
    | st.integers(-3, 200)
    | st.booleans()
    | st.none()
    | st.floats(allow_nan=False, allow_infinity=False, width=16)
    | st.text(max_size=8)
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=5)
    ),
    max_leaves=15,
)
TASK = st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=6)
PLANS = st.fixed_dictionaries(
    {
        "version": st.sampled_from([1, 1, 1, 2, "1"]),
        "tasks": st.dictionaries(st.sampled_from(["a", "b", "c", "KEY"]), TASK, max_size=4),
    },
    optional={
        "defaults": TASK,
        "providers": st.dictionaries(
            st.sampled_from(["claude", "bot", "shell"]), VALUES, max_size=2
        ),
        "projects": st.dictionaries(st.sampled_from(["p", "q"]), VALUES, max_size=2),
        "settings": VALUES,
        "hooks": VALUES,
    },
)
SNIPPETS = [
    ": ", "- ", "[", "]", "{", "}", "{{", "&a ", "*a", "<<: *a\n", "\t", "'", '"', "!!int ",
    "!x ", "\n  needs: [a]\n", "#", "\ufeff", "\x00", "---\n", "? ", "|\n", "  ", "\n",
    "for_each: {glob: '*'}", "parent: a", "3.10", "~",
]  # fmt: skip


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="planrun-fuzz-"))
    (path / "src").mkdir()
    (path / "src" / "a.py").write_text("print()\n")
    (path / "hosts.txt").write_text("alpha\nbeta\n")
    yield path
    shutil.rmtree(path)


def _load(folder: Path, text: str | bytes) -> None:
    try:
        load_plan(folder / "plan.yaml", text)
    except PlanError as exc:
        for diagnostic in exc.diagnostics:
            assert diagnostic.message
            assert "\n" not in diagnostic.message
            assert diagnostic.location.line >= 1


@FAST
@given(text=st.text(max_size=300))
def test_arbitrary_text(folder: Path, text: str) -> None:
    _load(folder, text)


@FAST
@given(raw=st.binary(max_size=200))
def test_arbitrary_bytes(folder: Path, raw: bytes) -> None:
    _load(folder, raw)


@FAST
@given(plan=PLANS)
def test_plan_shaped_documents(folder: Path, plan: dict[str, Any]) -> None:
    _load(folder, json.dumps(plan))


@st.composite
def _mutated(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(EXAMPLES))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(["insert", "delete", "duplicate-line", "swap-lines"]))
        if kind == "insert":
            text = text[:at] + draw(st.sampled_from(SNIPPETS)) + text[at:]
        elif kind == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 40)) :]
        else:
            lines = text.splitlines(keepends=True)
            i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
            if kind == "duplicate-line":
                lines.insert(j, lines[i])
            else:
                lines[i], lines[j] = lines[j], lines[i]
            text = "".join(lines)
    return text


@FAST
@given(text=_mutated())
def test_mutated_example_plans(folder: Path, text: str) -> None:
    _load(folder, text)


@settings(max_examples=max(10, EXAMPLES_PER_TEST // 5), deadline=None, database=None)
@given(text=_mutated() | PLANS.map(json.dumps))
@example(text='{"version": 1, "tasks": {"a": {"parent": []}}}')  # found by CI: a list parent
def test_validate_exits_0_or_2(folder: Path, text: str) -> None:
    path = folder / "plan.yaml"
    path.write_text(text, encoding="utf-8")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["validate", str(path)], io.StringIO())
    assert code in (0, 2)
    assert "Traceback" not in err.getvalue()


_KEYS = st.sampled_from(["A", "B", "C", "D"])
_JUNK: st.SearchStrategy[object] = st.one_of(
    st.none(), st.integers(), st.text(max_size=3), st.lists(st.integers(), max_size=2), st.just({})
)


@st.composite
def _broken_task_plans(draw: st.DrawFn) -> str:
    """Plans whose tasks fail validation in places, with needs and parents of every shape:
    what salvage cuts away and the graph check of the rest (plan.salvage) must hold up."""
    tasks: dict[str, object] = {}
    for key in draw(st.lists(_KEYS, min_size=1, max_size=4, unique=True)):
        task: dict[str, object] = {"run": draw(st.one_of(st.just(["true"]), _JUNK))}
        for name in ("needs", "blocked_by"):
            if draw(st.booleans()):
                task[name] = draw(st.one_of(st.lists(_KEYS, max_size=3), _JUNK))
        if draw(st.booleans()):
            task["parent"] = draw(st.one_of(_KEYS, _JUNK))
        if draw(st.booleans()):
            task["for_each"] = draw(st.one_of(st.just({"items": ["x", "y"]}), _JUNK))
        if draw(st.booleans()):
            task["timout"] = 1  # a misspelt key: this task fails validation
        tasks[key] = task
    return json.dumps({"version": 1, "tasks": tasks})


@settings(max_examples=EXAMPLES_PER_TEST, deadline=None, database=None)
@given(text=_broken_task_plans())
def test_tasks_that_fail_validation_never_break_the_graph_check(folder: Path, text: str) -> None:
    _load(folder, text)
