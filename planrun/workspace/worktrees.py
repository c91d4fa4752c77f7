"""One git worktree and branch per task: create it, or resume the one left (listing,
commits and removal are in ``listing``, ``commits`` and ``removal`` beside this module).

Contracts:

- Every change to a repository's worktrees or branches happens under ``repo.lock()``, so
  planrun never races itself; git's own lock files still guard against other git users.
- Worktrees are added with ``--lock --reason planrun...`` (``gc``/``prune`` cannot take them
  while a task runs) and new branches with ``--no-track`` (no write to the shared
  ``.git/config``, the source of the parallel-add race).
- Under the lock a worktree is only registered (``worktree add --no-checkout``: the branch,
  ``.git/worktrees/<id>/``); its files are checked out after the lock is released, with
  ``git -C <worktree> checkout -q``, which writes only that worktree's files and its own
  index (``.git/worktrees/<id>/index``) and refuses to overwrite files it did not expect. So
  checkouts of different worktrees run in parallel.
- Those checkouts run no hooks (``core.hooksPath=/dev/null``, which wins over a
  repository's own ``core.hooksPath``): a user's ``post-checkout`` hook (git-lfs's, on a
  machine without git-lfs) would otherwise fail every task although the checkout worked,
  and a hook's exit status cannot tell a failed checkout from a failed hook. What a new
  worktree needs is the project's ``setup``, which planrun runs, times and logs.
- ``worktree add`` is retried only when git reports lock contention, and only after undoing
  what the failed try made: the worktree if it is registered and clean, the branch if this
  call created it, it still points at the base and no worktree has it checked out. A
  checkout that did not finish (no index written: an error, a cancellation) leaves a
  worktree that holds nothing but what that checkout wrote; like ``worktree add``'s own
  clean-up on failure, that worktree is removed with ``--force``, and its branch if this
  call created it. One left by a killed run is found by its missing index when resumed and
  quarantined (moved aside, never deleted) before the worktree is made again.
- Nothing here runs ``git worktree prune`` (it is repository-wide) or removes a dirty or
  foreign-locked worktree, or ``rm -rf``\\ s a folder. Removal leaves the clean check to
  ``git worktree remove`` itself, with ``status.showUntrackedFiles=normal`` forced: git 2.39
  checks with a plain ``git status --porcelain``, which a configured
  ``status.showUntrackedFiles=no`` would let delete untracked files.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import trio
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from planrun.core.frozen import frozen
from planrun.errors import GitError, InternalError
from planrun.workspace.git import NO_HOOKS, GitRepo
from planrun.workspace.listing import (
    LOCK_REASON_PREFIX,
    REMOVE_CONFIG,
    Worktree,
    WorktreeEntry,
    admin_dir,
    branch_tip,
    entry_at,
    is_dir,
    is_ours,
    list_worktrees,
    unlock,
)

ADD_ATTEMPTS = 5  # total tries of ``worktree add`` under lock contention


_BACKOFF_FIRST = 0.05  # seconds; doubles per retry: 0.05, 0.1, 0.2, 0.4


_BACKOFF_MAX = 1.0


# planrun's own checkouts of a new worktree run no user hook (see the module doc).


# How long a clean-up after a failed or cancelled checkout may wait for the lock and git.
_CLEANUP_TIMEOUT = 15.0


_CONTENTION = re.compile(
    r"\.lock'?: File exists|index\.lock|could not lock config file|"
    r"Unable to create '[^']*\.lock'",
)


def is_contention(exc: BaseException) -> bool:
    """Whether ``exc`` is a GitError caused by another process holding one of git's locks."""
    return isinstance(exc, GitError) and _CONTENTION.search(exc.stderr) is not None


def _nonempty_dir(path: Path) -> bool:
    return path.is_dir() and any(path.iterdir())


async def _fork_point(repo: GitRepo, branch: str, base: str) -> str | None:
    out = await repo.run(
        "merge-base", "--end-of-options", base, f"refs/heads/{branch}", check=False
    )
    return out.stdout.strip() or None


async def ensure_branch(repo: GitRepo, branch: str, start_point: str) -> str:
    """Create ``branch`` at ``start_point`` unless it exists; never move it. Returns its tip.

    Takes ``repo.lock()``. Creation is a compare-and-swap against "no such ref", so it is safe
    even against git users that do not know planrun's lock.
    """
    await repo.check_ref(branch)
    async with repo.lock():
        existing, start = await repo.resolve_commits(f"refs/heads/{branch}", start_point)
        if existing is not None:
            return existing
        if start is None:
            raise _not_a_commit(start_point)
        zero = "0" * len(start)
        out = await repo.run(
            "update-ref",
            "-m",
            f"planrun: branch from {start_point}",
            "--end-of-options",
            f"refs/heads/{branch}",
            start,
            zero,
            check=False,
        )
        tip = await branch_tip(repo, branch)
        if tip is None:
            raise GitError(out.argv, out.returncode, out.stderr)
        return tip


def _not_a_commit(ref: str) -> GitError:
    return GitError(("git", "rev-parse", "--verify", ref), 1, f"fatal: {ref!r} is not a commit\n")


