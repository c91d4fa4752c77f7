"""``planrun clean PLAN --store URL``: what ``clean`` removes on this machine, and the task
branches a shared run left on the remote.

The only task branches a shared run pushes are those of tasks that went to review
(docs/scale-out.md); ``approve --store`` deletes the branch once it landed. One may still
be left (its task ran again without review, or the deletion failed): this deletes, from
the remote every machine shares, the ``planrun/<plan>/<task>`` branches of tasks the
shared run's latest record says are done (``--failed``: or failed or cancelled; ``--all``:
any status but in review or running). A branch of a task in review is always kept: it is
the work someone is to approve. The integration branch is never touched.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TextIO

import trio

from planrun.core.names import branch_name, sanitize_component
from planrun.plan.load import load_plan
from planrun.plan.resolved import CompiledPlan
from planrun.state.open import redacted

#: the shared statuses whose remote branch each clean deletes
_BY_DEFAULT = {"done", "skipped"}
_FAILED = {"failed", "cancelled"}
_ALL = {"open"}


def run_shared_clean(args: argparse.Namespace, url: str, out: TextIO) -> int:
    from planrun.commands.clean import run_clean
    from planrun.commands.shared_views import _driver

    code = run_clean(args, out)  # this machine's worktrees and branches, as ever
    plan = load_plan(Path(args.plan))
    _, connect = _driver(url)
    from planrun.state.postgres import scale_read

    con = connect(url, redacted(url))
    try:
        run = scale_read.find_run(con, plan.name, None)
        rows = [] if run is None else scale_read.task_rows(con, run["id"])
    finally:
        con.close()
    wanted = set(_BY_DEFAULT)
    if args.failed or args.all:
        wanted |= _FAILED
    if args.all:
        wanted |= _ALL
    statuses = {str(r["key"]): str(r["status"]) for r in rows}
    doomed = {k for k, s in statuses.items() if s in wanted and k in plan.tasks}
    for line in trio.run(_delete_remote_branches, plan, doomed):
        print(line, file=out)
    return code


async def _delete_remote_branches(plan: CompiledPlan, keys: set[str]) -> list[str]:
    from planrun.workspace.git import GitRepo, is_repo
    from planrun.workspace.remote import DEFAULT_REMOTE

    said: list[str] = []
    for project in plan.projects.values():
        if not await is_repo(Path(project.path)):
            continue
        repo = GitRepo(Path(project.path))
        prefix = f"refs/heads/planrun/{sanitize_component(plan.name)}/"
        out = await repo.run("ls-remote", "--heads", DEFAULT_REMOTE, f"{prefix}*", check=False)
        by_ref = {f"refs/heads/{branch_name(plan.name, k)}": k for k in keys}
        for line in out.stdout.splitlines():
            ref = line.split()[-1]
            if ref not in by_ref:
                continue
            gone = await repo.run("push", "--quiet", DEFAULT_REMOTE, f":{ref}", check=False)
            if gone.returncode == 0:
                said.append(f"deleted remote branch {ref[len('refs/heads/') :]} ({DEFAULT_REMOTE})")
    return said
