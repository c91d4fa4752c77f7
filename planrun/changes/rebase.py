"""A changeset's branch changed in a worktree of planrun's own: rebased onto its moved
base, or given a follow-up commit (:func:`on_branch`).

The project's integration branch (the tip a changeset proposes) is replayed onto the
fetched base with ``git rebase --rebase-merges`` in a detached worktree under the state
folder (hooks off, planrun's identity if git has none), so the landing commits keep their
trailers (the decision finds each task's work again by them). Nothing moves until the
end: the branch is then moved with a compare-and-swap ``update-ref``. A rebase that stops
on conflicts gets one try of ``resolve`` (an agent turn, given the conflicting files as
data); markers left, or a second stop, abort it and leave the branch as it was.

Synchronous (before the run starts), argv only.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable
from pathlib import Path

from planrun.changes.push import git, tip
from planrun.core.frozen import frozen
from planrun.trackers.http import TrackerError

#: The most bytes of one conflicting file quoted to the agent.
FILE_LIMIT = 16 * 1024
#: The most files quoted.
FILES_LIMIT = 20
NO_HOOKS = ("-c", "core.hooksPath=/dev/null")
MARKERS = ("<<<<<<< ", ">>>>>>> ")


class Conflicted(Exception):
    """The rebase conflicted and was not resolved: ``files`` (nothing was moved)."""

    def __init__(self, files: list[str], why: str) -> None:
        super().__init__(why)
        self.files = files


@frozen
class Rebased:
    """The branch's tip before and after, and the files an agent resolved (if any)."""

    before: str
    after: str
    resolved: tuple[str, ...] = ()


def fetch_base(path: str, remote: str, base: str, env: dict[str, str]) -> str | None:
    """Fetch ``base`` from ``remote`` into ``refs/remotes/<remote>/<base>``; its commit."""
    ref = f"refs/remotes/{remote}/{base}"
    git(path, "fetch", "--quiet", "--no-tags", "--end-of-options", remote,
        f"+refs/heads/{base}:{ref}", env=env)  # fmt: skip
    return tip(path, ref)


def rebase(
    path: str,
    branch: str,
    onto: str,
    folder: Path,
    resolve: Callable[[Path, str], None] | None,
    check: Callable[[Path], None] = lambda folder: None,
) -> Rebased:
    """Rebase ``branch`` of the repository at ``path`` onto ``onto`` in ``folder`` (a
    worktree made and removed here); Conflicted when it stops and is not resolved.
    ``check(folder)`` runs on the rebased code before the branch moves (it raises to
    keep the branch as it was)."""
    resolved: tuple[str, ...] = ()

    def replay(here: Path) -> None:
        nonlocal resolved
        resolved = _replay(path, here, onto, resolve)

    before, after = on_branch(path, branch, folder, replay, check, "rebased on its moved base")
    return Rebased(before, after, resolved)


def on_branch(
    path: str,
    branch: str,
    folder: Path,
    change: Callable[[Path], None],
    check: Callable[[Path], None],
    why: str,
) -> tuple[str, str]:
    """``change(folder)`` in a detached worktree of ``branch``'s tip (made and removed
    here), then ``check(folder)``, then ``branch`` moved to the worktree's HEAD with a
    compare-and-swap (``why`` in the reflog). The tips before and after."""
    before = tip(path, f"refs/heads/{branch}")
    if before is None:
        raise TrackerError(f"branch {branch} is gone from {path}")
    _remove(path, folder)
    _not_checked_out(path, branch)
    folder.parent.mkdir(parents=True, exist_ok=True)
    git(path, "worktree", "add", "--detach", "--end-of-options", str(folder), before)
    try:
        change(folder)
        after = git(str(folder), "rev-parse", "HEAD").strip()
        if after != before:
            check(folder)
            git(path, "update-ref", "-m", f"planrun: {why}", f"refs/heads/{branch}", after, before)
        return before, after
    finally:
        _remove(path, folder)


def _not_checked_out(path: str, branch: str) -> None:
    """TrackerError when ``branch`` is checked out in a worktree: moving it would change
    the files under that checkout's feet (as landing refuses too)."""
    listed = git(path, "worktree", "list", "--porcelain")
    for entry in listed.split("\n\n"):
        if f"branch refs/heads/{branch}" in entry.splitlines():
            where = entry.splitlines()[0].removeprefix("worktree ")
            raise TrackerError(f"{branch} is checked out in {where}: planrun does not move it")


def commit_all(path: str, folder: Path, message: str) -> bool:
    """Commit everything changed in the worktree ``folder`` (hooks off); False: nothing."""
    here = str(folder)
    git(here, *NO_HOOKS, "add", "--all")
    if not git(here, "status", "--porcelain"):
        return False
    git(here, *NO_HOOKS, *_identity(path), "commit", "--quiet", "--no-verify", "-m", message)
    return True


