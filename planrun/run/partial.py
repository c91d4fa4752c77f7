"""Partial work a budget cut short: committed on its task branch, kept, not landed.

When a task's turns, tokens, cost or wall time run out (``budget_exceeded``), what its
worktree changed so far is committed on the task branch (hooks off, a message saying
so). It does not land; the worktree and branch stay as for any failed task, so that
``planrun apply --rerun-failed`` (with a bigger budget: budgets are not part of a task's
fingerprint) continues from that commit (docs/state.md, "Running a plan again").
"""

from __future__ import annotations

from planrun.core.outcomes import Outcome, Status
from planrun.errors import GitError
from planrun.plan.resolved import Task
from planrun.workspace.base import Prepared, Workspace

BUDGET = Outcome.BUDGET_EXCEEDED


async def keep_failed(
    workspace: Workspace, task: Task, prepared: Prepared, outcome: Outcome
) -> str:
    """Keep a failed attempt's worktree; a budget's partial work is committed first.
    What to add to the task's reason."""
    said = await _commit_partial(workspace, task, prepared) if outcome is BUDGET else ""
    await workspace.keep(task, prepared, Status.FAILED)
    return said


async def _commit_partial(workspace: Workspace, task: Task, prepared: Prepared) -> str:
    message = (
        f"planrun: {task.key}: partial work (budget exceeded)\n\n"
        "The task's budget ran out before it finished: this is its work so far, kept on\n"
        "its branch and not landed. `planrun apply --rerun-failed` continues it."
    )
    try:
        commit = await workspace.commit(task, prepared, message)
    except GitError as exc:
        return f" (its partial work could not be committed: {exc})"
    if commit is None or prepared.branch is None:
        return ""
    return f"; its partial work is kept on {prepared.branch} ({commit[:12]})"
