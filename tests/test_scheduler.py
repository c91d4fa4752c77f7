"""Scheduling logic under trio's autojump clock, with a scripted session backend."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from planrun.core.events import Observers
from planrun.core.outcomes import Outcome, Status
from planrun.plan.resolved import CompiledPlan
from planrun.run.context import RunSettings
from planrun.run.scheduler import Scheduler
from tests.fakes import FakeSession, Recorder, plan_from

OK, FAIL, TIMEOUT = Outcome.SUCCEEDED, Outcome.FAILED, Outcome.TIMED_OUT


async def run(
    plan: CompiledPlan, tmp_path: Path, session: FakeSession, **settings: object
) -> tuple[Scheduler, Recorder]:
    recorder = Recorder()
    scheduler = Scheduler(
        plan,
        RunSettings(run_id="r1", state_dir=tmp_path / ".planrun", environ={}, **settings),  # type: ignore[arg-type]
        sessions={"subprocess": session},
        observers=Observers([recorder]),
    )
    await scheduler.run()
    return scheduler, recorder


def tasks_yaml(body: str, settings: str = "max_concurrent: 4") -> str:
    return f"version: 1\nname: t\nsettings: {{{settings}}}\ntasks:\n{body}"


async def test_a_task_starts_the_moment_its_last_need_finishes(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    plan = plan_from(
        tasks_yaml("""
  A: {run: [a]}
  B: {run: [b]}
  C: {run: [c], needs: [A, B]}
"""),
        tmp_path,
    )
    session = FakeSession({"A": [(1.0, OK)], "B": [(2.5, OK)]})
    t0 = trio.current_time()
    scheduler, _ = await run(plan, tmp_path, session)
    assert session.starts("C") == [pytest.approx(t0 + 2.5)]
    assert scheduler.state.succeeded


async def test_ready_order_is_priority_then_work_behind_then_key(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    plan = plan_from(
        tasks_yaml(
            """
  X: {run: [x]}
  W: {run: [w]}
  Z: {run: [z]}
  Z2: {run: [z], needs: [Z]}
  Z3: {run: [z], needs: [Z2]}
  HIGH: {run: [h], priority: 7}
""",
            "max_concurrent: 1",
        ),
        tmp_path,
    )
    session = FakeSession()
    await run(plan, tmp_path, session)
    # Z has most work behind it; once Z2 is done, W, X and Z3 tie and go by key
    assert session.order() == ["HIGH", "Z", "Z2", "W", "X", "Z3"]


async def test_global_provider_and_project_caps_hold(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    (tmp_path / "proj").mkdir()
    plan = plan_from(
        """version: 1
name: caps
settings: {max_concurrent: 3}
providers:
  agent: {command: [agent], max_concurrent: 1}
projects:
  p: {path: proj, max_concurrent: 2, worktrees: false}
tasks:
  A1: {provider: agent}
  A2: {provider: agent}
  A3: {provider: agent}
  P1: {run: [p], project: p}
  P2: {run: [p], project: p}
  P3: {run: [p], project: p}
  F1: {run: [f]}
""",
        tmp_path,
    )
    session = FakeSession()
    t0 = trio.current_time()
    await run(plan, tmp_path, session)
    assert session.peak <= 3
    agent_runs = sorted(r.start - t0 for r in session.runs if r.name.startswith("A"))
    assert agent_runs == [0, 1, 2]  # one at a time
    for when in {r.start for r in session.runs}:
        live = [r for r in session.runs if r.start <= when < (r.end or 0)]
        assert len([r for r in live if r.name.startswith("P")]) <= 2
        assert len([r for r in live if r.name.startswith("A")]) <= 1


async def test_backoff_holds_no_slot_and_the_retry_queues_again(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    plan = plan_from(
        tasks_yaml(
            """
  FLAKY:
    run: [f]
    priority: 5
    retry: {attempts: 3, backoff: {initial: 5s, factor: 2, jitter: 0}}
  OTHER: {run: [o]}
""",
            "max_concurrent: 1",
        ),
        tmp_path,
    )
    session = FakeSession({"FLAKY": [(1, FAIL), (1, FAIL), (1, OK)], "OTHER": [(2, OK)]})
    t0 = trio.current_time()
    scheduler, recorder = await run(plan, tmp_path, session)
    starts = [s - t0 for s in session.starts("FLAKY")]
    assert starts == [0, 6, 17]  # 1 s run + 5 s, then 1 s run + 10 s
    assert session.starts("OTHER") == [t0 + 1]  # ran while FLAKY backed off
    assert scheduler.state.status("FLAKY") is Status.DONE
    assert [a.outcome for a in scheduler.reports["FLAKY"].attempts] == [
        "failed",
        "failed",
        "succeeded",
    ]
    assert recorder.kinds("FLAKY").count("retry_scheduled") == 2


async def test_only_outcomes_in_retry_on_are_retried(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    plan = plan_from(
        tasks_yaml("""
  SLOW:
    run: [s]
    retry: {attempts: 3, on: [failed], backoff: {initial: 1s}}
"""),
        tmp_path,
    )
    session = FakeSession({"SLOW": [(1, TIMEOUT), (1, OK)]})
    scheduler, _ = await run(plan, tmp_path, session)
    assert len(session.starts("SLOW")) == 1
    assert scheduler.state.status("SLOW") is Status.FAILED
    assert scheduler.state["SLOW"].reason.startswith("timed_out")


async def test_skips_name_the_need_and_the_task_that_failed(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    plan = plan_from(
        tasks_yaml("""
  A: {run: [a]}
  B: {run: [b], needs: [A]}
  C: {run: [c], needs: [B]}
  ALWAYS: {run: [x], needs: [C], run_when: always}
  ONFAIL: {run: [x], needs: [A], run_when: failure}
  NOFAIL: {run: [x], needs: [ALWAYS], run_when: failure}
