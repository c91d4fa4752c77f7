"""``planrun clean PLAN``: remove worktrees and branches planrun made, never dirty ones.

Default: what finished tasks left (worktrees of done tasks, branches merged into the
target). ``--failed`` also what failed or cancelled tasks kept for inspection. ``--all``
everything under ``planrun/<plan>/``, including unmerged branches, except work in review.
A dirty worktree is always kept; target branches and the user's branches are never
touched, nor the repository's main worktree (a planrun branch checked out there is kept).

Only what this plan made is touched: worktrees inside this plan's state folder, on
branches of the plan's name in a repository whose name claim is this plan file's
(:mod:`planrun.workspace.namespace`: another plan file of that name makes clean exit 2).
A task whose last attempt was never closed (planrun died while it ran; a tmux task may
still be running) keeps its worktree and branch until an apply has recovered it.

What was removed goes to stdout. Each thing clean was asked to remove but kept goes to
stderr: what, where, why, and the git commands that would remove it by hand.

Exit codes: 0 everything asked for was removed, or there was nothing to do; 1 something
asked for was kept (the rest was still removed), or a git command failed; 2 usage or
invalid plan; 3 an apply holds the state lock.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import trio

from planrun.core.frozen import frozen
from planrun.core.outcomes import Status
from planrun.errors import git_stderr_summary
from planrun.plan.load import load_plan
from planrun.plan.resolved import CompiledPlan
from planrun.run.environment import secrets_masked
from planrun.state.folder import STATE_FILE
from planrun.state.locate import state_dir_for
from planrun.state.open import open_store

if TYPE_CHECKING:
    from planrun.workspace.git import GitRepo
    from planrun.workspace.listing import Worktree, WorktreeEntry


@frozen
class Kept:
    """Something clean was asked to remove and did not: what, why, how to remove it by hand."""

    what: str
    why: str
    how: tuple[str, ...]

    def describe(self) -> str:
        return "\n".join([f"planrun: kept {self.what}: {self.why}", *(f"  {h}" for h in self.how)])


@dataclass
class Cleaned:
    """What one clean did: ``removed`` (lines for stdout) and what it ``kept``."""

    removed: list[str] = field(default_factory=list)
    kept: list[Kept] = field(default_factory=list)


def run_clean(args: argparse.Namespace, out: TextIO) -> int:
    from planrun.state.lock import StateLock

    plan = load_plan(Path(args.plan))
    state_dir = state_dir_for(plan, args.state_dir)
    with secrets_masked(plan) as redact, StateLock.acquire(state_dir):
        statuses = _statuses(plan, state_dir)
        cleaned = trio.run(_clean, plan, state_dir, statuses, args.failed or args.all, args.all)
    for line in cleaned.removed:
        print(redact(line), file=out)
    out.flush()
    for kept in cleaned.kept:
        print(redact(kept.describe()), file=sys.stderr)
    if cleaned.kept:
        count = len(cleaned.kept)
        print(
            f"planrun: clean kept {count} thing{'s' if count != 1 else ''} it was asked to"
            " remove (see above); everything else asked for was removed",
            file=sys.stderr,
        )
        return 1
    if not cleaned.removed:
        print("nothing to clean", file=out)
    return 0


def _statuses(plan: CompiledPlan, state_dir: Path) -> dict[str, Status]:
    if not (state_dir / STATE_FILE).exists():
        return {}
    from planrun.state.journal import replay
    from planrun.state.journalfile import JOURNAL_DIR

    with closing(open_store(state_dir)) as store:  # under the lock: no apply runs
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
    plan: CompiledPlan,
    state_dir: Path,
    statuses: dict[str, Status],
    failed: bool,
    everything: bool,
) -> Cleaned:
    from planrun.workspace.git import GitRepo, is_repo
    from planrun.workspace.listing import list_planrun_worktrees, list_worktrees
    from planrun.workspace.namespace import check
    from planrun.workspace.removal import remove_worktree

    cleaned = Cleaned()
    keys_by_branch = {_branch(plan, k): k for k in plan.tasks}
    ours = (state_dir / "worktrees").resolve()
    for project in plan.projects.values():
        if not await is_repo(Path(project.path)):
            continue
        repo = GitRepo(Path(project.path))
        await check(repo, plan.name, str(plan.path))
        entries = await list_worktrees(repo)
        main = entries[0].path if entries and not entries[0].bare else None
        for wt in await list_planrun_worktrees(repo, plan.name):
            key = keys_by_branch.get(wt.branch)
            status = statuses.get(key) if key else None
            if status is Status.RUNNING:
                cleaned.kept.append(_unrecovered(wt, key))
                continue
            if not _wanted(status, failed, everything):
                continue
            if not (main is not None and _same_path(wt.path, main)) and not _inside(wt.path, ours):
                continue  # a worktree of this branch name that this plan did not make
            drop_branch = everything or await repo.is_ancestor(wt.branch, project.target_branch)
            if main is not None and _same_path(wt.path, main):
                if drop_branch:
                    cleaned.kept.append(_in_main_worktree(repo, wt, key, project.base_branch))
                continue
            if await _is_dirty(repo, wt.path):
                cleaned.kept.append(_dirty(repo, wt, key, _entry(entries, wt.path), drop_branch))
                continue
            if await remove_worktree(repo, wt, delete_branch=drop_branch):
                gone = " and its branch" if drop_branch else ""
                cleaned.removed.append(f"removed {wt.path}{gone}")
            else:
                cleaned.kept.append(await _refused(repo, wt, key, drop_branch))
        await _branches(
            repo, plan, project.target_branch, statuses, keys_by_branch, everything, cleaned
        )
    return cleaned


async def _branches(
    repo: GitRepo,
    plan: CompiledPlan,
    target: str,
    statuses: dict[str, Status],
    keys_by_branch: dict[str, str],
    everything: bool,
    cleaned: Cleaned,
) -> None:
    """Branches left without a worktree: merged ones go; unmerged ones only with --all.

    A branch still checked out somewhere was dealt with (and reported) with its worktree.
    """
    listed = await repo.run(
        "for-each-ref", "--format=%(refname:short)", f"refs/heads/planrun/{plan.name}/"
    )
    checked_out = await repo.run("worktree", "list", "--porcelain")
    for branch in listed.stdout.split():
        if f"branch refs/heads/{branch}\n" in checked_out.stdout + "\n":
            continue
        key = keys_by_branch.get(branch)
        if key and statuses.get(key) in (Status.IN_REVIEW, Status.RUNNING):
            continue
        if await repo.is_ancestor(branch, target) or everything:
            deleted = await repo.run("branch", "-D", "--end-of-options", branch, check=False)
            if deleted.returncode == 0:
                cleaned.removed.append(f"deleted branch {branch}")
                continue
            cleaned.kept.append(
                Kept(
                    f"branch {branch}{_of(key)} in {repo.path}",
                    f"git refused to delete it ({git_stderr_summary(deleted.stderr)})",
                    (f"to delete it by hand: {_git(repo.path, 'branch', '-D', branch)}",),
                )
            )


def _inside(path: Path, folder: Path) -> bool:
    return Path(os.path.realpath(path)).is_relative_to(folder)


def _unrecovered(wt: Worktree, key: str | None) -> Kept:
    return Kept(
        f"worktree {wt.path}{_of(key)}",
        "its last attempt was never closed: planrun died while it ran, and a tmux task "
        "may still be running there",
        ("`planrun apply PLAN` recovers it first (it re-attaches to a live tmux task)",),
    )


async def _is_dirty(repo: GitRepo, path: Path) -> bool:
    """Uncommitted changes in the worktree at ``path``; a folder that is gone has none."""
    return await trio.Path(path).is_dir() and await repo.is_dirty(path)


def _dirty(
    repo: GitRepo, wt: Worktree, key: str | None, entry: WorktreeEntry | None, drop_branch: bool
) -> Kept:
    # planrun locks its worktrees; git's --force twice also removes a locked one
    force = (
        ("--force", "--force") if entry is not None and entry.locked is not None else ("--force",)
    )
    how = [
        f"to see what it holds: {_git(wt.path, 'status')}",
        "to delete it anyway, losing those changes: "
        + _git(repo.path, "worktree", "remove", *force, str(wt.path)),
    ]
    if drop_branch:
        how.append(f"then its branch: {_git(repo.path, 'branch', '-D', wt.branch)}")
    return Kept(
        _worktree(repo, wt, key),
        "it has uncommitted changes (planrun never deletes uncommitted work)",
        tuple(how),
    )


def _in_main_worktree(repo: GitRepo, wt: Worktree, key: str | None, base: str | None) -> Kept:
    switch = f" ({_git(wt.path, 'switch', base)})" if base else ""
    return Kept(
        f"branch {wt.branch}{_of(key)} in {repo.path}",
        f"it is checked out in {wt.path}, the repository's main worktree, which clean never"
        " touches",
        (
            f"to delete it by hand: check out another branch there{switch},"
            f" then {_git(repo.path, 'branch', '-D', wt.branch)}",
        ),
    )


async def _refused(repo: GitRepo, wt: Worktree, key: str | None, drop_branch: bool) -> Kept:
    """Why git would not remove ``wt`` (it was clean a moment ago), and what to do."""
    from planrun.workspace.listing import LOCK_REASON_PREFIX, list_worktrees

    entry = _entry(await list_worktrees(repo), wt.path)
    if await _is_dirty(repo, wt.path):  # changed since it was checked
        return _dirty(repo, wt, key, entry, drop_branch)
    lock = entry.locked if entry is not None else None
    if lock is not None and not lock.startswith(LOCK_REASON_PREFIX):
        return Kept(
            _worktree(repo, wt, key),
            f"it is locked, not by planrun{f': {lock}' if lock else ''}",
            (
                "to remove it by hand, once whoever locked it is done: "
                f"{_git(repo.path, 'worktree', 'unlock', str(wt.path))}"
                f" && {_git(repo.path, 'worktree', 'remove', str(wt.path))}",
            ),
        )
    return Kept(
        _worktree(repo, wt, key),
        "git refused to remove it",
        (f"to see why, and remove it: {_git(repo.path, 'worktree', 'remove', str(wt.path))}",),
    )


def _worktree(repo: GitRepo, wt: Worktree, key: str | None) -> str:
    return f"worktree {wt.path}{_of(key)} (branch {wt.branch} of {repo.path})"


def _of(key: str | None) -> str:
    return f" of task {key}" if key else ""


def _git(where: Path, *args: str) -> str:
    return shlex.join(["git", "-C", str(where), *args])


def _entry(entries: list[WorktreeEntry], path: Path) -> WorktreeEntry | None:
    return next((e for e in entries if _same_path(e.path, path)), None)


def _same_path(a: Path, b: Path) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def _branch(plan: CompiledPlan, key: str) -> str:
    from planrun.core.names import branch_name

    return branch_name(plan.name, key)
