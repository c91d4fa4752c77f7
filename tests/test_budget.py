"""Wall time budgets are limits (matrix R2): a running attempt ends where the budget runs out,
and an attempt is recorded only if it runs. Real `planrun apply` runs."""

from __future__ import annotations

import json
from pathlib import Path

from tests import runs


def _task(plan: Path, key: str) -> dict:  # type: ignore[type-arg]
    report = json.loads((runs.last_run_folder(plan) / "report.json").read_text())
    return next(t for t in report["tasks"] if t["key"] == key)  # type: ignore[no-any-return]


def test_a_run_wall_time_budget_ends_the_running_attempt(tmp_path: Path, clean_env: Path) -> None:
    plan = runs.write_plan(
        tmp_path,
        """\
version: 1
name: budget
settings: {budget: {wall_time: 1s}, kill_grace: 0.2s}
tasks:
  LONG: {run: [sh, -c, "echo started; sleep 60; echo finished > finished"]}
""",
    )
    result = runs.apply(plan)  # runs.planrun's timeout (60 s) fails the test if it waits
    assert result.returncode == 1, result.stderr
    task = _task(plan, "LONG")
    [attempt] = task["attempts"]
    assert attempt["outcome"] == "budget_exceeded"
    assert "run wall time budget of 1s reached" in attempt["reason"]
    assert task["status"] == "failed"
    assert not (tmp_path / "finished").exists()


def test_retries_stop_at_a_task_budget_and_every_recorded_attempt_ran(
    tmp_path: Path, clean_env: Path
) -> None:
    plan = runs.write_plan(
        tmp_path,
        """\
version: 1
name: budget
settings: {kill_grace: 0.2s}
tasks:
  HANG:
    timeout: 0.5s
    budget: {wall_time: 1.6s}
    retry: {attempts: 10, on: [timed_out], backoff: {initial: 0.01s}}
    run: [sh, -c, "echo started $PLANRUN_ATTEMPT; sleep 60"]
""",
    )
    result = runs.apply(plan)
    assert result.returncode == 1, result.stderr
    task = _task(plan, "HANG")
    attempts = task["attempts"]
    assert 1 < len(attempts) < 10
    assert {a["outcome"] for a in attempts[:-1]} == {"timed_out"}
    assert attempts[-1]["outcome"] in ("timed_out", "budget_exceeded")
    for attempt in attempts:  # no attempt recorded that never started a process
        assert f"started {attempt['number']}" in Path(attempt["log_path"]).read_text()
    assert "task wall time budget of 1.6s reached" in task["reason"]
