"""Before an apply decides: changesets whose base moved (planrun.changes.reconcile).

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

if TYPE_CHECKING:
    from planrun.changes.reconcile import Reconciled
    from planrun.run.context import RunSettings
    from planrun.state.folder import State


def reconcile_for(plan: CompiledPlan, state: State, settings: RunSettings) -> Reconciled | None:
    """What moved bases change in this apply (None: no changeset concerned)."""
    if state.readonly or state.store is None:
        return None
    specs = [p.changeset for p in plan.projects.values() if p.changeset is not None]
    if not any(c.on_base_change != "ignore" for c in specs):
        return None
    from planrun.changes.propose import Watch
    from planrun.changes.reconcile import Edges, reconcile, say
    from planrun.changes.records import recorded_changesets

    found = recorded_changesets(state.store, plan.name)
    if not found:
        return None
    oneoff = OneOff(
        plan, dict(settings.environ), settings.run_id, settings.state_dir / "logs" / "changesets"
    )
    landed = {k for k, t in state.known.items() if t.status is Status.DONE and t.landed_commit}

    def resolve(project: str) -> Callable[[Path, str], None] | None:
        task = agent_task(plan, project)
        if task is None:
            return None

        def turn(folder: Path, prompt: str) -> None:
            result = oneoff.turn(task, folder, oneoff.redact(prompt), "rebase")
            if result.outcome is not Outcome.SUCCEEDED:
                why = result.reason or result.outcome.value
                print(f"planrun: {task.key}'s turn on the conflicts: {why}", file=sys.stderr)

        return turn

    def verify(key: str, folder: Path) -> str | None:
        task = plan.tasks[key]
        return None if task.verify is None else oneoff.command(task, task.verify, folder, "verify")

    edges = Edges(resolve, verify, settings.environ, settings.state_dir / "rebase", settings.run_id)
    checks = Watch(plan, settings.run_id, oneoff.redact).checks
    done = reconcile(plan, found, checks, landed, edges)
    say(done)
    return done
