"""Landing a finished task branch on the integration (target) branch.

How it avoids touching anyone's checkout:

- ``merge`` and ``squash`` never check anything out. ``git merge-tree --write-tree`` (git ≥ 2.38)
  merges the target and the task branch in memory and writes the resulting tree to the object
  database (or lists the conflicted paths); ``git commit-tree`` makes the commit (two parents
  for merge, one for squash); ``git update-ref refs/heads/<target> <new> <old>`` moves the target
  only if it is still at ``<old>``, atomically. A conflict leaves no ref changed. ``merge``
  always records a merge commit (like ``--no-ff``), even where the target could fast-forward,
  so that every task is one first-parent step of the target.
- ``rebase`` replays the task's commits with ``git rebase`` inside the task's *own* worktree
  (planrun's, clean, on the task branch, hooks off), then fast-forwards the target with the
  same compare-and-swap ``update-ref``; the task branch ends at the replayed commits. On a
  conflict the rebase is aborted, which puts the task branch and worktree back exactly as they
  were. (git 2.39 has no ``merge-tree --merge-base`` nor ``git replay``, so replaying commits
  needs a checkout; the task's own worktree is the one nobody else is using.)
- A target that is checked out in any worktree (say the user's main checkout) is refused with a
  GitError: moving a checked-out branch would change the files under that checkout's feet.

Every landing holds ``repo.lock()``: one landing at a time per repository. The task branch is
landed as committed; call ``commit_all`` first to include uncommitted work.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from planrun.errors import GitError, MergeConflict
from planrun.workspace.git import GitRepo
from planrun.workspace.worktrees import Worktree, ensure_branch, list_worktrees

Strategy = Literal["merge", "squash", "rebase", "none"]
STRATEGIES: tuple[str, ...] = get_args(Strategy)


@dataclass(frozen=True)
class LandResult:
    """What a landing did.

    ``commit`` is the target's new tip, None when nothing landed (strategy ``none``, or the
    task brought no change); ``base_commit`` is the target's tip before (None for ``none``);
    ``diffstat`` is ``git diff --stat base_commit commit`` ("" when nothing landed).
    """

    commit: str | None
    base_commit: str | None
    diffstat: str
    strategy: Strategy


async def ensure_target(repo: GitRepo, target_branch: str, base_branch: str) -> str:
    """Create ``target_branch`` at ``base_branch`` unless it exists; return its tip."""
    return await ensure_branch(repo, target_branch, base_branch)


async def land(
    repo: GitRepo, wt: Worktree, target_branch: str, strategy: Strategy, message: str
) -> LandResult:
    """Land ``wt.branch`` on ``target_branch`` with ``strategy`` (see the module doc).

    Raises MergeConflict (target unchanged, task branch and worktree kept) on a conflict, and
    GitError when the target is missing, is checked out somewhere, or moved meanwhile.
    ``message`` is the merge/squash commit's message (rebase keeps the task's commits).
    """
    if strategy == "none":
        return LandResult(None, None, "", "none")
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown integration strategy {strategy!r}")
    await repo.check_ref(target_branch)
    await repo.check_ref(wt.branch)
    async with repo.lock():
        await _refuse_checked_out(repo, target_branch)
        old = await _tip(repo, target_branch)
        new: str | None
        if strategy == "rebase":
            new = await _rebase(wt, old)
        else:
            new = await _merge_commit(repo, wt.branch, old, message, squash=strategy == "squash")
        if new is None or new == old:
            return LandResult(None, old, "", strategy)
        await repo.run(
            "update-ref",
            "-m",
            f"planrun: land {wt.branch} ({strategy})",
            "--end-of-options",
            f"refs/heads/{target_branch}",
            new,
            old,
        )
        stat = await repo.run("diff", "--stat", "--end-of-options", old, new)
        return LandResult(new, old, stat.stdout, strategy)


async def _tip(repo: GitRepo, branch: str) -> str:
    sha = await repo.rev_parse(f"refs/heads/{branch}")
    if sha is None:
        raise GitError(
            ("git", "rev-parse", "--verify", f"refs/heads/{branch}"),
            1,
            f"fatal: branch {branch!r} does not exist\n",
        )
    return sha


async def _refuse_checked_out(repo: GitRepo, branch: str) -> None:
    for entry in await list_worktrees(repo):
        if entry.branch == branch and not entry.bare:
            raise GitError(
                ("git", "update-ref", f"refs/heads/{branch}"),
                1,
                f"fatal: {branch} is checked out at {entry.path}; planrun lands only on a "
                "branch no worktree has checked out, so that it never changes files under "
                "someone's feet (check out another branch there, or pick another target)\n",
            )


async def _merge_commit(
    repo: GitRepo, branch: str, old: str, message: str, *, squash: bool
) -> str | None:
    """The commit that merges ``branch`` into ``old`` (None: nothing to land); no ref moves."""
    tip = await _tip(repo, branch)
    if await repo.is_ancestor(tip, old):
        return None
    tree = await _merge_tree(repo, old, tip)
    if squash and tree == await _tree_of(repo, old):
        return None
    parents = ["-p", old] if squash else ["-p", old, "-p", tip]
    identity = await repo.identity_config()
    out = await repo.run(
        "commit-tree", *parents, "-m", message, "--end-of-options", tree, config=identity
    )
    return out.stdout.strip()


async def _tree_of(repo: GitRepo, commit: str) -> str:
    out = await repo.run("rev-parse", "--verify", "--end-of-options", f"{commit}^{{tree}}")
    return out.stdout.strip()


async def _merge_tree(repo: GitRepo, ours: str, theirs: str) -> str:
    """The merged tree of two commits, written to the object database; MergeConflict if any."""
    out = await repo.run(
        "merge-tree",
        "--write-tree",
        "--name-only",
        "-z",
        "--end-of-options",
        ours,
        theirs,
        check=False,
    )
    if out.returncode not in (0, 1):
        raise GitError(out.argv, out.returncode, out.stderr)
    head, _, info = out.stdout.partition("\0\0")
    tree, *paths = [f for f in head.split("\0") if f]
    if out.returncode == 0:
        return tree
    paths = list(dict.fromkeys(paths))
    detail = _merge_messages(info) or [f"CONFLICT in {p}" for p in paths]
    raise MergeConflict(out.argv, out.returncode, "\n".join(detail) + "\n", paths)


def _merge_messages(info: str) -> list[str]:
    """The CONFLICT lines of merge-tree's -z informational section (best effort)."""
    tokens = info.split("\0")
    messages: list[str] = []
    i = 0
    try:
        while i < len(tokens) and tokens[i]:
            count = int(tokens[i])
            messages.append(tokens[i + count + 2].rstrip("\n"))
            i += count + 3
    except (ValueError, IndexError):
        pass
    return [m for m in messages if m.startswith("CONFLICT")]


