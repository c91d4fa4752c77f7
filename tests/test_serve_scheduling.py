"""The scheduler's seams that planrun serve uses, under trio's autojump clock: two runs
sharing one set of caps (a freed slot wakes the other run, which waits instead of
ending), one task cancelled with its reason (running or still queued), and draining."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from planrun.core import events as ev
from planrun.core.events import Observers
from planrun.core.outcomes import Outcome, Status
from planrun.core.runstate import Caps
from planrun.errors import PlanError
from planrun.plan.resolved import CompiledPlan
from planrun.run.context import RunSettings
from planrun.run.scheduler import Scheduler
from tests.fakes import FakeSession, plan_from

PLAN = """\
version: 1
name: t
settings: {max_concurrent: 1}
tasks:
  A: {run: [a]}
  B: {run: [b]}
  C: {run: [c]}
"""


class Wake:
    """As serve's: a task that gave its slot back wakes every run sharing the caps."""

    def __init__(self) -> None:
        self.runs: list[Scheduler] = []

    def event(self, event: ev.Event) -> None:
        if isinstance(event, ev.TaskFinished):
            for scheduler in self.runs:
                scheduler.wake()


def scheduler(
    plan: CompiledPlan, tmp_path: Path, session: FakeSession, only: list[str], wake: Wake
) -> Scheduler:
    settings = RunSettings(
        run_id="-".join(only), state_dir=tmp_path / ".planrun", environ={}, only=only
    )
    made = Scheduler(plan, settings, sessions={"subprocess": session}, observers=Observers([wake]))
    made.waits_for_slots = True
    wake.runs.append(made)
    return made


async def test_two_runs_share_one_slot_and_the_second_waits_for_it(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    plan = plan_from(PLAN, tmp_path)
    session = FakeSession({"A": [(5.0, Outcome.SUCCEEDED)], "B": [(1.0, Outcome.SUCCEEDED)]})
    wake, caps = Wake(), Caps(total=1)
    first = scheduler(plan, tmp_path, session, ["A"], wake)
    second = scheduler(plan, tmp_path, session, ["B"], wake)
    first.state.caps = second.state.caps = caps
    t0 = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(first.run)
        await trio.sleep(1)  # A holds the one slot
        nursery.start_soon(second.run)
    assert session.starts("B") == [pytest.approx(t0 + 5.0)]  # not before A gave it back
    assert session.peak == 1
    assert first.state.succeeded
    assert second.state.succeeded


async def test_one_task_is_cancelled_with_its_reason_running_or_queued(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    plan = plan_from(PLAN, tmp_path)
    session = FakeSession({"A": [(60.0, Outcome.SUCCEEDED)]})
    run = scheduler(plan, tmp_path, session, ["A", "B", "C"], Wake())
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run.run)
        await trio.sleep(1)
        assert run.cancel_task("A", "cancelled: item closed")  # running
    assert run.state["A"].status is Status.CANCELLED
    assert run.state["A"].reason == "cancelled: item closed"
    assert run.ledger.tasks["A"].reason == "cancelled: item closed"
    assert run.state["B"].status is Status.DONE  # the run went on
    assert run.state["C"].status is Status.DONE
    assert run.cancel_task("C", "too late") is False  # neither runs nor waits


async def test_a_queued_task_is_cancelled_without_starting(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    plan = plan_from(PLAN, tmp_path)
    session = FakeSession({"A": [(10.0, Outcome.SUCCEEDED)]})
    run = scheduler(plan, tmp_path, session, ["A", "B"], Wake())
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run.run)
        await trio.sleep(1)
        assert run.state["B"].status is Status.READY  # waits for the one slot
        assert run.cancel_task("B", "gone")
    assert session.starts("B") == []
    assert run.state["B"].reason == "gone"
    assert run.state["A"].status is Status.DONE


async def test_drain_lets_running_tasks_finish_and_starts_nothing_new(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    plan = plan_from(PLAN, tmp_path)
    session = FakeSession({"A": [(10.0, Outcome.SUCCEEDED)]})
    run = scheduler(plan, tmp_path, session, ["A", "B"], Wake())
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run.run)
        await trio.sleep(1)
        run.drain()
    assert run.state["A"].status is Status.DONE  # finished, not cancelled
    assert session.starts("B") == []
    assert run.state["B"].status is Status.CANCELLED


def test_the_plan_sets_serve_s_interval(tmp_path: Path) -> None:
    plan = plan_from(PLAN.replace("{max_concurrent: 1}", "{serve: {interval: 5m}}"), tmp_path)
    assert plan.settings.serve_interval == 300.0
    assert plan_from(PLAN, tmp_path).settings.serve_interval == 60.0
    with pytest.raises(PlanError) as caught:
        plan_from(PLAN.replace("{max_concurrent: 1}", "{serve: {interval: 0s}}"), tmp_path)
    assert "interval" in str(caught.value)
