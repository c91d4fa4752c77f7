"""``planrun approve PLAN KEY``: land a task held in review and release what waits for it.

The task's work is already committed on its branch. Approving lands it on the target with
the project's strategy and records the task as durably done; the next ``apply`` runs its
dependents. It takes the state lock, so it waits for no running apply: one holding the
lock makes it exit 3.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TextIO

import trio

from planrun.commands.apply import check_keys, state_dir_for
from planrun.commands.state import STATE_FILE
from planrun.errors import MergeConflict, UsageError
from planrun.fingerprint import fingerprint
from planrun.outcomes import Status
from planrun.plan.load import load_plan
from planrun.workspace.base import Prepared


def run_approve(args: argparse.Namespace, out: TextIO) -> int:
    from planrun.environment import base_env
    from planrun.journal import JOURNAL_DIR, replay
    from planrun.sessions.subprocess import SubprocessSession
    from planrun.store.lock import StateLock
    from planrun.store.sqlite import Store
    from planrun.workspace.gitworkspace import GitWorkspace
    from planrun.workspace.names import branch_name, worktree_dir

    plan = load_plan(Path(args.plan))
    check_keys(plan, [args.key], "approve")
    task = plan.tasks[args.key]
    state_dir = state_dir_for(plan, args.state_dir)
    if not (state_dir / STATE_FILE).exists():
        raise UsageError(f"{args.key} is not in review: no run of {plan.name} is recorded here")
    with StateLock.acquire(state_dir), Store.open(state_dir / STATE_FILE) as store:
        replay(store, state_dir / JOURNAL_DIR)  # what a killed apply journaled comes first
        seen = store.task_states(plan.name).get(args.key)
        if seen is None or seen.status is not Status.IN_REVIEW:
            what = "never ran" if seen is None else f"is {seen.status.value}"
            raise UsageError(f"{args.key} {what}; only a task in review can be approved")
        fp, fields = fingerprint(plan, task)
        if fp != seen.fingerprint:
            raise UsageError(
                f"{args.key} changed since it was reviewed; `planrun apply` runs it again"
            )
        run = store.last_run(plan.name)
        assert run is not None
        wt = worktree_dir(state_dir, args.key)
        prepared = (
            Prepared(cwd=wt, branch=branch_name(plan.name, args.key), worktree=wt)
            if task.project and wt.exists()
            else Prepared(cwd=plan.directory)
        )
        workspace = GitWorkspace(
            plan, state_dir, session=SubprocessSession(), env=base_env(plan, {})
        )
        try:
            landed = trio.run(workspace.land, task, prepared)
        except MergeConflict as exc:
            print(
                f"planrun: approving {args.key} conflicts on "
                f"{', '.join(exc.paths) or 'its changes'}; it stays in review "
                f"(branch {prepared.branch})",
                file=out,
            )
            return 1
        store.task_done(
            plan.name,
            run.id,
            args.key,
            fp,
            reason="approved",
            branch=prepared.branch,
            landed_commit=landed.commit,
            diffstat=landed.diffstat,
            data={"fields": dict(fields), "title": task.title},
        )
    where = f"landed {landed.commit[:12]}" if landed.commit else "nothing to land"
    print(
        f"approved {args.key}: {where}; `planrun apply {args.plan}` runs what waited for it",
        file=out,
    )
    return 0
