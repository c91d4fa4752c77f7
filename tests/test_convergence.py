"""``apply`` converges: what is done with an unchanged definition is not run again (SPEC §5).

Each task appends its key to ``effects.log`` when it runs, so "ran" is counted from side
effects, and the reasons come from the store (the run's task rows and its run_plan event).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from planrun.cli import main
from planrun.core.decision import Decision, Known, decide
from planrun.core.fingerprint import fingerprint
from planrun.core.names import state_folder
from planrun.core.outcomes import Status
from planrun.plan.model import Settings
from tests.fakes import plan_from
from tests.runs import State, effects, write_plan

PLAN = """\
version: 1
name: conv
settings: {{max_concurrent: 2}}
tasks:
  A: {{run: [sh, -c, "echo A >> effects.log"]{a}}}
  B: {{run: [sh, -c, "echo B >> effects.log"], needs: [A]{b}}}
  C: {{run: [sh, -c, "echo C >> effects.log"], needs: [B]}}
  D: {{run: [sh, -c, "echo D >> effects.log"]}}
"""


def plan_text(a: str = "", b: str = "") -> str:
    return PLAN.format(a=a, b=b)


def apply(plan: Path, *args: str) -> int:
    return main(["apply", str(plan), "--progress", "none", *args])


def last_run(plan: Path) -> str:
    return State(plan.parent / ".planrun").runs("conv")[-1].id


def reasons(plan: Path) -> dict[str, str]:
    """Each task's reason in the last run: its task row's, else apply's decision."""
    state = State(plan.parent / ".planrun")
    run = last_run(plan)
    rows = state.tasks(run)
    decided = state.decisions(run)
    return {k: rows[k].reason if rows[k].reason else decided[k] for k in rows}


@pytest.fixture
def plan(tmp_path: Path, clean_env: Path) -> Path:
    path = write_plan(tmp_path, plan_text())
    assert apply(path) == 0
    assert effects(tmp_path / "effects.log") == {"A": 1, "B": 1, "C": 1, "D": 1}
    return path


def test_a_second_apply_runs_nothing(plan: Path) -> None:
    first = last_run(plan)
    assert apply(plan) == 0
    assert effects(plan.parent / "effects.log") == {"A": 1, "B": 1, "C": 1, "D": 1}
    rows = State(plan.parent / ".planrun").tasks(last_run(plan))
    assert {k: (r.status, r.reason) for k, r in rows.items()} == {
        k: (Status.DONE, f"up to date (done in run {first})") for k in "ABCD"
    }
    assert not [
        e
        for e in State(plan.parent / ".planrun").events(last_run(plan))
        if e.kind == "attempt_started"
    ]


def test_a_changed_task_reruns_with_its_dependents_only(plan: Path) -> None:
    first = last_run(plan)
    plan.write_text(
        plan_text(b=', env: {LEVEL: "2"}').replace(
            'effects.log"], needs', 'effects.log; true"], needs', 1
        )
    )
    assert apply(plan) == 0
    assert effects(plan.parent / "effects.log") == {"A": 1, "B": 2, "C": 2, "D": 1}
    decided = State(plan.parent / ".planrun").decisions(last_run(plan))
    assert decided["B"] == "changed: env, run"
    assert decided["C"] == "need B runs again"
    assert decided["A"] == decided["D"] == f"up to date (done in run {first})"
    assert reasons(plan)["A"] == f"up to date (done in run {first})"


@pytest.mark.parametrize("change", [", priority: 9", ", timeout: 5m", ", retry: {attempts: 5}"])
def test_scheduling_fields_do_not_rerun(plan: Path, change: str) -> None:
    plan.write_text(plan_text(a=change))
    assert apply(plan) == 0
    assert effects(plan.parent / "effects.log") == {"A": 1, "B": 1, "C": 1, "D": 1}