@frozen
class _Added:
    """What one try of :func:`add_worktree` did under the lock.

    ``fresh``: this try registered the worktree (``--no-checkout``), so its files are still
    to be checked out; ``created``: this try created the branch, at ``base``.
    """

    path: Path
    branch: str
    base: str
    fresh: bool
    created: bool
    fork_point: str | None = None


async def add_worktree(
    repo: GitRepo,
    path: Path,
    branch: str,
    base_ref: str,
    *,
    reason: str,
    quarantine_dir: Path | None = None,
) -> Worktree:
    """Make (or resume) the worktree at ``path`` on ``branch``, cut from ``base_ref``.

    - ``path`` registered on ``branch`` with its folder present: reused as is (work kept),
      locked again if someone unlocked it.
    - ``path`` registered but its folder gone: that entry alone is removed, then re-added.
    - ``path`` registered on ``branch`` but never checked out (no index: a run was killed
      while checking it out): the folder is moved to ``quarantine_dir`` (else GitError), the
      entry removed, and the worktree made again.
    - ``path`` exists, not empty and not registered (left by a kill): moved to
      ``quarantine_dir/<ns>-<name>`` if given, else GitError. Never deleted.
    - ``branch`` exists (an earlier attempt): attached as is, never reset to ``base_ref``.
    - otherwise ``branch`` is created at ``base_ref`` with ``--no-track``.

    The repository lock is held to register the worktree, not to check out its files (see
    the module doc). ``reason`` is the lock reason, prefixed with ``planrun: `` unless it
    starts with ``planrun``. Lock contention is retried (:data:`ADD_ATTEMPTS` tries,
    exponential backoff, the repository lock released while waiting) and, if the lock stays,
    reported with the held lock file named; git's lock files are never deleted here. Any
    other failure raises GitError at once.
    """
    await repo.check_ref(branch)
    if not reason.startswith(LOCK_REASON_PREFIX):
        reason = f"{LOCK_REASON_PREFIX}: {reason}"
    path = Path(await trio.Path(path).absolute())
    try:
        async for attempt in _retrying():
            with attempt:
                return await _add_once(repo, path, branch, base_ref, reason, quarantine_dir)
    except GitError as exc:
        if is_contention(exc):
            raise _still_locked(exc) from exc
        raise
    raise InternalError("worktree add retry loop ended without a result")


def _retrying() -> AsyncRetrying:
    """Tries of ``worktree add`` under lock contention, backing off exponentially."""
    return AsyncRetrying(
        retry=retry_if_exception(is_contention),
        stop=stop_after_attempt(ADD_ATTEMPTS),
        wait=wait_exponential(multiplier=_BACKOFF_FIRST, min=_BACKOFF_FIRST, max=_BACKOFF_MAX),
        sleep=trio.sleep,
        reraise=True,
    )


async def _add_once(
    repo: GitRepo,
    path: Path,
    branch: str,
    base_ref: str,
    reason: str,
    quarantine_dir: Path | None,
) -> Worktree:
    """One try: register under the lock, check out outside it, name the fork point."""
    async with repo.lock():
        added = await _add_locked(repo, path, branch, base_ref, reason, quarantine_dir)
    if added.fresh:
        await _check_out(repo, added)
    fork = added.fork_point
    if not added.created:
        fork = await _fork_point(repo, branch, added.base)
    return Worktree(path, branch, fork, fresh=added.fresh, created=added.created)


def _still_locked(exc: GitError) -> GitError:
    """The same error, summed up as giving up on the line that names the held lock."""
    held = next(line for line in exc.stderr.splitlines() if _CONTENTION.search(line))
    summary = f"gave up after {ADD_ATTEMPTS} tries: {held.strip()}"
    return GitError(exc.argv, exc.returncode, exc.stderr, summary=summary)


async def _add_locked(
    repo: GitRepo,
    path: Path,
    branch: str,
    base_ref: str,
    reason: str,
    quarantine_dir: Path | None,
) -> _Added:
    base, tip = await repo.resolve_commits(base_ref, f"refs/heads/{branch}")
    if base is None:
        raise _not_a_commit(base_ref)
    entry = entry_at(await list_worktrees(repo), path)
    if entry is not None and await _reuse(repo, entry, branch, reason, quarantine_dir):
        return _Added(path, branch, base, fresh=False, created=False)
    if entry is None and await trio.to_thread.run_sync(_nonempty_dir, path):
        _quarantine(path, quarantine_dir)
    created = tip is None
    try:
        await _worktree_add(repo, path, branch, base, reason, create=created)
    except GitError as exc:
        if is_contention(exc):
            await _undo_partial_add(repo, path, branch, base, created=created)
        raise
    return _Added(path, branch, base, fresh=True, created=created, fork_point=base)


