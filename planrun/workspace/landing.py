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

Before any of that, the task's changes (``diff-tree --merge-base <target> <branch>``, tree
against tree) are read for gitlinks (mode 160000) it adds or changes: one whose commit this
repository does not have, at a path ``.gitmodules`` does not declare a submodule, is a nested
repository committed with ``git add`` and would land as a dangling link; the landing is
refused with GitlinkError naming the path, before anything moves. A declared submodule's
commits live in its own repository, so its gitlinks land as they are.

Every landing holds ``repo.lock()``: one landing at a time per repository, from reading the
target's tip to moving it (the diffstat of what landed is computed after the lock is
released). :func:`land_and_remove` also removes the task's worktree in the same hold of the
lock, with the same ``worktree list``. The task branch is landed as committed; call
``commit_all`` first to include uncommitted work.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal, get_args

from planrun.core.frozen import frozen
from planrun.errors import GitError, MergeConflict
from planrun.workspace.commits import GitlinkError
from planrun.workspace.git import NO_HOOKS, GitRepo, rebase_onto
from planrun.workspace.listing import Worktree, WorktreeEntry, list_worktrees
from planrun.workspace.removal import remove_listed
from planrun.workspace.trailers import Mark
from planrun.workspace.worktrees import ensure_branch

Strategy = Literal["merge", "squash", "rebase", "none"]
STRATEGIES: tuple[str, ...] = get_args(Strategy)


@frozen
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
    repo: GitRepo,
    wt: Worktree,
    target_branch: str,
    strategy: Strategy,
    message: str,
    *,
    mark: Mark | None = None,
) -> LandResult:
    """Land ``wt.branch`` on ``target_branch`` with ``strategy`` (see the module doc).

    Raises MergeConflict (target unchanged, task branch and worktree kept) on a conflict, and
    GitError when the target is missing, is checked out somewhere, or moved meanwhile.
    ``message`` is the merge/squash commit's message (rebase keeps the task's commits);
    ``mark``'s trailer ends the landing commit's message (rebase: the last replayed one).
    """
    if not await _check(repo, wt, target_branch, strategy):
        return LandResult(None, None, "", "none")
    async with repo.lock():
        result, _ = await _land_locked(
            repo, await list_worktrees(repo), wt, target_branch, strategy, message, mark
        )
    return await _with_diffstat(repo, result)


async def land_and_remove(
    repo: GitRepo,
    wt: Worktree,
    target_branch: str,
    strategy: Strategy,
    message: str,
    *,
    mark: Mark | None = None,
) -> tuple[LandResult, bool]:
    """:func:`land`, then remove the task's worktree in the same hold of the lock.

    The worktree is removed as :func:`~planrun.workspace.worktrees.remove_worktree` would
    (never when dirty or not planrun's), whether or not anything landed; the task branch is
    deleted too when all of it landed (merge, rebase), and only while it is still at the tip
    that landed. Returns the landing and whether the worktree was removed (a git error while
    removing keeps it and is not raised: the landing stands). A conflict or an error while
    landing raises before anything is removed.
    """
    if not await _check(repo, wt, target_branch, strategy):
        return LandResult(None, None, "", "none"), False
    async with repo.lock():
        entries = await list_worktrees(repo)
        result, tip = await _land_locked(repo, entries, wt, target_branch, strategy, message, mark)
        merged = result.commit is not None and strategy != "squash"
        try:
            removed = await remove_listed(repo, entries, wt, delete_branch=merged, branch_tip=tip)
        except GitError:
            removed = False  # what landed stays landed; the worktree is kept for a look
    return await _with_diffstat(repo, result), removed


async def _check(repo: GitRepo, wt: Worktree, target_branch: str, strategy: Strategy) -> bool:
    """False for strategy ``none``; raise on an unknown strategy or an invalid branch name."""
    if strategy == "none":
        return False
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown integration strategy {strategy!r}")
    await repo.check_ref(target_branch)
    await repo.check_ref(wt.branch)
    await check_gitlinks(repo, target_branch, wt.branch)
    return True