def _replay(
    path: str, folder: Path, onto: str, resolve: Callable[[Path, str], None] | None
) -> tuple[str, ...]:
    here = str(folder)
    started = ("--no-autostash", "--rebase-merges", "--end-of-options", onto)
    if _git_rebase(path, here, *started) is None:
        return ()
    files = conflicts(here)
    if not files:
        _abort(here)
        raise TrackerError(f"git rebase onto {onto[:12]} stopped in {path} without a conflict")
    if resolve is None:
        _abort(here)
        raise Conflicted(files, "no agent task in the project to resolve it")
    resolve(folder, conflict_prompt(folder, files, onto))
    left = [f for f in files if _has_markers(folder / f)]
    if left:
        _abort(here)
        raise Conflicted(files, f"the agent left conflict markers in {', '.join(left)}")
    git(here, *NO_HOOKS, "add", "--all", "--", *files)
    stopped = _git_rebase(path, here, "--continue")
    if stopped is not None:
        again = conflicts(here)
        _abort(here)
        raise Conflicted(again or files, f"the rebase stopped again after the agent: {stopped}")
    return tuple(files)


def _git_rebase(path: str, here: str, *args: str) -> str | None:
    """``git rebase ARGS`` in ``here``; why it stopped (conflicts), or None."""
    identity = _identity(path)
    env = {"GIT_EDITOR": "true", "GIT_SEQUENCE_EDITOR": "true"}
    try:
        git(here, *NO_HOOKS, *identity, "rebase", *args, env=env)
    except TrackerError as exc:
        return exc.message
    return None


def _identity(path: str) -> tuple[str, ...]:
    """planrun's identity for the replayed commits, when git has none configured."""
    try:
        git(path, "config", "user.email")
    except TrackerError:
        return ("-c", "user.name=planrun", "-c", "user.email=planrun@localhost")
    return ()


def conflicts(here: str) -> list[str]:
    """The paths with unresolved conflicts in the worktree ``here``."""
    out = git(here, "diff", "--name-only", "--diff-filter=U", "-z")
    return sorted({p for p in out.split("\0") if p})


def conflict_prompt(folder: Path, files: list[str], onto: str) -> str:
    """What the agent is told: the conflicting files with their markers, quoted as data
    (bounded: :data:`FILES_LIMIT` files of at most :data:`FILE_LIMIT` bytes)."""
    parts = [
        f"Rebasing this branch onto its base's new commit {onto[:12]} stopped on conflicts "
        f"in {len(files)} file(s). Edit each file so that it keeps the intent of both sides "
        "and holds no conflict markers (<<<<<<<, =======, >>>>>>>). Do not commit, do not "
        "run git rebase: planrun continues the rebase and runs the checks.",
    ]
    for name in files[:FILES_LIMIT]:
        data = (folder / name).read_bytes() if (folder / name).is_file() else b""
        text = data[:FILE_LIMIT].decode("utf-8", "replace")
        cut = f"\n[... {len(data) - FILE_LIMIT} more bytes]" if len(data) > FILE_LIMIT else ""
        parts.append(f"--- {name} ---\n{text}{cut}")
    if len(files) > FILES_LIMIT:
        parts.append(f"(and {len(files) - FILES_LIMIT} more files with conflicts)")
    return "\n\n".join(parts)


def _has_markers(file: Path) -> bool:
    try:
        lines = file.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return False
    return any(line.startswith(MARKERS) or line == "=======" for line in lines)


def _abort(here: str) -> None:
    with contextlib.suppress(TrackerError):
        git(here, "rebase", "--abort")


def _remove(path: str, folder: Path) -> None:
    """Remove planrun's rebase worktree (a crash may have left one, mid-rebase)."""
    with contextlib.suppress(TrackerError):
        git(path, "worktree", "remove", "--force", "--end-of-options", str(folder))
    if folder.exists():
        shutil.rmtree(folder, ignore_errors=True)
    with contextlib.suppress(TrackerError):
        git(path, "worktree", "prune")


def reset(path: str, branch: str, onto: str, kept: str) -> str:
    """Move ``branch`` to ``onto``, its old tip kept as the branch ``kept``; that tip."""
    before = tip(path, f"refs/heads/{branch}")
    if before is None:
        raise TrackerError(f"branch {branch} is gone from {path}")
    git(path, "update-ref", "-m", "planrun: kept before its base moved",
        f"refs/heads/{kept}", before, "")  # fmt: skip
    git(path, "update-ref", "-m", "planrun: reset to its moved base",
        f"refs/heads/{branch}", onto, before)  # fmt: skip
    return before
