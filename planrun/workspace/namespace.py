"""A plan's claim on its name in a repository, so two plan files never share branches.

A plan's branches (``planrun/<name>/<key>``) and its default integration branch
(``planrun-<name>``) are derived from its name. Two plan files with the same name (two
``plan.yaml`` in different folders, say) on one repository would run on each other's
branches, and ``clean`` in one would delete the other's work. So the first plan file
that runs in a repository claims the name there: ``<git common dir>/planrun/plans/<name>``
holds the plan file's path. Another plan file of that name is refused
(:class:`~planrun.errors.NamespaceError`, naming the fix: a ``name:`` of its own) for as
long as the owner exists; a plan file that moved (the recorded one is gone) takes the
claim over.

The claim lives in git's own folder, not in a ref: it is never pushed or cloned.
"""

from __future__ import annotations

from pathlib import Path

import trio

from planrun.atomic import write_atomic
from planrun.core.names import sanitize_component
from planrun.errors import NamespaceError
from planrun.workspace.git import GitRepo


def claim_path(common_dir: Path, plan_name: str) -> Path:
    return common_dir / "planrun" / "plans" / sanitize_component(plan_name)


async def owner(repo: GitRepo, plan_name: str) -> str | None:
    """The plan file that claimed ``plan_name`` in ``repo`` (None: unclaimed)."""
    try:
        return claim_path(await repo.common_dir(), plan_name).read_text(encoding="utf-8").strip()
    except (FileNotFoundError, NotADirectoryError):
        return None


async def check(repo: GitRepo, plan_name: str, plan_path: str) -> bool:
    """Whether ``plan_path`` may use ``plan_name`` in ``repo``; NamespaceError if another
    plan file owns it. Returns True when the claim is already this plan's."""
    claimed = await owner(repo, plan_name)
    if claimed is None:
        return False
    if claimed == plan_path:
        return True
    if await trio.Path(claimed).exists():
        raise NamespaceError(str(repo.path), plan_name, claimed, plan_path)
    return False


async def claim(repo: GitRepo, plan_name: str, plan_path: str) -> None:
    """Claim ``plan_name`` in ``repo`` for ``plan_path`` (see the module doc)."""
    async with repo.lock():
        if await check(repo, plan_name, plan_path):
            return
        path = claim_path(await repo.common_dir(), plan_name)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, f"{plan_path}\n".encode(), mode=0o644)
