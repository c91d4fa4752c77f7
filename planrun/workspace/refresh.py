"""A task branch left by an earlier attempt, brought onto the current base (SPEC §4).

Every attempt starts from the current tip of its base (the integration branch, or the
task's own ``base_branch``). A branch an earlier attempt or run left behind is never used
blindly; in the task's own worktree, under the repository lock:

1. what is uncommitted (an agent's half-done work) is committed first, hooks off, so that
   nothing below can lose it;
2. a branch with no commits of its own (a check task, an attempt that changed nothing)
   is moved to the base: the attempt sees the needs' current work;
3. a branch with commits of its own continues them: rebased onto the base (a no-op when
   it already stands on it). When the rebase conflicts, or when the task starts over
   (``start_over``: its definition changed, it was forced, or a need ran again), the old
   tip is kept under the branch ``planrun-kept/<plan>/<task>/<run id>-<attempt>`` and the
   task branch is cut again from the base. Nothing a person or an agent wrote is deleted.
"""

from __future__ import annotations

from planrun.core.frozen import frozen
from planrun.errors import GitError
from planrun.workspace.commits import commit_leftovers
from planrun.workspace.git import NO_HOOKS, GitRepo, rebase_onto
from planrun.workspace.listing import Worktree

KEPT_PREFIX = "planrun-kept"


@frozen
class Refreshed:
    """The worktree on its new base; ``kept`` names the branch holding work set aside."""

    worktree: Worktree
    kept: str | None = None


async def refresh(
    repo: GitRepo,
    wt: Worktree,
    base: str,
    *,
    start_over: bool,
    kept_name: str,
    message: str,
) -> Refreshed:
    """Bring ``wt``'s branch onto ``base`` (a commit) as the module doc says.

    ``kept_name`` is the branch that keeps set-aside work; ``message`` the commit message
    for uncommitted leftovers.
    """
    here = GitRepo(wt.path)
    async with repo.lock():
        await commit_leftovers(wt, message, repo=repo)
        tip = await _tip(here)
        if tip == base:
            return Refreshed(_on(wt, base))
        own = await here.run("rev-list", "--count", "--end-of-options", f"{base}..{tip}", "--")
        if int(own.stdout.strip() or "0") == 0:
            await _reset(here, base)
            return Refreshed(_on(wt, base))
        if not start_over and await _rebased(repo, here, base):
            return Refreshed(_on(wt, base))
        await repo.run(
            "update-ref",
            "-m",
            "planrun: work set aside",
            "--end-of-options",
            f"refs/heads/{kept_name}",
            tip,
            "",
        )
        await _reset(here, base)
        return Refreshed(_on(wt, base), kept=kept_name)


def _on(wt: Worktree, base: str) -> Worktree:
    return Worktree(wt.path, wt.branch, base, fresh=wt.fresh)


async def _tip(here: GitRepo) -> str:
    sha = await here.rev_parse("HEAD")
    if sha is None:
        raise GitError(("git", "rev-parse", "HEAD"), 1, "fatal: the worktree has no HEAD\n")
    return sha


async def _reset(here: GitRepo, base: str) -> None:
    """Move the (clean) worktree's branch and files to ``base`` (a commit id: git 2.39's
    ``reset`` takes no ``--end-of-options``); refuses to lose changes."""
    if not all(c in "0123456789abcdef" for c in base):
        raise GitError(("git", "reset"), 1, f"fatal: {base!r} is not a commit id\n")
    await here.run("reset", "-q", "--keep", base, config=(NO_HOOKS,))


async def _rebased(repo: GitRepo, here: GitRepo, base: str) -> bool:
    """Rebase the branch onto ``base``; False (branch as it was) when it conflicts."""
    out = await rebase_onto(repo, here, base)
    if out.returncode == 0:
        return True
    await here.run("rebase", "--abort", check=False)
    return False