"""),
        tmp_path,
    )
    session = FakeSession({"A": [(1, FAIL)]})
    scheduler, _ = await run(plan, tmp_path, session)
    state = scheduler.state
    assert (state.status("B"), state["B"].reason, state["B"].cause) == (
        Status.SKIPPED,
        "need A failed",
        "A",
    )
    assert (state.status("C"), state["C"].reason, state["C"].cause) == (
        Status.SKIPPED,
        "need B skipped because A failed",
        "A",
    )
    assert state.status("ALWAYS") is Status.DONE
    assert state.status("ONFAIL") is Status.DONE
    assert state.status("NOFAIL") is Status.SKIPPED
    assert state["NOFAIL"].expected
    assert not state.succeeded


async def test_on_failure_stop_starts_nothing_new(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    plan = plan_from(
        tasks_yaml(
            """
  BAD: {run: [b], priority: 9}
  RUNNING: {run: [r], priority: 8}
  LATER: {run: [l]}
""",
            "max_concurrent: 2, on_failure: stop",
        ),
        tmp_path,
    )
    session = FakeSession({"BAD": [(1, FAIL)], "RUNNING": [(3, OK)]})
    scheduler, _ = await run(plan, tmp_path, session)
    assert scheduler.state.status("RUNNING") is Status.DONE  # allowed to finish
    assert scheduler.state.status("LATER") is Status.CANCELLED
    assert session.starts("LATER") == []


async def test_on_failure_cancel_cancels_running_tasks(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    plan = plan_from(
        tasks_yaml(
            """
  BAD: {run: [b]}
  LONG: {run: [l]}
  AFTER: {run: [a], needs: [LONG]}
""",
            "on_failure: cancel",
        ),
        tmp_path,
    )
    session = FakeSession({"BAD": [(1, FAIL)], "LONG": [(100, OK)]})
    t0 = trio.current_time()
    scheduler, _ = await run(plan, tmp_path, session)
    assert scheduler.state.status("LONG") is Status.CANCELLED
    assert scheduler.state.status("AFTER") is Status.CANCELLED
    assert trio.current_time() - t0 < 2
    assert scheduler.reports["LONG"].attempts[0].outcome == "cancelled"


async def test_a_parent_is_done_when_its_children_are(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    plan = plan_from(
        tasks_yaml("""
  FIRST: {run: [f]}
  EPIC: {title: Epic, needs: [FIRST]}
  C1: {parent: EPIC, run: [c]}
  C2: {parent: EPIC, run: [c]}
  AFTER: {run: [a], needs: [EPIC]}
"""),
        tmp_path,
    )
    session = FakeSession({"C2": [(3, OK)]})
    t0 = trio.current_time()
    scheduler, _ = await run(plan, tmp_path, session)
    assert session.starts("C1") == [t0 + 1]  # the parent's needs apply to its children
    assert session.starts("AFTER") == [t0 + 4]
    assert scheduler.state.status("EPIC") is Status.DONE


async def test_only_runs_the_tasks_and_their_needs(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    plan = plan_from(
        tasks_yaml("""
  A: {run: [a]}
  B: {run: [b], needs: [A]}
  C: {run: [c]}
"""),
        tmp_path,
    )
    session = FakeSession()
    scheduler, _ = await run(plan, tmp_path, session, only=["B"])
    assert sorted(r.name for r in session.runs) == ["A", "B"]
    assert "C" not in scheduler.reports


async def test_interrupt_cancels_running_tasks_and_marks_the_run(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    plan = plan_from(
        tasks_yaml("""
  LONG: {run: [l]}
  NEXT: {run: [n], needs: [LONG]}
"""),
        tmp_path,
    )
    session = FakeSession({"LONG": [(100, OK)]})
    recorder = Recorder()
    scheduler = Scheduler(
        plan,
        RunSettings(run_id="r", state_dir=tmp_path, environ={}),
        sessions={"subprocess": session},
        observers=Observers([recorder]),
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(scheduler.run)
        await trio.sleep(5)
        scheduler.interrupt()
    assert scheduler.status == "interrupted"
    assert scheduler.state.status("LONG") is Status.CANCELLED
    assert scheduler.state["NEXT"].status is Status.CANCELLED


async def test_attempts_started_by_earlier_runs_count(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    plan = plan_from(
        tasks_yaml("""
  CRASHY: {run: [c], retry: {attempts: 2}}
"""),
        tmp_path,
    )
    session = FakeSession()
    scheduler, _ = await run(plan, tmp_path, session, prior_attempts={"CRASHY": 2})
    assert session.runs == []
    assert scheduler.state.status("CRASHY") is Status.FAILED
    assert "no attempts left" in scheduler.state["CRASHY"].reason


async def test_up_to_date_tasks_are_not_run(tmp_path: Path, autojump_clock: trio.abc.Clock) -> None:
    plan = plan_from(
        tasks_yaml("""
  A: {run: [a]}
  B: {run: [b], needs: [A]}
"""),
        tmp_path,
    )
    session = FakeSession()
    scheduler, _ = await run(plan, tmp_path, session, done={"A": "up to date"})
    assert [r.name for r in session.runs] == ["B"]
    assert scheduler.state["A"].reason == "up to date"
