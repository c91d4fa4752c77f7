"""A task approved on another machine (``planrun approve --store``), as this machine
learns it when it joins the shared run again.

This machine's state folder still says the task is in review (it parked it there, having
run it, or having seen it in review elsewhere); the shared store says it is done, with the
commit its approval landed. Before the run's one decision is made, that is recorded here
too (a ``TaskDone`` in the last local run, as a local approve records it), so that its
dependents run, from the target that has the task's work.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from planrun.core.outcomes import Status
from planrun.plan.resolved import CompiledPlan
from planrun.state.records import TaskDone

if TYPE_CHECKING:
    from planrun.state.folder import State


def adopt_approved(claims: Any, plan: CompiledPlan, state: State, remote: str) -> list[str]:
    """Record done here what is in review here and done in the shared run; the keys. The
    targets are fetched from ``remote`` first: the commits those landings made are on them
    (the run's decision reads the targets, and checks the landed commits are there)."""
    waiting = [k for k, seen in state.known.items() if seen.status is Status.IN_REVIEW]
    if not waiting or state.store is None:
        return []
    from planrun.run.prepare import fingerprints_of
    from planrun.state.known import known_tasks
    from planrun.state.postgres import scale_read

    rows = {r["key"]: r for r in claims.db.call_sync(scale_read.task_rows, claims.run_id)}
    done = [k for k in waiting if k in rows and rows[k]["status"] == "done"]
    run = state.store.last_run(plan.name)
    if not done or run is None:
        return []
    present = trio.run(_fetch_targets, plan, remote, {k: rows[k]["landed_commit"] for k in done})
    fingerprints = fingerprints_of(plan)
    for key in done:
        fp, fields = fingerprints[key]
        state.store.task_done(
            run.id,
            TaskDone(
                plan_name=plan.name,
                key=key,
                fingerprint=fp,
                reason="approved on another machine",
                landed_commit=present.get(key),
                data={"fields": dict(fields), "title": plan.tasks[key].title},
            ),
        )
    state.known = known_tasks(state.store, plan.name)
    return done


async def _fetch_targets(
    plan: CompiledPlan, remote: str, landed: dict[str, str | None]
) -> dict[str, str]:
    """Fetch the targets of the tasks' projects; the landed commits now in this clone."""
    from planrun.workspace.git import GitRepo

    present: dict[str, str] = {}
    fetched: set[str] = set()
    for key, commit in landed.items():
        task = plan.tasks[key]
        if commit is None or task.project is None:
            continue
        project = plan.projects[task.project]
        repo = GitRepo(Path(project.path))
        if project.name not in fetched:
            fetched.add(project.name)
            ref = f"refs/heads/{project.target_branch}"
            await repo.run("fetch", "--no-tags", "--quiet", remote, f"+{ref}:{ref}", check=False)
        if await repo.rev_parse(commit) is not None:
            present[key] = commit
    return present
