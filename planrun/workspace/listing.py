"""Reading a repository's worktrees: ``git worktree list`` parsed, the ones planrun made, and
the small facts the other worktree modules ask (which entry is at a path, is it ours, its
admin folder, unlocking it as git does)."""

from __future__ import annotations

import os
from pathlib import Path

import trio

from planrun.core.frozen import frozen
from planrun.core.names import sanitize_component
from planrun.workspace.git import GitRepo

LOCK_REASON_PREFIX = "planrun"


# ``git worktree remove`` checks cleanliness with ``git status --porcelain`` (a child that
# inherits ``-c``): untracked files must count whatever the repository's config says.
REMOVE_CONFIG = ("status.showUntrackedFiles=normal",)


@frozen
class Worktree:
    """A task's worktree: its folder, its branch (short name) and the commit it forked from.

    ``base_commit`` is None when unknown (worktrees found by listing rather than made).
    ``fresh``: :func:`add_worktree` checked its files out just now (a new worktree, or one
    made again after its leftover was quarantined), rather than reusing one; ``created``:
    it also created the branch, at ``base_commit`` (so nothing of an earlier run is on it).
    """

    path: Path
    branch: str
    base_commit: str | None
    fresh: bool = False
    created: bool = False


@frozen
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


def same_path(a: Path, b: Path) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


async def is_dir(path: Path) -> bool:
    return await trio.Path(path).is_dir()


def entry_at(entries: list[WorktreeEntry], path: Path) -> WorktreeEntry | None:
    return next((e for e in entries if same_path(e.path, path)), None)


async def branch_tip(repo: GitRepo, branch: str) -> str | None:
    return await repo.rev_parse(f"refs/heads/{branch}")


def is_ours(entry: WorktreeEntry) -> bool:
    return entry.locked is None or entry.locked.startswith(LOCK_REASON_PREFIX)


def admin_dir(common: Path, path: Path) -> Path | None:
    """``<common>/worktrees/<id>`` of the linked worktree at ``path``, read from ``path/.git``.

    None unless ``path/.git`` is a gitfile naming a folder of ``<common>/worktrees`` whose
    ``gitdir`` file points back at ``path/.git`` (the layout gitrepository-layout(5)
    documents).
    """
    try:
        text = (path / ".git").read_text()
        if not text.startswith("gitdir: "):
            return None
        admin = Path(path, text[len("gitdir: ") :].strip())
        if not same_path(admin.parent, common / "worktrees"):
            return None
        back = Path(admin, (admin / "gitdir").read_text().strip())
    except (OSError, UnicodeDecodeError):
        return None
    return admin if same_path(back, path / ".git") else None


async def unlock(repo: GitRepo, path: Path) -> None:
    """``git worktree unlock``, done as git does it: delete ``worktrees/<id>/locked``.

    Falls back to running git when the worktree's admin folder cannot be read.
    """
    admin = admin_dir(await repo.common_dir(), path)
    if admin is not None:
        try:
            (admin / "locked").unlink(missing_ok=True)
            return
        except OSError:
            pass
    await repo.run("worktree", "unlock", "--end-of-options", str(path))