async def _reuse(
    repo: GitRepo, entry: WorktreeEntry, branch: str, reason: str, quarantine_dir: Path | None
) -> bool:
    """True if ``entry`` is the task's live worktree; False once a stale entry was removed."""
    if not await is_dir(entry.path):
        await _drop_entry(repo, entry)
        return False
    if entry.branch != branch:
        raise GitError(
            ("git", "worktree", "add", str(entry.path)),
            1,
            f"fatal: {entry.path} is already a worktree of "
            f"{entry.branch or 'a detached HEAD'}, not of {branch}\n",
        )
    if not await _checked_out(repo, entry.path):
        # a checkout killed before it wrote the index: what is there is no one's work, but
        # it is moved aside rather than deleted
        if quarantine_dir is None or not is_ours(entry):
            raise GitError(
                ("git", "worktree", "add", str(entry.path)),
                1,
                f"fatal: {entry.path} is a worktree whose checkout never finished (it has no "
                "index); planrun will not use or delete it (move it away)\n",
            )
        _quarantine(entry.path, quarantine_dir)
        await _drop_entry(repo, entry)
        return False
    if entry.locked is None:
        await repo.run("worktree", "lock", "--reason", reason, "--end-of-options", str(entry.path))
    return True


async def _drop_entry(repo: GitRepo, entry: WorktreeEntry) -> None:
    """Remove the registration of one worktree whose folder is gone (a targeted prune)."""
    if entry.locked is not None:
        await unlock(repo, entry.path)
    await repo.run("worktree", "remove", "--end-of-options", str(entry.path))


def _quarantine(path: Path, quarantine_dir: Path | None) -> None:
    if quarantine_dir is None:
        raise GitError(
            ("git", "worktree", "add", str(path)),
            1,
            f"fatal: {path} exists, is not empty and is not a registered worktree; "
            "planrun will not overwrite it (move it away)\n",
        )
    quarantine_dir.mkdir(parents=True, exist_ok=True)
    os.rename(path, quarantine_dir / f"{time.time_ns()}-{path.name}")


async def _worktree_add(
    repo: GitRepo, path: Path, branch: str, base: str, reason: str, *, create: bool
) -> None:
    args = ["worktree", "add", "--no-checkout", "--lock", "--reason", reason]
    if create:
        args += ["--no-track", "-b", branch, "--end-of-options", str(path), base]
    else:
        args += ["--end-of-options", str(path), branch]
    await repo.run(*args)


async def _check_out(repo: GitRepo, added: _Added) -> None:
    """Check out the files of a worktree just registered with ``--no-checkout``; no lock held.

    ``checkout -q`` in a worktree without an index checks out HEAD whole (an initial
    checkout) and refuses to overwrite files in its way; hooks off (see the module doc).
    When it fails or is cancelled, the clean-up runs shielded, under the lock: a worktree
    left without an index holds only what this checkout wrote and is removed with what this
    try created (as ``worktree add`` removes its own on failure); one with an index is
    undone only on lock contention, and only if clean.
    """
    try:
        await GitRepo(added.path).run("checkout", "-q", config=(NO_HOOKS,))
    except BaseException as exc:
        with trio.CancelScope(shield=True, deadline=trio.current_time() + _CLEANUP_TIMEOUT):
            if not await _checked_out(repo, added.path):
                async with repo.lock():
                    await _undo_partial_add(
                        repo, added.path, added.branch, added.base, created=added.created, junk=True
                    )
            elif is_contention(exc):
                async with repo.lock():
                    await _undo_partial_add(
                        repo, added.path, added.branch, added.base, created=added.created
                    )
        raise


async def _checked_out(repo: GitRepo, path: Path) -> bool:
    """Whether the worktree at ``path`` has its index (its checkout finished)."""
    admin = admin_dir(await repo.common_dir(), path)
    if admin is not None:
        return await trio.Path(admin / "index").exists()
    out = await GitRepo(path).run(
        "rev-parse", "--path-format=absolute", "--git-path", "index", check=False
    )
    if out.returncode != 0:
        return True  # not readable as a worktree: nothing to tell, leave it to git
    return await trio.Path(out.stdout.strip()).exists()


async def _undo_partial_add(
    repo: GitRepo, path: Path, branch: str, base: str, *, created: bool, junk: bool = False
) -> None:
    """Undo what a failed try left, touching nothing that may hold work.

    ``junk``: the worktree was registered by this try and its checkout never finished, so it
    holds only what that checkout wrote: it is removed with ``--force``.
    """
    entries = await list_worktrees(repo)
    entry = entry_at(entries, path)
    if entry is not None and (junk or await _holds_no_work(repo, path)):
        if entry.locked is not None:
            await unlock(repo, path)
        force = ["--force"] if junk else []
        await repo.run(
            "worktree",
            "remove",
            *force,
            "--end-of-options",
            str(path),
            check=False,
            config=REMOVE_CONFIG,
        )
        entries = await list_worktrees(repo)
    if created and all(e.branch != branch for e in entries):
        # compare-and-swap delete: only while the branch still points at the base
        await repo.run(
            "update-ref", "-d", "--end-of-options", f"refs/heads/{branch}", base, check=False
        )


async def _holds_no_work(repo: GitRepo, path: Path) -> bool:
    """Whether the folder is gone or a clean worktree (an unreadable one counts as work)."""
    if not await is_dir(path):
        return True
    try:
        return not await repo.is_dirty(path)
    except GitError:
        return False
