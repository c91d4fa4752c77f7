"""Matrix L5: random plans, killed at a random journal write, resumed to the end.

Each example is a random DAG of 6-10 shell tasks (some flaky: they fail once, then
succeed on their retry; some broken: they always fail), applied by a real planrun that
the fault seam (``PLANRUN_FAULT_AT=k``) kills with SIGKILL right after its k-th journal
write, then applied again until the run is over. Whatever k hit, the end must be what a
run without a crash gives:

- every task ends done, failed (the broken ones) or skipped (what waits on them), with a
  reason for each failure and skip;
- no task ran more often than attempts were recorded for it (an attempt is recorded
  before its process starts), and a task whose success was recorded never ran again;
- nothing the killed planrun started is left running (and the autouse leak check).

The examples are fixed (``derandomize``): the same plans and faults every run.
"""

from __future__ import annotations

import signal
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from planrun.cli import main
from tests import runs
from tests.runs import State, effects


@dataclass(frozen=True)
class Spec:
    needs: tuple[int, ...]
    kind: str  # "plain", "flaky" (fails once) or "broken" (always fails)


@st.composite
def dags(draw: st.DrawFn) -> tuple[list[Spec], int]:
    size = draw(st.integers(6, 10))
    specs = []
    for i in range(size):
        needs = draw(st.sets(st.integers(0, i - 1), max_size=2)) if i else set()
        kind = draw(st.sampled_from(["plain", "plain", "plain", "flaky", "broken"]))
        specs.append(Spec(tuple(sorted(needs)), kind))
    fault = draw(st.integers(1, 6 * size))
    return specs, fault


def plan_text(specs: list[Spec], folder: Path) -> str:
    fx = folder / "effects.log"
    lines = [
        "version: 1",
        "name: soak",
        "settings: {max_concurrent: 2}",
        "defaults:",
        "  retry: {attempts: 2, backoff: {initial: 10ms, factor: 1, max: 10ms, jitter: 0}}",
        "tasks:",
    ]
    for i, spec in enumerate(specs):
        script = f"echo T{i} >> {fx}"
        if spec.kind == "flaky":
            mark = folder / f"flaky-T{i}"
            script += f"; [ -e {mark} ] || {{ touch {mark}; exit 1; }}"
        elif spec.kind == "broken":
            script += "; exit 1"
        needs = ", ".join(f"T{n}" for n in spec.needs)
        lines.append(f"  T{i}: {{run: [sh, -c, {script!r}], needs: [{needs}]}}")
    return "\n".join(lines) + "\n"


def expected(specs: list[Spec]) -> dict[str, str]:
    """What a run without a crash ends with."""
    status: dict[str, str] = {}
    for i, spec in enumerate(specs):
        if any(status[f"T{n}"] != "done" for n in spec.needs):
            status[f"T{i}"] = "skipped"
        else:
            status[f"T{i}"] = "failed" if spec.kind == "broken" else "done"
    return status


@pytest.mark.slow
@settings(
    max_examples=20,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(example=dags())
def test_random_plans_killed_at_a_random_write_resume_to_the_same_end(
    example: tuple[list[Spec], int], tmp_path_factory: pytest.TempPathFactory, clean_env: Path
) -> None:
    specs, fault = example
    folder = tmp_path_factory.mktemp("soak")
    plan = runs.write_plan(folder, plan_text(specs, folder))
    state = State(folder / ".planrun")

    killed = runs.apply(plan, fault=fault)
    assert killed.returncode in (0, 1, -signal.SIGKILL), killed.stderr
    durable = {str(e.key) for e in state.events(plan="soak") if e.kind == "task_done"}
    ran_before = effects(folder / "effects.log")

    for _ in range(3):  # resumes: a crash is not charged, so the run ends within a few
        if main(["apply", str(plan), "--progress", "none"]) == 0:
            break
        last = state.runs("soak")[-1]
        if all(
            t.status.value in ("done", "failed", "skipped") for t in state.tasks(last.id).values()
        ):
            break
    last = state.runs("soak")[-1]
    final = state.tasks(last.id)
    assert {key: row.status.value for key, row in final.items()} == expected(specs), fault
    for key, row in final.items():
        if row.status.value in ("failed", "skipped"):
            assert row.reason, (key, fault)

    ran = effects(folder / "effects.log")
    attempts = Counter(e.key for e in state.events(plan="soak") if e.kind == "attempt_started")
    for key, count in ran.items():
        assert count <= attempts[key], (key, count, attempts[key], fault)
    again = {key for key in durable if ran[key] != ran_before[key]}
    assert not again, (again, fault)  # recorded done: never run again
    marker = f"PLANRUN_PLAN={plan}"
    runs.wait_for(lambda: not runs.marked(marker), 10, f"fault {fault}: leftovers to go")
