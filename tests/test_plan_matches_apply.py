"""``planrun plan`` never predicts what ``apply`` does not do (SPEC §5), over random histories.

Each example is a random plan of shell tasks and a random history: tasks that fail or not,
definitions edited, ``--rerun-failed``, and applies killed with SIGKILL at a random durable
write. Before every apply, ``plan --json`` says what happens to each task; the apply's
record (attempts it started, final statuses) must agree with every row.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from planrun.cli import main
from tests import runs
from tests.runs import State, state_of

KEYS = ["A", "B", "C", "D"]


@st.composite
def plans(draw: st.DrawFn) -> dict[str, tuple[list[str], int, str]]:
    """key → (needs, attempts, run_when) for a random DAG over KEYS (needs point back)."""
    tasks = {}
    for n, key in enumerate(KEYS):
        needs = draw(st.lists(st.sampled_from(KEYS[:n]), unique=True, max_size=2)) if n else []
        attempts = draw(st.integers(1, 2))
        when = draw(st.sampled_from(["success", "success", "always", "failure"])) if needs else ""
        tasks[key] = (needs, attempts, when)
    return tasks


STEP = st.one_of(
    st.tuples(st.just("fail"), st.sets(st.sampled_from(KEYS))),
    st.tuples(st.just("edit"), st.sampled_from(KEYS)),
    st.tuples(st.just("rerun"), st.none()),
    st.tuples(st.just("crash"), st.integers(1, 14)),
)


def write(
    folder: Path, tasks: dict[str, tuple[list[str], int, str]], edits: dict[str, int]
) -> Path:
    lines = ["version: 1", "name: prop", "tasks:"]
    for key, (needs, attempts, when) in tasks.items():
        script = (
            f"echo {key} >> {folder}/ran.log; test ! -e {folder}/fail-{key}; : {edits.get(key, 0)}"
        )
        lines.append(f"  {key}:")
        lines.append(f"    run: [sh, -c, {json.dumps(script)}]")
        lines.append(f"    retry: {{attempts: {attempts}, backoff: {{initial: 10ms, max: 10ms}}}}")
        if needs:
            lines.append(f"    needs: [{', '.join(needs)}]")
            lines.append(f"    run_when: {when}")
    return runs.write_plan(folder, "\n".join(lines) + "\n")


def predicted(plan: Path, *args: str) -> dict[str, str]:
    out = io.StringIO()
    assert main(["plan", str(plan), "--json", *args], out=out) == 0
    return {t["key"]: t["action"] for t in json.loads(out.getvalue())["tasks"]}


def check(
    plan: Path, actions: dict[str, str], tasks: dict[str, tuple[list[str], int, str]]
) -> None:
    state = State(state_of(plan))
    run = state.runs("prop")[-1]
    started = {e.key for e in state.events(run.id) if e.kind == "attempt_started"}
    rows = state.tasks(run.id)
    final = {k: row.status.value for k, row in rows.items()}
    for key, action in actions.items():
        ran = key in started
        status = final.get(key)
        said = (key, action, status, rows[key].reason if key in rows else None)
        if action == "run":
            assert ran, said
        elif action == "wait":
            needs_ok = all(final.get(n) == "done" for n in tasks[key][0])
            assert ran or status in ("skipped", "cancelled") or not needs_ok, said
        elif action == "up to date":
            assert not ran, said
            assert status == "done", said
        else:  # fail, blocked, skip: never started
            assert not ran, said
            assert status in ("failed", "skipped", "cancelled"), said


@pytest.mark.slow
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(tasks=plans(), history=st.lists(STEP, min_size=2, max_size=4))
def test_plan_predicts_what_apply_does_over_random_histories(
    tmp_path_factory: pytest.TempPathFactory,
    clean_env: Path,
    tasks: dict[str, tuple[list[str], int, str]],
    history: list[tuple[str, object]],
) -> None:
    folder = tmp_path_factory.mktemp("prop")
    edits: dict[str, int] = {}
    plan = write(folder, tasks, edits)
    for kind, value in [*history, ("apply", None)]:
        options: list[str] = []
        if kind == "fail":
            assert isinstance(value, set)
            for key in KEYS:
                (folder / f"fail-{key}").unlink(missing_ok=True)
                if key in value:
                    (folder / f"fail-{key}").touch()
        elif kind == "edit":
            assert isinstance(value, str)
            edits[value] = edits.get(value, 0) + 1
            plan = write(folder, tasks, edits)
        elif kind == "rerun":
            options = ["--rerun-failed"]
        elif kind == "crash":
            assert isinstance(value, int)
            runs.apply(plan, fault=value)  # killed, or done if the run had fewer writes
            continue
        actions = predicted(plan, *options)
        assert main(["apply", str(plan), "--progress", "none", *options]) in (0, 1)
        check(plan, actions, tasks)
