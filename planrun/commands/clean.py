"""``planrun clean PLAN``: remove worktrees and branches planrun made, never dirty ones.

Default: what finished tasks left (worktrees of done tasks, branches merged into the
target). ``--failed`` also what failed or cancelled tasks kept for inspection. ``--all``
everything under ``planrun/<plan>/``, including unmerged branches, except work in review.
A dirty worktree is always kept and named; target branches and the user's branches are
never touched.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, TextIO

import trio

from planrun.commands.apply import state_dir_for
from planrun.commands.state import STATE_FILE
from planrun.outcomes import Status
from planrun.plan.compile import CompiledPlan
from planrun.plan.load import load_plan


def run_clean(args: argparse.Namespace, out: TextIO) -> int:
    from planrun.store.lock import StateLock

    plan = load_plan(Path(args.plan))
    state_dir = state_dir_for(plan, args.state_dir)
    with StateLock.acquire(state_dir):
        statuses = _statuses(plan, state_dir)
        lines = trio.run(_clean, plan, statuses, args.failed or args.all, args.all)
    for line in lines:
        print(line, file=out)
    if not lines:
        print("nothing to clean", file=out)
    return 0


def _statuses(plan: CompiledPlan, state_dir: Path) -> dict[str, Status]:
    if not (state_dir / STATE_FILE).exists():
        return {}
    from planrun.journal import JOURNAL_DIR, replay
    from planrun.store.sqlite import Store

    with Store.open(state_dir / STATE_FILE) as store:  # under the lock: no apply runs
        replay(store, state_dir / JOURNAL_DIR)  # what a killed apply journaled comes first
        return {k: row.status for k, row in store.task_states(plan.name).items()}


def _wanted(status: Status | None, failed: bool, everything: bool) -> bool:
    if status is Status.IN_REVIEW:
        return False
    if status is Status.DONE:
        return True
    if status in (Status.FAILED, Status.CANCELLED):
        return failed
    return everything


async def _clean(
    plan: CompiledPlan, statuses: dict[str, Status], failed: bool, everything: bool
) -> list[str]:
    from planrun.workspace.git import GitRepo, is_repo
    from planrun.workspace.worktrees import list_planrun_worktrees, remove_worktree

    lines: list[str] = []
    keys_by_branch = {_branch(plan, k): k for k in plan.tasks}
    for project in plan.projects.values():
        if not await is_repo(Path(project.path)):
            continue
        repo = GitRepo(Path(project.path))
        for wt in await list_planrun_worktrees(repo, plan.name):
            key = keys_by_branch.get(wt.branch)
            if not _wanted(statuses.get(key) if key else None, failed, everything):
                continue
            if await repo.is_dirty(wt.path):
                lines.append(f"kept {wt.path}: it has uncommitted changes")
                continue
            merged = await repo.is_ancestor(wt.branch, project.target_branch)
            if await remove_worktree(repo, wt, delete_branch=merged or everything):
                gone = " and its branch" if merged or everything else ""
                lines.append(f"removed {wt.path}{gone}")
            else:
                lines.append(f"kept {wt.path}: git refused to remove it")
        lines += await _branches(
            repo, plan, project.target_branch, statuses, keys_by_branch, everything
        )
    return lines


async def _branches(
    repo: Any,
    plan: CompiledPlan,
    target: str,
    statuses: dict[str, Status],
    keys_by_branch: dict[str, str],
    everything: bool,
) -> list[str]:
    """Branches left without a worktree: merged ones go; unmerged ones only with --all."""
    listed = await repo.run(
        "for-each-ref", "--format=%(refname:short)", f"refs/heads/planrun/{plan.name}/"
    )
    checked_out = await repo.run("worktree", "list", "--porcelain")
    lines = []
    for branch in listed.stdout.split():
        if f"branch refs/heads/{branch}\n" in checked_out.stdout + "\n":
            continue
        key = keys_by_branch.get(branch)
        if key and statuses.get(key) is Status.IN_REVIEW:
            continue
        if await repo.is_ancestor(branch, target) or everything:
            await repo.run("branch", "-D", "--end-of-options", branch)
            lines.append(f"deleted branch {branch}")
    return lines


def _branch(plan: CompiledPlan, key: str) -> str:
    from planrun.workspace.names import branch_name

    return branch_name(plan.name, key)
