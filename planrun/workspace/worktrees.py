"""One git worktree and branch per task: create (or resume), list, commit, remove.

Contracts:

- Every change to a repository's worktrees or branches happens under ``repo.lock()``, so
  planrun never races itself; git's own lock files still guard against other git users.
- Worktrees are added with ``--lock --reason planrun...`` (``gc``/``prune`` cannot take them
  while a task runs) and new branches with ``--no-track`` (no write to the shared
  ``.git/config``, the source of the parallel-add race).
- ``worktree add`` is retried only when git reports lock contention, and only after undoing
  what the failed try made: the worktree if it is registered and clean, the branch if this
  call created it, it still points at the base and no worktree has it checked out.
- Nothing here runs ``git worktree prune`` (it is repository-wide) or removes a dirty or
  foreign-locked worktree, or ``rm -rf``\\ s a folder.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import trio
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from planrun.errors import GitError, InternalError
from planrun.workspace.git import GitRepo
from planrun.workspace.names import sanitize_component

LOCK_REASON_PREFIX = "planrun"
ADD_ATTEMPTS = 5  # total tries of ``worktree add`` under lock contention
_BACKOFF_FIRST = 0.05  # seconds; doubles per retry: 0.05, 0.1, 0.2, 0.4
_BACKOFF_MAX = 1.0

_CONTENTION = re.compile(
    r"\.lock'?: File exists|index\.lock|could not lock config file|"
    r"Unable to create '[^']*\.lock'",
)


@dataclass(frozen=True)
class Worktree:
    """A task's worktree: its folder, its branch (short name) and the commit it forked from.

    ``base_commit`` is None when unknown (worktrees found by listing rather than made).
    """

    path: Path
    branch: str
    base_commit: str | None


@dataclass(frozen=True)
class WorktreeEntry:
    """One record of ``git worktree list --porcelain``.

    ``branch`` is the short name (None when detached or bare); ``locked`` is the lock reason
    ("" when locked without one) or None when not locked.
    """

    path: Path
    head: str | None
    branch: str | None
    locked: str | None
    prunable: bool
    bare: bool


def is_contention(exc: BaseException) -> bool:
    """Whether ``exc`` is a GitError caused by another process holding one of git's locks."""
    return isinstance(exc, GitError) and _CONTENTION.search(exc.stderr) is not None


def parse_worktree_list(porcelain_z: str) -> list[WorktreeEntry]:
    """Parse the output of ``git worktree list --porcelain -z``."""
    entries: list[WorktreeEntry] = []
    fields: dict[str, str] = {}
    for item in [*porcelain_z.split("\0"), ""]:
        if item:
            name, _, value = item.partition(" ")
            fields[name] = value
        elif fields:
            entries.append(_entry(fields))
            fields = {}
    return entries


def _entry(fields: dict[str, str]) -> WorktreeEntry:
    ref = fields.get("branch")
    return WorktreeEntry(
        path=Path(fields["worktree"]),
        head=fields.get("HEAD"),
        branch=ref.removeprefix("refs/heads/") if ref else None,
        locked=fields.get("locked"),
        prunable="prunable" in fields,
        bare="bare" in fields,
    )


async def list_worktrees(repo: GitRepo) -> list[WorktreeEntry]:
    """Every worktree registered in the repository, the main one first."""
    out = await repo.run("worktree", "list", "--porcelain", "-z")
    return parse_worktree_list(out.stdout)


async def list_planrun_worktrees(repo: GitRepo, plan: str) -> list[Worktree]:
    """The worktrees on branches ``planrun/<plan>/...`` (``base_commit`` is None)."""
    prefix = f"planrun/{sanitize_component(plan)}/"
    return [
        Worktree(e.path, e.branch, None)
        for e in await list_worktrees(repo)
        if e.branch is not None and e.branch.startswith(prefix)
    ]


def _same_path(a: Path, b: Path) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


async def _is_dir(path: Path) -> bool:
    return await trio.Path(path).is_dir()


def _nonempty_dir(path: Path) -> bool:
    return path.is_dir() and any(path.iterdir())


def _entry_at(entries: list[WorktreeEntry], path: Path) -> WorktreeEntry | None:
    return next((e for e in entries if _same_path(e.path, path)), None)