async def check_gitlinks(repo: GitRepo, target_branch: str, branch: str) -> None:
    """Raise GitlinkError if ``branch`` adds or changes a dangling gitlink (see the module doc).

    One ``diff-tree`` of what the branch changed since it forked from the target (against
    the target itself when they have several merge bases, which ``--merge-base`` refuses);
    only when it holds gitlinks, one ``cat-file --batch-check`` for their commits and, for
    missing ones, one read of the branch's ``.gitmodules``. A branch that cannot be read
    is left to the landing, which names it.
    """
    refs = ("--end-of-options", f"refs/heads/{target_branch}", f"refs/heads/{branch}")
    diff = ("diff-tree", "-r", "-z", "--no-renames", "--ignore-submodules=none")
    out = await repo.run(*diff, "--merge-base", *refs, check=False)
    if out.returncode != 0:
        out = await repo.run(*diff, *refs, check=False)
        if out.returncode != 0:
            return
    links = _new_gitlinks(out.stdout)
    if not links:
        return
    check = await repo.run("cat-file", "--batch-check", input="".join(f"{s}\n" for s in links))
    missing = {
        sha: path
        for (sha, path), line in zip(links.items(), check.stdout.splitlines(), strict=False)
        if line.endswith(" missing")
    }
    if not missing:
        return
    declared = await _submodule_paths(repo, branch)
    dangling = sorted((p, s) for s, p in missing.items() if p not in declared)
    if dangling:
        path, sha = dangling[0]
        more = f" (and {', '.join(p for p, _ in dangling[1:])})" if dangling[1:] else ""
        raise GitlinkError(
            ("git", "diff-tree", f"refs/heads/{branch}"),
            [p for p, _ in dangling],
            f"dangling gitlink at {path}{more}: {branch} records it as a submodule at commit "
            f"{sha[:12]}, which this repository does not have, and no .gitmodules entry "
            "declares it (a nested git repository committed with `git add`?); planrun does "
            f"not land it (`git rm --cached {path}` keeps its files out, or add it with "
            "`git submodule add <url>`)",
        )


def _new_gitlinks(raw_z: str) -> dict[str, str]:
    """Commit → path of each gitlink a ``diff-tree -r -z --no-renames`` adds or changes."""
    fields = raw_z.split("\0")
    links: dict[str, str] = {}
    for meta, path in zip(fields[0::2], fields[1::2], strict=False):
        parts = meta.split(" ")
        if len(parts) == 5 and parts[1] == "160000" and parts[4] != "D":
            links[parts[3]] = path
    return links


async def _submodule_paths(repo: GitRepo, branch: str) -> set[str]:
    """The paths ``.gitmodules`` on ``branch`` declares submodules (none if it has none)."""
    out = await repo.run(
        "config",
        "-z",
        f"--blob=refs/heads/{branch}:.gitmodules",
        "--get-regexp",
        r"^submodule\..*\.path$",
        check=False,
    )
    return {entry.partition("\n")[2] for entry in out.stdout.split("\0") if entry}


async def _land_locked(
    repo: GitRepo,
    entries: list[WorktreeEntry],
    wt: Worktree,
    target_branch: str,
    strategy: Strategy,
    message: str,
    mark: Mark | None = None,
) -> tuple[LandResult, str | None]:
    """The landing, under the lock; returns it and the task tip that landed (None if none)."""
    _refuse_checked_out(entries, target_branch)
    new: str | None
    if strategy == "rebase":
        old = await _tip(repo, target_branch)
        new = tip = await _rebase(repo, wt, old)
        if mark is not None and new != old:
            new = tip = await _sign_tip(repo, wt, mark)
    else:
        if mark is not None:
            message = mark.sign(message)
        old, old_tree, tip = await _tips(repo, target_branch, wt.branch)
        new = await _merge_commit(repo, tip, old, old_tree, message, squash=strategy == "squash")
    if new is None or new == old:
        return LandResult(None, old, "", strategy), None
    await repo.run(
        "update-ref",
        "-m",
        f"planrun: land {wt.branch} ({strategy})",
        "--end-of-options",
        f"refs/heads/{target_branch}",
        new,
        old,
    )
    return LandResult(new, old, "", strategy), tip


async def _with_diffstat(repo: GitRepo, result: LandResult) -> LandResult:
    """``result`` with the diffstat of what landed (two fixed commits: no lock needed)."""
    if result.commit is None or result.base_commit is None:
        return result
    stat = await repo.run("diff", "--stat", "--end-of-options", result.base_commit, result.commit)
    return replace(result, diffstat=stat.stdout)


