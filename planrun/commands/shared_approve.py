"""``planrun approve PLAN KEY --store URL``: approve a task in review of a shared run from
any machine (docs/scale-out.md).

The machine that ran the task pushed its branch to the shared remote when it went to
review. Here: fetch that branch and the target into this clone, and land it as every
landing of the shared run is landed (:class:`planrun.workspace.remote.RemoteWorkspace`:
under the store's advisory lock per remote and target, after a fetch, looking first for the
task's trailer, so a task approved twice, or on two machines at once, lands once; then a
compare-and-swap push). The shared store records the task done with its landed commit,
the machines are woken, and the review branch is deleted from the remote. The machines
whose own state folders still say "in review" take the shared store's word when they join
the run again (:func:`planrun.run.shared_review.adopt_approved`).
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TextIO

import trio

from planrun.commands.apply import check_keys
from planrun.errors import MergeConflict, UsageError
from planrun.plan.load import load_plan
from planrun.plan.resolved import CompiledPlan, Task
from planrun.run.environment import secrets_masked
from planrun.run.prepare import fingerprints_of
from planrun.state.locate import state_dir_for
from planrun.state.open import redacted
from planrun.workspace.base import Prepared
from planrun.workspace.trailers import Mark

_DONE = "{key} is done already (approved, or landed)"


def run_shared_approve(args: argparse.Namespace, url: str, out: TextIO) -> int:
    from planrun.commands.shared_views import _driver
    from planrun.state.lock import StateLock

    plan = load_plan(Path(args.plan))
    check_keys(plan, [args.key], "approve")
    scale, connect = _driver(url)
    from planrun.state.postgres import scale_read

    where = redacted(url)
    con = connect(url, where)
    try:
        run = scale_read.find_run(con, plan.name, getattr(args, "run_id", None))
        found = None if run is None else scale.reviewed(con, run["id"], args.key)
    finally:
        con.close()
    if run is None or found is None:
        raise UsageError(f"{args.key} is not in review: no shared run of {plan.name} has it")
    status, ran_in = found
    if status == "done":
        print(_DONE.format(key=args.key), file=out)
        return 0
    if status != "in_review":
        raise UsageError(f"{args.key} is {status} in the shared run; only a task in review")
    state_dir = state_dir_for(plan, args.state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    with secrets_masked(plan) as redact, StateLock.acquire(state_dir):
        said = trio.run(
            _approve, plan, state_dir, plan.tasks[args.key], (url, where, run["id"]), ran_in
        )
    print(redact(said), file=out)
    return 0 if said.startswith("approved") or said == _DONE.format(key=args.key) else 1


async def _approve(
    plan: CompiledPlan,
    state_dir: Path,
    task: Task,
    store: tuple[str, str, str],
    ran_in: str | None,
) -> str:
    from planrun.workspace.gitworkspace import GitWorkspace
    from planrun.workspace.remote import DEFAULT_REMOTE, RemoteWorkspace

    url, where, run_id = store
    fence = _Fence(url, where, run_id)
    remote = RemoteWorkspace(GitWorkspace(plan, state_dir), fence, DEFAULT_REMOTE)
    try:
        if not await remote.fetch_reviewed(task):
            now = await fence.db.call(fence.scale.reviewed, run_id, task.key)
            if now is not None and now[0] == "done":  # approved meanwhile elsewhere
                return _DONE.format(key=task.key)
            raise UsageError(
                f"{task.key}: its branch is not on the remote {remote.remote!r} (pushed when it"
                " went to review); approve it on the machine that ran it"
            )
        fp, _ = fingerprints_of(plan)[task.key]
        mark = Mark(plan.name, task.key, fp, f"{ran_in or run_id}#0")
        prepared = await remote.inner.reviewed(task, Prepared(cwd=plan.directory, mark=mark))
        try:
            landed = await remote.land(task, prepared)
        except MergeConflict as exc:
            paths = ", ".join(exc.paths) or "its changes"
            return f"planrun: approving {task.key} conflicts on {paths}; it stays in review"
        first = await fence.db.call(fence.scale.approved, run_id, task.key, landed.commit)
        await remote.drop_reviewed(task)
    finally:
        fence.db.close()
    where_to = f"landed {landed.commit[:12]}" if landed.commit else "nothing to land"
    again = "" if first else " (it was approved meanwhile elsewhere: landed once)"
    return (
        f"approved {task.key}: {where_to}{again}; `planrun apply --store` on any machine"
        " runs what waited for it"
    )


class _Fence:
    """The landing's critical section for an approve: the store's advisory lock (no lease:
    a task in review is held by no machine)."""

    def __init__(self, url: str, where: str, run_id: str) -> None:
        from planrun.run.shared import Db
        from planrun.state.postgres import scale

        self.scale = scale
        self.db = Db(url, where)
        self.run_id = run_id
        self.landed_elsewhere: Mapping[str, str] = {}

    async def local_runs(self) -> set[str]:
        return await self.db.call(self.scale.local_runs, self.run_id)

    @asynccontextmanager
    async def landing(self, key: str, lock_name: str) -> AsyncIterator[None]:
        await self.db.call(self.scale.lock_landing, lock_name)
        try:
            yield
        finally:
            with trio.CancelScope(shield=True), contextlib.suppress(Exception):
                await self.db.call(self.scale.unlock_landing, lock_name)
