"""Where tasks run and how finished work lands: the scheduler's workspace port.

:class:`PlainWorkspace` runs tasks in their project's folder (or the plan's) and lands
nothing; :class:`planrun.workspace.gitworkspace.GitWorkspace` gives each task a worktree.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import field
from pathlib import Path
from typing import Protocol

import trio

from planrun.core.frozen import frozen
from planrun.core.outcomes import Status
from planrun.errors import SessionStartError
from planrun.plan.resolved import CompiledPlan, ProjectSpec, Task
from planrun.workspace.trailers import Mark


@frozen
class Prepared:
    """Where an attempt runs."""

    cwd: Path
    branch: str | None = None
    worktree: Path | None = None
    base_commit: str | None = None
    mark: Mark | None = None  # what the landing commit's trailer says
    kept: str | None = None  # a branch holding earlier work this attempt did not continue


class Setup(Protocol):
    """Runs a project's ``setup`` commands in a new worktree (the run layer supplies it, so
    that the workspace need not know how commands run); SessionStartError on failure."""

    async def __call__(self, task: Task, project: ProjectSpec, path: Path, branch: str) -> None: ...


async def no_setup(task: Task, project: ProjectSpec, path: Path, branch: str) -> None:
    """The setup of a workspace that never makes worktrees (approve, clean)."""
    return None


@frozen
class Bases:
    """What a workspace is told to give each attempt a current, verified base.

    ``landed``: the landed commit of each task that stays up to date (dependents' bases
    must contain it; the workspace adds what it lands itself). ``fresh``: tasks whose
    earlier work is not continued (changed, forced, new): their branch is cut again from
    the target, old commits kept under a branch. ``reattach``: tmux tasks whose session
    outlived planrun: their worktree is used exactly as it is.
    """

    landed: Mapping[str, str] = field(default_factory=dict)
    fingerprints: Mapping[str, str] = field(default_factory=dict)
    fresh: Collection[str] = ()
    reattach: Collection[str] = ()


@frozen
class Landed:
    commit: str | None = None
    diffstat: str | None = None


class Workspace(Protocol):
    async def prepare(self, task: Task, attempt: int) -> Prepared: ...

    async def land(self, task: Task, prepared: Prepared) -> Landed: ...

    async def commit(
        self, task: Task, prepared: Prepared, message: str | None = None
    ) -> str | None: ...

    async def keep(self, task: Task, prepared: Prepared, status: Status) -> None: ...


class PlainWorkspace:
    """Tasks run in their project's folder (or the plan's folder); nothing lands."""

    def __init__(self, plan: CompiledPlan) -> None:
        self.plan = plan

    async def prepare(self, task: Task, attempt: int) -> Prepared:
        if task.project is None:
            return Prepared(self.plan.directory)
        path = Path(self.plan.projects[task.project].path)
        if not await trio.Path(path).is_dir():
            raise SessionStartError((), f"project folder {path} does not exist")
        return Prepared(path)

    async def land(self, task: Task, prepared: Prepared) -> Landed:
        return Landed()

    async def commit(
        self, task: Task, prepared: Prepared, message: str | None = None
    ) -> str | None:
        return None

    async def keep(self, task: Task, prepared: Prepared, status: Status) -> None:
        return None