async def _branch_tip(repo: GitRepo, branch: str) -> str | None:
    return await repo.rev_parse(f"refs/heads/{branch}")


async def _resolve(repo: GitRepo, ref: str) -> str:
    sha = await repo.rev_parse(ref)
    if sha is None:
        raise GitError(
            ("git", "rev-parse", "--verify", ref), 1, f"fatal: {ref!r} is not a commit\n"
        )
    return sha


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
        existing = await _branch_tip(repo, branch)
        if existing is not None:
            return existing
        start = await _resolve(repo, start_point)
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
        tip = await _branch_tip(repo, branch)
        if tip is None:
            raise GitError(out.argv, out.returncode, out.stderr)
        return tip


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
    - ``path`` exists, not empty and not registered (left by a kill): moved to
      ``quarantine_dir/<ns>-<name>`` if given, else GitError. Never deleted.
    - ``branch`` exists (an earlier attempt): attached as is, never reset to ``base_ref``.
    - otherwise ``branch`` is created at ``base_ref`` with ``--no-track``.

    ``reason`` is the lock reason, prefixed with ``planrun: `` unless it starts with
    ``planrun``. Lock contention is retried (:data:`ADD_ATTEMPTS` tries, exponential backoff,
    the repository lock released while waiting) and, if the lock stays, reported with the
    held lock file named; git's lock files are never deleted here. Any other failure raises
    GitError at once.
    """
    await repo.check_ref(branch)
    if not reason.startswith(LOCK_REASON_PREFIX):
        reason = f"{LOCK_REASON_PREFIX}: {reason}"
    path = Path(await trio.Path(path).absolute())
    retrying = AsyncRetrying(
        retry=retry_if_exception(is_contention),
        stop=stop_after_attempt(ADD_ATTEMPTS),
        wait=wait_exponential(multiplier=_BACKOFF_FIRST, min=_BACKOFF_FIRST, max=_BACKOFF_MAX),
        sleep=trio.sleep,
        reraise=True,
    )
    try:
        async for attempt in retrying:
            with attempt:
                async with repo.lock():
                    return await _add_locked(repo, path, branch, base_ref, reason, quarantine_dir)
    except GitError as exc:
        if is_contention(exc):
            raise _still_locked(exc) from exc
        raise
    raise InternalError("worktree add retry loop ended without a result")


def _still_locked(exc: GitError) -> GitError:
    """The same error, ending with the line that names the held lock (GitError shows the last)."""
    held = next(line for line in exc.stderr.splitlines() if _CONTENTION.search(line))
    note = f"planrun: gave up after {ADD_ATTEMPTS} tries: {held.strip()}\n"
    return GitError(exc.argv, exc.returncode, exc.stderr.rstrip("\n") + "\n" + note)


async def _add_locked(
    repo: GitRepo,
    path: Path,
    branch: str,
    base_ref: str,
    reason: str,
    quarantine_dir: Path | None,
) -> Worktree:
    base = await _resolve(repo, base_ref)
    entry = _entry_at(await list_worktrees(repo), path)
    if entry is not None and await _reuse(repo, entry, branch, reason):
        return Worktree(path, branch, await _fork_point(repo, branch, base))
    if entry is None and await trio.to_thread.run_sync(_nonempty_dir, path):
        _quarantine(path, quarantine_dir)
    created = await _branch_tip(repo, branch) is None
    try:
        await _worktree_add(repo, path, branch, base, reason, create=created)
    except GitError as exc:
        if is_contention(exc):
            await _undo_partial_add(repo, path, branch, base, created=created)
        raise
    return Worktree(path, branch, base if created else await _fork_point(repo, branch, base))


async def _reuse(repo: GitRepo, entry: WorktreeEntry, branch: str, reason: str) -> bool:
    """True if ``entry`` is the task's live worktree; False once a stale entry was removed."""
    if not await _is_dir(entry.path):
        await _drop_entry(repo, entry)
        return False
    if entry.branch != branch:
        raise GitError(
            ("git", "worktree", "add", str(entry.path)),
            1,
            f"fatal: {entry.path} is already a worktree of "
            f"{entry.branch or 'a detached HEAD'}, not of {branch}\n",
        )
    if entry.locked is None:
        await repo.run("worktree", "lock", "--reason", reason, "--end-of-options", str(entry.path))
    return True


