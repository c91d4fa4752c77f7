"""Properties of the scheduler on random plans (hypothesis), under a virtual clock.

For any DAG, priorities, caps and outcomes: no task starts before its needs finish;
concurrency never exceeds any cap; every task ends in exactly one final status; a skip
names a need and a cause that really failed.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from planrun.core.events import EventKind, Observers
from planrun.core.outcomes import Outcome, Status
from planrun.run.context import RunSettings
from planrun.run.scheduler import Scheduler
from tests.fakes import FakeSession, Recorder, plan_from


@st.composite
def random_plans(draw: st.DrawFn) -> tuple[str, dict[str, list[tuple[float, Outcome]]], int, int]:
    n = draw(st.integers(1, 12))
    cap = draw(st.integers(1, 4))
    provider_cap = draw(st.integers(1, 3))
    lines = []
    script: dict[str, list[tuple[float, Outcome]]] = {}
    for i in range(n):
        needs = sorted(draw(st.sets(st.integers(0, i - 1), max_size=3))) if i else []
        priority = draw(st.integers(-2, 2))
        run_when = draw(st.sampled_from(["success", "success", "always", "failure"]))
        attempts = draw(st.integers(1, 3))
        agent = draw(st.booleans())
        what = "provider: agent" if agent else "run: [x]"
        need_list = ", ".join(f"T{j}" for j in needs)
        lines.append(
            f"  T{i}: {{{what}, priority: {priority}, needs: [{need_list}], run_when: {run_when},"
            f" retry: {{attempts: {attempts}, backoff: {{initial: 1s, jitter: 0}}}}}}"
        )
        script[f"T{i}"] = [
            (
                draw(st.sampled_from([0.5, 1.0, 2.0])),
                draw(
                    st.sampled_from(
                        [Outcome.SUCCEEDED, Outcome.SUCCEEDED, Outcome.FAILED, Outcome.TIMED_OUT]
                    )
                ),
            )
            for _ in range(attempts)
        ]
    text = (
        f"version: 1\nname: prop\nsettings: {{max_concurrent: {cap}}}\n"
        f"providers:\n  agent: {{command: [agent], max_concurrent: {provider_cap}}}\n"
        "tasks:\n" + "\n".join(lines) + "\n"
    )
    return text, script, cap, provider_cap


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_plans())
def test_scheduler_invariants(
    case: tuple[str, dict[str, list[tuple[float, Outcome]]], int, int],
) -> None:
    text, script, cap, provider_cap = case
    with tempfile.TemporaryDirectory() as tmp:
        plan = plan_from(text, Path(tmp))
        session = FakeSession(script)
        recorder = Recorder()
        scheduler = Scheduler(
            plan,
            RunSettings(run_id="p", state_dir=Path(tmp) / "s", environ={}),
            sessions={"subprocess": session},
            observers=Observers([recorder]),
        )
        trio.run(scheduler.run, clock=trio.testing.MockClock(autojump_threshold=0))

    state = scheduler.state
    # every task ends in exactly one final status, announced once
    finished = [e.key for e in recorder.events if e.kind is EventKind.TASK_FINISHED]
    assert sorted(finished) == sorted(state.tasks)
    assert all(t.status.is_final for t in state.tasks.values())

    # no task starts before its needs have finished
    ends = {
        key: max((r.end or 0) for r in session.runs if r.name == key)
        for key in {r.name for r in session.runs}
    }
    for run in session.runs:
        for need in plan.graph.waits_for(run.name):
            assert ends.get(need, 0) <= run.start, f"{run.name} started before {need} ended"

    # concurrency never exceeds any cap
    assert session.peak <= cap
    agent_keys = {k for k, t in plan.tasks.items() if t.provider == "agent"}
    for run in session.runs:
        live = [r for r in session.runs if r.start <= run.start < (r.end or 0)]
        assert len(live) <= cap
        assert len([r for r in live if r.name in agent_keys]) <= provider_cap

    # skips name a need and a cause that really failed
    for key, task_state in state.tasks.items():
        if task_state.status is Status.SKIPPED and not task_state.expected:
            assert task_state.cause is not None
            assert state.status(task_state.cause) is Status.FAILED
            need = task_state.reason.split()[1]
            assert need in plan.graph.waits_for(key)
