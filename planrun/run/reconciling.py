"""Before an apply decides: changesets whose base moved (planrun.changes.basemove).

Only for a plan with a changeset (imports nothing of planrun.changes otherwise). The
agent turn that resolves a rebase's conflicts and each task's verify on the rebased code
are one-off sessions (:mod:`planrun.run.oneoff`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from planrun.core.outcomes import Outcome, Status
from planrun.plan.resolved import CompiledPlan
from planrun.run.oneoff import OneOff, agent_task

#: One agent turn: (folder, prompt).
Turn = Callable[[Path, str], None]

if TYPE_CHECKING:
    from planrun.changes.basemove import Reconciled
    from planrun.run.context import RunSettings
    from planrun.state.folder import State


def reconcile_for(
    plan: CompiledPlan, state: State, settings: RunSettings, *, follow_up: bool = False
) -> Reconciled | None:
    """What moved bases (and with ``follow_up``, open PRs' reviews and failing checks)
    change in this apply (None: no changeset concerned)."""
    if state.readonly or state.store is None:
        return None
    from planrun.changes import basemove, followup
    from planrun.changes.propose import Watch
    from planrun.changes.records import recorded_changesets

    found = recorded_changesets(state.store, plan.name)
    if not found:
        return None
    oneoff = OneOff(
        plan, dict(settings.environ), settings.run_id, settings.state_dir / "logs" / "changesets"
    )
    landed = {k for k, t in state.known.items() if t.status is Status.DONE and t.landed_commit}
    edges = basemove.Edges(
        _turns(plan, oneoff), _verify(plan, oneoff), settings.environ,
        settings.state_dir / "worktrees-changesets", settings.run_id,
    )  # fmt: skip
    checks = Watch(plan, settings.run_id, oneoff.redact).checks
    done = basemove.reconcile(plan, found, checks, landed, edges)
    if follow_up:
        before = followup.answered(state.store, plan.name)
        more = followup.follow_up(plan, found, before, checks, landed, edges, oneoff.redact)
        done.merge(more)
    basemove.say(done, oneoff.redact)
    return done


def _turns(plan: CompiledPlan, oneoff: OneOff) -> Callable[[str, str], Turn | None]:
    """How one turn of a project's agent task runs (None: the project has no agent)."""

    def turn(project: str, what: str) -> Turn | None:
        task = agent_task(plan, project)
        if task is None:
            return None

        def one(folder: Path, prompt: str) -> None:
            result = oneoff.turn(task, folder, oneoff.redact(prompt), what)
            if result.outcome is not Outcome.SUCCEEDED:
                why = result.reason or result.outcome.value
                print(f"planrun: {task.key}'s {what} turn: {why}", file=sys.stderr)

        return one

    return turn


def _verify(plan: CompiledPlan, oneoff: OneOff) -> Callable[[str, Path], str | None]:
    def verify(key: str, folder: Path) -> str | None:
        task = plan.tasks[key]
        return None if task.verify is None else oneoff.command(task, task.verify, folder, "verify")

    return verify