def test_force_reruns_the_task_and_its_dependents(plan: Path) -> None:
    assert apply(plan, "--force", "B") == 0
    assert effects(plan.parent / "effects.log") == {"A": 1, "B": 2, "C": 2, "D": 1}
    decided = State(plan.parent / ".planrun").decisions(last_run(plan))
    assert decided["B"] == "forced"
    assert decided["C"] == "need B runs again"


def test_force_all_reruns_everything(plan: Path) -> None:
    assert apply(plan, "--force-all") == 0
    assert effects(plan.parent / "effects.log") == {"A": 2, "B": 2, "C": 2, "D": 2}


def test_a_need_done_again_later_reruns_its_dependents(plan: Path) -> None:
    """--only A re-runs A alone; the next apply sees B and C older than A and runs them."""
    plan.write_text(plan_text(a=', env: {V: "2"}'))
    assert apply(plan, "--only", "A") == 0
    assert effects(plan.parent / "effects.log") == {"A": 2, "B": 1, "C": 1, "D": 1}
    only_run = last_run(plan)
    assert apply(plan) == 0
    assert effects(plan.parent / "effects.log") == {"A": 2, "B": 2, "C": 2, "D": 1}
    decided = State(plan.parent / ".planrun").decisions(last_run(plan))
    assert decided["B"] == f"need A was done again after it (run {only_run})"
    assert decided["C"] == "need B runs again"


def test_failed_tasks_keep_their_spent_attempts_until_rerun_failed(
    tmp_path: Path, clean_env: Path
) -> None:
    plan = write_plan(
        tmp_path,
        """\
version: 1
name: conv
tasks:
  F:
    retry: {attempts: 2, backoff: {initial: 10ms, factor: 1, max: 10ms, jitter: 0}}
    run: [sh, -c, "echo F >> effects.log; test -e ok"]
  G: {run: [sh, -c, "echo G >> effects.log"], needs: [F]}
""",
    )
    assert apply(plan) == 1
    assert effects(tmp_path / "effects.log") == {"F": 2}
    assert apply(plan) == 1  # both attempts are spent: F fails without running
    assert effects(tmp_path / "effects.log") == {"F": 2}
    rows = State(tmp_path / ".planrun").tasks(last_run(plan))
    assert rows["F"].status is Status.FAILED
    assert "no attempts left" in rows["F"].reason
    assert State(tmp_path / ".planrun").decisions(last_run(plan))["F"] == (
        "not done: failed last time"
    )
    (tmp_path / "ok").touch()
    assert apply(plan, "--rerun-failed") == 0
    assert effects(tmp_path / "effects.log") == {"F": 3, "G": 1}


# ---------------------------------------------------------------- decide() alone


def test_decide_names_changed_fields_and_spares_scheduling(tmp_path: Path) -> None:
    text = "version: 1\ntasks:\n  A: {run: [echo, a]}\n  B: {run: [echo, b], needs: [A]}\n"
    before = plan_from(text, tmp_path)
    fps = {k: fingerprint(before, before.tasks[k]) for k in before.work}
    known = {
        k: Known(fp, Status.DONE, 0, "r1", fields, done_order=0) for k, (fp, fields) in fps.items()
    }
    after = plan_from(text.replace("[echo, b]", "[echo, bb], priority: 3"), tmp_path)
    now = {k: fingerprint(after, after.tasks[k]) for k in after.work}
    assert decide(after, now, known) == {
        "A": Decision(False, "up to date (done in run r1)"),
        "B": Decision(True, "changed: run", fresh=True),
    }
    interrupted = {**known, "A": Known(fps["A"][0], Status.RUNNING, 2)}
    assert decide(before, fps, interrupted)["A"] == Decision(
        True, "not done: interrupted last time", prior_attempts=2
    )


def test_each_plan_has_its_own_default_state_folder() -> None:
    assert Settings().state_dir is None
    assert state_folder("a", None) != state_folder("b", None)
    assert state_folder("a", "custom") == "custom"
