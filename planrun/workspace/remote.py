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

import os
import signal
import sys
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from planrun.core.names import branch_name
from planrun.core.outcomes import Status
from planrun.errors import git_stderr_summary
from planrun.plan.resolved import ProjectSpec, Task
from planrun.workspace.base import Landed, Prepared
from planrun.workspace.git import GitRepo
from planrun.workspace.gitworkspace import GitWorkspace
from planrun.workspace.targets import log_marks
from planrun.workspace.trailers import TASK

DEFAULT_REMOTE = "origin"
#: FOR TESTS ONLY: ``PLANRUN_FAULT_AFTER_PUSH=KEY`` dies by SIGKILL right after task KEY's
#: landing was pushed, before the shared store records it done
PUSH_FAULT_ENV = "PLANRUN_FAULT_AFTER_PUSH"


def after_push(key: str) -> None:
    if os.environ.get(PUSH_FAULT_ENV) == key:
        os.kill(os.getpid(), signal.SIGKILL)


class Fence(Protocol):
    """What a shared run gives the workspace: the landing's critical section, and the
    commits other machines landed (task key → commit)."""

    landed_elsewhere: Mapping[str, str]

    async def local_runs(self) -> set[str]:
        """The run ids the shared run's machines write in their landing trailers."""
        ...

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
            already = await self._landed_in_run(repo, target, task)
            if already is not None:  # by a machine whose lease ran out after its check
                return Landed(already, None)
            landed = await self.inner.land(task, prepared)
            if landed.commit is not None and landed.commit != old:
                await self._push(repo, target, old, landed.commit)
                after_push(task.key)
        return landed

    async def find_landed(self, task: Task) -> str | None:
        """The commit on the remote's target that landed this task in this shared run, if
        any: a machine that died between its push and recording the task done left it."""
        found = await self._project_repo(task)
        if found is None:
            return None
        project, repo = found
        async with repo.lock():
            if await self._fetch(repo, project.target_branch) is None:
                return None
        return await self._landed_in_run(repo, project.target_branch, task)

    async def _landed_in_run(self, repo: GitRepo, target: str, task: Task) -> str | None:
        """The landing of ``task`` on the local ``target`` by any machine of the shared run
        (by the run ids in the trailers: a project outside the plan's folder is
        fingerprinted by each machine's own path)."""
        runs = await self.fence.local_runs()
        marks = await log_marks(repo, f"refs/heads/{target}", greps=[f"{TASK}: "])
        for sha, mark in marks:
            ran = mark.attempt.rpartition("#")[0]
            if mark.plan == self.inner.plan.name and mark.task == task.key and ran in runs:
                return sha
        return None

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

    async def commit(
        self, task: Task, prepared: Prepared, message: str | None = None
    ) -> str | None:
        """Commit the work for review, and push its branch to the remote (forced: a retry
        or a fresh start replaces it), so that any machine can approve it."""
        commit = await self.inner.commit(task, prepared, message)
        found = await self._project_repo(task)
        if found is not None and prepared.branch is not None:
            _, repo = found
            branch = f"refs/heads/{prepared.branch}"
            pushed = await repo.run(
                "push", "--quiet", self.remote, f"+{branch}:{branch}", check=False
            )
            if pushed.returncode != 0:  # the work is committed here: approve it here then
                why = git_stderr_summary(pushed.stderr)
                print(
                    f"planrun: {task.key}: its branch could not be pushed for review ({why});"
                    " approve it on this machine",
                    file=sys.stderr,
                )
        return commit

    async def fetch_reviewed(self, task: Task) -> bool:
        """Bring ``task``'s branch pushed for review, and the target, from the remote into
        this clone; False when the remote has no such branch."""
        found = await self._project_repo(task)
        if found is None:
            return False
        project, repo = found
        branch = f"refs/heads/{branch_name(self.inner.plan.name, task.key)}"
        async with repo.lock():
            await self._fetch(repo, project.target_branch)
            out = await repo.run("ls-remote", "--heads", self.remote, branch)
            if not out.stdout.strip():
                return False
            tip = out.stdout.split()[0]
            if await repo.rev_parse(branch) != tip:  # gone since (approved elsewhere): False
                got = await repo.run(
                    "fetch", "--no-tags", "--quiet", self.remote, f"+{branch}:{branch}", check=False
                )
                if got.returncode != 0:
                    return False
        await self.inner._ensure_target(repo, project)  # nothing landed yet anywhere
        return True

    async def drop_reviewed(self, task: Task) -> None:
        """Delete ``task``'s review branch from the remote (its work landed)."""
        found = await self._project_repo(task)
        if found is not None:
            branch = f"refs/heads/{branch_name(self.inner.plan.name, task.key)}"
            await found[1].run("push", "--quiet", self.remote, f":{branch}", check=False)

    async def keep(self, task: Task, prepared: Prepared, status: Status) -> None:
        await self.inner.keep(task, prepared, status)
