"""A git workspace whose projects meet on a shared remote (a run shared by several
machines, SPEC §5): each machine works in its own clone, and the remote's target branch
is the one truth.

- Before a task's worktree is cut, the project's target branch is fetched from the remote
  (``+refs/heads/<target>``): the worktree starts from what every machine landed, and the
  commit each need landed on another machine is checked to be in it.
- A landing is serialised across machines by ``fence.landing`` (an advisory lock of the
  shared store, held from the fetch to the push, which also checks that this machine still
  holds the task's lease). Inside it: fetch the target, land locally as
  :class:`~planrun.workspace.gitworkspace.GitWorkspace` does (which first looks for the
  task's trailer on the target: a task never lands twice, even from a machine that came
  back from a pause), then ``git push --atomic --force-with-lease`` the new tip, refused
  if the remote's target moved since the fetch.

Everything else is the wrapped GitWorkspace's.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from planrun.core.outcomes import Status
from planrun.plan.resolved import ProjectSpec, Task
from planrun.workspace.base import Landed, Prepared
from planrun.workspace.git import GitRepo
from planrun.workspace.gitworkspace import GitWorkspace

DEFAULT_REMOTE = "origin"


class Fence(Protocol):
    """What a shared run gives the workspace: the landing's critical section, and the
    commits other machines landed (task key → commit)."""

    landed_elsewhere: Mapping[str, str]

    def landing(self, key: str, lock_name: str) -> AbstractAsyncContextManager[None]:
        """Hold the cross-machine lock ``lock_name``; on entry, and before it is left,
        the task's lease is checked (a lost lease cancels the task's attempt)."""
        ...


class RemoteWorkspace:
    """:class:`GitWorkspace` over a shared remote (see the module doc)."""

    def __init__(self, inner: GitWorkspace, fence: Fence, remote: str = DEFAULT_REMOTE) -> None:
        self.inner = inner
        self.fence = fence
        self.remote = remote

    async def _project_repo(self, task: Task) -> tuple[ProjectSpec, GitRepo] | None:
        if task.project is None:
            return None
        project = self.inner.plan.projects[task.project]
        repo = await self.inner._repo(project)
        if repo is None or project.integrate == "none":
            return None
        return project, repo

    async def prepare(self, task: Task, attempt: int) -> Prepared:
        found = await self._project_repo(task)
        if found is not None:
            project, repo = found
            async with repo.lock():
                await self._fetch(repo, project.target_branch)
        # needs landed by other machines must be on the fetched target, as this machine's
        # own landings are (GitWorkspace checks it before cutting the worktree)
        for key, commit in self.fence.landed_elsewhere.items():
            self.inner.landed.setdefault(key, commit)
        return await self.inner.prepare(task, attempt)

    async def land(self, task: Task, prepared: Prepared) -> Landed:
        found = await self._project_repo(task)
        if found is None or prepared.worktree is None:
            return await self.inner.land(task, prepared)
        project, repo = found
        target = project.target_branch
        url = (await repo.run("remote", "get-url", self.remote)).stdout.strip()
        async with self.fence.landing(task.key, f"{url} {target}"):
            async with repo.lock():
                old = await self._fetch(repo, target)
            landed = await self.inner.land(task, prepared)
            if landed.commit is not None and landed.commit != old:
                await self._push(repo, target, old, landed.commit)
        return landed

    async def _fetch(self, repo: GitRepo, target: str) -> str | None:
        """The remote's tip of ``target`` (None: it has none yet), copied onto the local
        branch of that name."""
        out = await repo.run("ls-remote", "--heads", self.remote, f"refs/heads/{target}")
        line = out.stdout.strip().splitlines()
        if not line:
            return None
        await repo.run(
            "fetch",
            "--no-tags",
            "--quiet",
            self.remote,
            f"+refs/heads/{target}:refs/heads/{target}",
        )
        return line[0].split()[0]

    async def _push(self, repo: GitRepo, target: str, old: str | None, new: str) -> None:
        lease = f"--force-with-lease=refs/heads/{target}:{old or ''}"
        await repo.run(
            "push", "--porcelain", "--atomic", lease, self.remote, f"{new}:refs/heads/{target}"
        )

    async def commit(self, task: Task, prepared: Prepared) -> str | None:
        return await self.inner.commit(task, prepared)

    async def keep(self, task: Task, prepared: Prepared, status: Status) -> None:
        await self.inner.keep(task, prepared, status)
