"""``planrun approve PLAN KEY``: land a task held in review and release what waits for it.

The task's work is already committed on its branch. Approving lands it on the target with
the project's strategy (in a commit whose trailer names the task, as every landing) and
records the task as durably done; the next ``apply`` runs its dependents. Whether the
task is in review at all is the one decision ``plan`` and ``apply`` use
(:func:`planrun.run.prepare.decide_for`). It takes the state lock, so it waits for no running
apply: one holding the lock makes it exit 3.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TextIO

import trio

from planrun.commands.apply import check_keys
from planrun.core.decision import Action
from planrun.errors import MergeConflict, UsageError
from planrun.plan.load import load_plan
from planrun.plan.resolved import CompiledPlan, Task
from planrun.run.environment import secrets_masked
from planrun.run.prepare import decide_for, fingerprints_of
from planrun.state.folder import STATE_FILE, State, open_state
from planrun.state.locate import state_dir_for
from planrun.state.records import TaskDone
from planrun.workspace.base import Landed, Prepared
from planrun.workspace.trailers import Mark


def run_approve(args: argparse.Namespace, out: TextIO) -> int:
    from planrun.commands.shared_views import store_url
    from planrun.state.lock import StateLock

    url = store_url(args)
    if url is not None:  # a shared run: approved from any machine (docs/scale-out.md)
        from planrun.commands.shared_approve import run_shared_approve

        return run_shared_approve(args, url, out)

    plan = load_plan(Path(args.plan))
    check_keys(plan, [args.key], "approve")
    state_dir = state_dir_for(plan, args.state_dir)
    if not (state_dir / STATE_FILE).exists():
        raise UsageError(f"{args.key} is not in review: no run of {plan.name} is recorded here")
    with (
        secrets_masked(plan) as redact,
        StateLock.acquire(state_dir),
        open_state(plan, state_dir) as state,
    ):
        said = _approve(plan, state, state_dir, args.key, str(args.plan))
    print(redact(said), file=out)
    return 0 if said.startswith("approved") else 1


def _approve(plan: CompiledPlan, state: State, state_dir: Path, key: str, given: str) -> str:
    """Land ``key``'s reviewed work and record it done; what to tell the user (``given``:
    the plan as the user named it, for the command to type next)."""
    fingerprints = fingerprints_of(plan)
    step = decide_for(plan, state.known, fingerprints=fingerprints).steps.get(key)
    if step is None or step.action is not Action.IN_REVIEW:
        raise UsageError(_not_in_review(state, key, step.why if step else ""))
    assert state.store is not None
    run = state.store.last_run(plan.name)
    assert run is not None
    fp, fields = fingerprints[key]
    attempt = state.known[key].last_attempt or f"{run.id}#0"
    prepared = Prepared(cwd=plan.directory, mark=Mark(plan.name, key, fp, attempt))
    try:
        prepared, landed = trio.run(_land, plan, state_dir, plan.tasks[key], prepared)
    except MergeConflict as exc:
        return (
            f"planrun: approving {key} conflicts on {', '.join(exc.paths) or 'its changes'}; "
            f"it stays in review (branch {prepared.branch or 'of the task'})"
        )
    done = TaskDone(
        plan_name=plan.name,
        key=key,
        fingerprint=fp,
        reason="approved",
        branch=prepared.branch,
        landed_commit=landed.commit,
        diffstat=landed.diffstat,
        data={"fields": dict(fields), "title": plan.tasks[key].title},
    )
    state.store.task_done(run.id, done)
    where = f"landed {landed.commit[:12]}" if landed.commit else "nothing to land"
    return f"approved {key}: {where}; `planrun apply {given}` runs what waited for it"


def _not_in_review(state: State, key: str, why: str) -> str:
    seen = state.known.get(key)
    if seen is None:
        return f"{key} never ran; only a task in review can be approved"
    if why.startswith("changed"):
        return f"{key} changed since it was reviewed; `planrun apply` runs it again"
    return f"{key} is {seen.status.value} ({why}); only a task in review can be approved"


async def _land(
    plan: CompiledPlan, state_dir: Path, task: Task, prepared: Prepared
) -> tuple[Prepared, Landed]:
    """Land the reviewed branch (its worktree made again if someone removed it)."""
    from planrun.workspace.gitworkspace import GitWorkspace

    workspace = GitWorkspace(plan, state_dir)
    reviewed = await workspace.reviewed(task, prepared)
    return reviewed, await workspace.land(task, reviewed)