async def _rebase(wt: Worktree, onto: str) -> str:
    """Rebase the task branch in its own worktree onto ``onto``; return the new tip."""
    repo = GitRepo(wt.path)
    on = await repo.current_branch()
    if on != wt.branch:
        raise GitError(
            ("git", "rebase"),
            1,
            f"fatal: {wt.path} is on {on or 'a detached HEAD'}, not {wt.branch}\n",
        )
    if await repo.is_dirty():
        raise GitError(("git", "rebase"), 1, f"fatal: {wt.path} has uncommitted changes\n")
    identity = await repo.identity_config()
    out = await repo.run(
        "rebase",
        "--no-autostash",
        "--no-update-refs",
        "--end-of-options",
        onto,
        check=False,
        config=(*identity, "core.hooksPath=/dev/null"),
    )
    if out.returncode != 0:
        conflicted = await _unmerged_paths(repo)
        await repo.run("rebase", "--abort", check=False)
        if conflicted:
            detail = out.stdout + out.stderr + "".join(f"CONFLICT in {p}\n" for p in conflicted)
            raise MergeConflict(out.argv, out.returncode, detail, conflicted)
        raise GitError(out.argv, out.returncode, out.stderr)
    return await _tip(repo, wt.branch)


async def _unmerged_paths(repo: GitRepo) -> list[str]:
    out = await repo.run("diff", "--name-only", "--diff-filter=U", "-z", check=False)
    return list(dict.fromkeys(p for p in out.stdout.split("\0") if p))
