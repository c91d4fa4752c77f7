"""Removing a task's worktree and branch, never a dirty or foreign one: the clean check is
git's own (``worktree remove`` without ``--force``), with untracked files forced to count."""

from __future__ import annotations

import trio

from planrun.errors import GitError
from planrun.workspace.git import GitRepo
from planrun.workspace.listing import (
    REMOVE_CONFIG,
    Worktree,
    WorktreeEntry,
    branch_tip,
    entry_at,
    is_dir,
    is_ours,
    list_worktrees,
    unlock,
)


async def remove_worktree(
    repo: GitRepo, wt: Worktree, *, force_clean_only: bool = True, delete_branch: bool = False
) -> bool:
    """Remove the task's worktree; return False (changing nothing) when refusing.

    Refuses when the worktree is dirty (untracked files count; ignored ones do not), when it
    is locked with a reason that is not planrun's, when ``wt.path`` is registered on another
    branch, or when it is an unregistered folder. ``force_clean_only=False`` removes a dirty
    worktree with ``--force``, losing its changes: only for an explicit user request.
    ``delete_branch`` also deletes the branch (compare-and-swap at the tip seen under lock).
    """
    async with repo.lock():
        return await remove_listed(
            repo,
            await list_worktrees(repo),
            wt,
            force=not force_clean_only,
            delete_branch=delete_branch,
        )


async def remove_listed(
    repo: GitRepo,
    entries: list[WorktreeEntry],
    wt: Worktree,
    *,
    force: bool = False,
    delete_branch: bool = False,
    branch_tip: str | None = None,
) -> bool:
    """:func:`remove_worktree` for a caller that holds ``repo.lock()`` and listed ``entries``
    under it (so that one ``worktree list`` serves a landing and the removal after it).

    With ``branch_tip``, the branch is deleted only while it still points there (it is kept,
    silently, if it moved); without, at the tip read now.
    """
    entry = entry_at(entries, wt.path)
    if entry is None:
        if await trio.Path(wt.path).exists():
            return False
    elif not await _remove_entry(repo, entry, wt.branch, force=force):
        return False
    if delete_branch:
        await _delete_branch(repo, wt.branch, branch_tip)
    return True


async def _remove_entry(repo: GitRepo, entry: WorktreeEntry, branch: str, *, force: bool) -> bool:
    if entry.branch != branch or not is_ours(entry):
        return False
    present = await is_dir(entry.path)
    if entry.locked is not None:
        await unlock(repo, entry.path)
    args = ["worktree", "remove", *(["--force"] if present and force else [])]
    try:
        # without --force git refuses a worktree with modified, staged or untracked files
        await repo.run(*args, "--end-of-options", str(entry.path), config=REMOVE_CONFIG)
    except GitError:
        # git refused (not clean, or changed meanwhile): keep it, locked again
        if entry.locked is not None:
            relock = ("--reason", entry.locked, "--end-of-options", str(entry.path))
            await repo.run("worktree", "lock", *relock, check=False)
        return False
    return True


async def _delete_branch(repo: GitRepo, branch: str, expected: str | None = None) -> None:
    ref = f"refs/heads/{branch}"
    if expected is not None:
        await repo.run("update-ref", "-d", "--end-of-options", ref, expected, check=False)
        return
    tip = await branch_tip(repo, branch)
    if tip is not None:
        await repo.run("update-ref", "-d", "--end-of-options", ref, tip)