async def _tip(repo: GitRepo, branch: str) -> str:
    sha = await repo.rev_parse(f"refs/heads/{branch}")
    if sha is None:
        raise GitError(
            ("git", "rev-parse", "--verify", f"refs/heads/{branch}"),
            1,
            f"fatal: branch {branch!r} does not exist\n",
        )
    return sha


async def _tips(repo: GitRepo, target: str, branch: str) -> tuple[str, str, str]:
    """The target's tip and tree and the task branch's tip, read in one ``for-each-ref``.

    Each line of for-each-ref reads its ref once, so a tip and its tree always agree.
    """
    refs = (f"refs/heads/{target}", f"refs/heads/{branch}")
    out = await repo.run(
        "for-each-ref",
        "--format=%(objectname) %(objecttype) %(tree) %(refname)",
        "--end-of-options",
        *refs,
    )
    found: dict[str, tuple[str, str]] = {}
    for line in out.stdout.splitlines():
        sha, kind, tree, name = [*line.split(" ", 3), "", "", ""][:4]
        if kind == "commit" and tree:
            found[name] = (sha, tree)
    if refs[0] not in found or refs[1] not in found:
        # missing (or not a commit): read one at a time, which names the missing branch
        old, tip = await _tip(repo, target), await _tip(repo, branch)
        return old, await _tree_of(repo, old), tip
    (old, old_tree), (tip, _) = found[refs[0]], found[refs[1]]
    return old, old_tree, tip


def _refuse_checked_out(entries: list[WorktreeEntry], branch: str) -> None:
    for entry in entries:
        if entry.branch == branch and not entry.bare:
            raise GitError(
                ("git", "update-ref", f"refs/heads/{branch}"),
                1,
                f"fatal: {branch} is checked out at {entry.path}; planrun lands only on a "
                "branch no worktree has checked out, so that it never changes files under "
                "someone's feet (check out another branch there, or pick another target)\n",
            )


async def _merge_commit(
    repo: GitRepo, tip: str, old: str, old_tree: str, message: str, *, squash: bool
) -> str | None:
    """The commit that merges ``tip`` into ``old`` (None: nothing to land); no ref moves.

    Nothing lands when the merged tree is the target's own: for squash always; for merge
    when the task tip is already in the target (if it is, the merge is the target's tree, so
    only then is ``merge-base --is-ancestor`` asked).
    """
    tree = await _merge_tree(repo, old, tip)
    if tree == old_tree and (squash or await repo.is_ancestor(tip, old)):
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


async def _rebase(repo: GitRepo, wt: Worktree, onto: str) -> str:
    """Rebase the task branch in its own worktree onto ``onto``; return the new tip."""
    here = GitRepo(wt.path)
    on = await here.current_branch()
    if on != wt.branch:
        raise GitError(
            ("git", "rebase"),
            1,
            f"fatal: {wt.path} is on {on or 'a detached HEAD'}, not {wt.branch}\n",
        )
    if await here.is_dirty():
        raise GitError(("git", "rebase"), 1, f"fatal: {wt.path} has uncommitted changes\n")
    out = await rebase_onto(repo, here, onto)
    if out.returncode != 0:
        conflicted = await _unmerged_paths(here)
        await here.run("rebase", "--abort", check=False)
        if conflicted:
            detail = out.stdout + out.stderr + "".join(f"CONFLICT in {p}\n" for p in conflicted)
            raise MergeConflict(out.argv, out.returncode, detail, conflicted)
        raise GitError(out.argv, out.returncode, out.stderr)
    return await _tip(here, wt.branch)


async def _sign_tip(repo: GitRepo, wt: Worktree, mark: Mark) -> str:
    """Add ``mark``'s trailer to the task branch's last commit (its author kept)."""
    here = GitRepo(wt.path)
    old = await here.run("log", "-1", "--format=%B", "HEAD")
    identity = await repo.identity_config()
    await here.run(
        "commit",
        "--amend",
        "--no-verify",
        "--allow-empty",
        "-q",
        "--cleanup=verbatim",
        "-F",
        "-",
        input=mark.sign(old.stdout),
        config=(*identity, NO_HOOKS),
    )
    return await _tip(here, wt.branch)


async def _unmerged_paths(repo: GitRepo) -> list[str]:
    out = await repo.run("diff", "--name-only", "--diff-filter=U", "-z", check=False)
    return list(dict.fromkeys(p for p in out.stdout.split("\0") if p))