async def _drop_entry(repo: GitRepo, entry: WorktreeEntry) -> None:
    """Remove the registration of one worktree whose folder is gone (a targeted prune)."""
    if entry.locked is not None:
        await repo.run("worktree", "unlock", "--end-of-options", str(entry.path))
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
    args = ["worktree", "add", "--lock", "--reason", reason]
    if create:
        args += ["--no-track", "-b", branch, "--end-of-options", str(path), base]
    else:
        args += ["--end-of-options", str(path), branch]
    await repo.run(*args)


async def _undo_partial_add(
    repo: GitRepo, path: Path, branch: str, base: str, *, created: bool
) -> None:
    """Undo what a failed ``worktree add`` left, touching nothing that may hold work."""
    entries = await list_worktrees(repo)
    entry = _entry_at(entries, path)
    if entry is not None and await _holds_no_work(repo, path):
        if entry.locked is not None:
            await repo.run("worktree", "unlock", "--end-of-options", str(path), check=False)
        await repo.run("worktree", "remove", "--end-of-options", str(path), check=False)
        entries = await list_worktrees(repo)
    if created and all(e.branch != branch for e in entries):
        # compare-and-swap delete: only while the branch still points at the base
        await repo.run(
            "update-ref", "-d", "--end-of-options", f"refs/heads/{branch}", base, check=False
        )


async def _holds_no_work(repo: GitRepo, path: Path) -> bool:
    """Whether the folder is gone or a clean worktree (an unreadable one counts as work)."""
    if not await _is_dir(path):
        return True
    try:
        return not await repo.is_dirty(path)
    except GitError:
        return False


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
        entry = _entry_at(await list_worktrees(repo), wt.path)
        if entry is None:
            if await trio.Path(wt.path).exists():
                return False
        elif not await _remove_entry(repo, entry, wt.branch, force=not force_clean_only):
            return False
        if delete_branch:
            await _delete_branch(repo, wt.branch)
        return True


async def _remove_entry(repo: GitRepo, entry: WorktreeEntry, branch: str, *, force: bool) -> bool:
    if entry.branch != branch:
        return False
    if entry.locked is not None and not entry.locked.startswith(LOCK_REASON_PREFIX):
        return False
    present = await _is_dir(entry.path)
    if present and not force and await repo.is_dirty(entry.path):
        return False
    if entry.locked is not None:
        await repo.run("worktree", "unlock", "--end-of-options", str(entry.path))
    args = ["worktree", "remove", *(["--force"] if present and force else [])]
    try:
        await repo.run(*args, "--end-of-options", str(entry.path))
    except GitError:
        # git's own check refused (the worktree changed after ours): keep it, locked again
        if entry.locked is not None:
            relock = ("--reason", entry.locked, "--end-of-options", str(entry.path))
            await repo.run("worktree", "lock", *relock, check=False)
        return False
    return True


async def _delete_branch(repo: GitRepo, branch: str) -> None:
    tip = await _branch_tip(repo, branch)
    if tip is not None:
        await repo.run("update-ref", "-d", "--end-of-options", f"refs/heads/{branch}", tip)


async def commit_all(wt: Worktree, message: str) -> str | None:
    """Stage everything in ``wt`` (``git add -A``) and commit it; return the sha, or None.

    None means there was nothing to commit. Raises GitError if the worktree is not on
    ``wt.branch`` (a commit on a detached HEAD would never land). Hooks are skipped
    (``--no-verify``): this is planrun saving leftovers, not an agent's own commit. The
    identity comes from git's config or environment; ``planrun <planrun@localhost>`` is
    used only when git has none.
    """
    repo = GitRepo(wt.path)
    on = await repo.current_branch()
    if on != wt.branch:
        raise GitError(
            ("git", "commit"),
            1,
            f"fatal: {wt.path} is on {on or 'a detached HEAD'}, not {wt.branch}\n",
        )
    await repo.run("add", "-A")
    staged = await repo.run("diff", "--cached", "--quiet", check=False)
    if staged.returncode == 0:
        return None
    if staged.returncode != 1:
        raise GitError(staged.argv, staged.returncode, staged.stderr)
    identity = await repo.identity_config()
    await repo.run("commit", "-q", "--no-verify", "-m", message, config=identity)
    return await repo.rev_parse("HEAD")
