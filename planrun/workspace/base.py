"""Where tasks run and how finished work lands: the scheduler's workspace port.

:class:`PlainWorkspace` runs tasks in their project's folder (or the plan's) and lands
nothing; :class:`planrun.workspace.gitworkspace.GitWorkspace` gives each task a worktree.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import trio

from planrun.errors import SessionStartError
from planrun.outcomes import Status
from planrun.plan.compile import CompiledPlan
from planrun.plan.resolved import Task


@dataclass(frozen=True)
class Prepared:
    """Where an attempt runs."""

    cwd: Path
    branch: str | None = None
    worktree: Path | None = None
    base_commit: str | None = None


@dataclass(frozen=True)
class Landed:
    commit: str | None = None
    diffstat: str | None = None


class Workspace(Protocol):
    async def prepare(self, task: Task, attempt: int) -> Prepared: ...

    async def land(self, task: Task, prepared: Prepared) -> Landed: ...

    async def commit(self, task: Task, prepared: Prepared) -> str | None: ...

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

    async def commit(self, task: Task, prepared: Prepared) -> str | None:
        return None

    async def keep(self, task: Task, prepared: Prepared, status: Status) -> None:
        return None
