"""Git worktrees for the scheduler: one per task, landed on the project's target branch.

- The target branch (``project.target_branch``, e.g. ``planrun-<plan>``) is created from the
  project's base branch the first time a run needs it, and never moved backwards.
- A task's worktree is ``<state_dir>/worktrees/<sanitised key>`` on ``planrun/<plan>/<key>``,
  cut from the target (so it sees the landed work of its needs) or from its own
  ``base_branch``. A retry or a resumed run reuses the worktree and branch as they are.
- ``setup`` commands run in each new worktree with ``setup_timeout``; a failure is
  startup_failed.
- At success what the agent left uncommitted is committed, the branch lands with the
  project's ``integrate`` strategy (one landing at a time per repository), and the clean
  worktree is removed; branches reachable from the target are deleted, the rest kept.
- A failed task keeps its worktree and branch for inspection. Nothing dirty is ever removed.
- When a git command fails, the error's message quotes the lines of git's stderr that matter;
  all of it is appended (secrets redacted) to ``<state_dir>/logs/git/<worktree name>.log``,
  which the message names.

Projects with ``worktrees: false``, or whose folder is not a git repository, run in place.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path

import trio

from planrun.errors import GitError, SessionStartError
from planrun.hooks import run_hooks
from planrun.outcomes import Status
from planrun.plan.compile import CompiledPlan
from planrun.plan.resolved import ProjectSpec, Task
from planrun.redact import Redactor
from planrun.sessions.base import Session
from planrun.store.base import iso
from planrun.workspace.base import Landed, Prepared
from planrun.workspace.git import GitRepo, is_repo
from planrun.workspace.landing import ensure_target, land_and_remove
from planrun.workspace.names import branch_name, worktree_dir
from planrun.workspace.worktrees import Worktree, add_worktree, commit_all, commit_leftovers


class GitWorkspace:
    def __init__(
        self,
        plan: CompiledPlan,
        state_dir: Path,
        *,
        session: Session,
        env: Mapping[str, str],
        secrets: tuple[str, ...] = (),
    ) -> None:
        self.plan = plan
        self.state_dir = state_dir
        self.session = session
        self.env = dict(env)
        self.secrets = secrets
        self._repos: dict[str, GitRepo | None] = {}
        self._targets: dict[str, trio.Event] = {}

    async def _repo(self, project: ProjectSpec) -> GitRepo | None:
        if project.name not in self._repos:
            usable = project.worktrees and await is_repo(Path(project.path))
            self._repos[project.name] = GitRepo(Path(project.path)) if usable else None
        return self._repos[project.name]

    async def prepare(self, task: Task, attempt: int) -> Prepared:
        with self._git_output_logged(task):
            return await self._prepare(task)

    async def _prepare(self, task: Task) -> Prepared:
        if task.project is None:
            return Prepared(self.plan.directory)
        project = self.plan.projects[task.project]
        path = Path(project.path)
        if not await trio.Path(path).is_dir():
            raise SessionStartError((), f"project folder {path} does not exist")
        repo = await self._repo(project)
        if repo is None:
            return Prepared(path)
        await self._ensure_target(repo, project)
        start = task.base_branch or project.target_branch
        await repo.check_ref(start)
        branch = branch_name(self.plan.name, task.key)
        where = worktree_dir(self.state_dir, task.key)
        wt = await add_worktree(
            repo,
            where,
            branch,
            start,
            reason=f"planrun {self.plan.name} {task.key}",
            quarantine_dir=self.state_dir / "quarantine",
        )
        if project.setup and wt.fresh:  # a reused worktree keeps what setup made in it
            await self._setup(task, project, wt)
        return Prepared(cwd=wt.path, branch=wt.branch, worktree=wt.path, base_commit=wt.base_commit)

    async def _ensure_target(self, repo: GitRepo, project: ProjectSpec) -> None:
        """Create the target once per run, even when many tasks start together."""
        event = self._targets.get(project.name)
        if event is not None:
            await event.wait()
            return
        event = self._targets[project.name] = trio.Event()
        try:
            await repo.check_ref(project.target_branch)
            base = project.base_branch or await repo.current_branch() or "HEAD"
            await ensure_target(repo, project.target_branch, base)
        except BaseException:
            del self._targets[project.name]
            event.set()
            raise
        event.set()

    async def _setup(self, task: Task, project: ProjectSpec, wt: Worktree) -> None:
        env = {
            **self.env,
            "PLANRUN_TASK_KEY": task.key,
            "PLANRUN_WORKTREE": str(wt.path),
            "PLANRUN_BRANCH": wt.branch,
        }
        results = await run_hooks(
            "setup",
            project.setup,
            session=self.session,
            context={
                "task": task.template_context(),
                "worktree": str(wt.path),
                "branch": wt.branch,
                "project": {"name": project.name, "path": project.path},
                "plan": self.plan.plan_context(),
                "item": task.item,
            },
            env=env,
            cwd=wt.path,
            log_path=self.state_dir / "logs" / "setup" / f"{wt.path.name}.log",
            timeout=project.setup_timeout,
            secrets=self.secrets,
            kill_grace=self.plan.settings.kill_grace,
            log_limit=self.plan.settings.log_limit,
        )
        failed = [r for r in results if not r.ok]
        if failed:
            raise SessionStartError((), failed[0].reason.replace("setup hook", "setup command"))

    def _worktree(self, prepared: Prepared) -> Worktree:
        assert prepared.worktree is not None
        assert prepared.branch is not None
        return Worktree(prepared.worktree, prepared.branch, prepared.base_commit)

    async def land(self, task: Task, prepared: Prepared) -> Landed:
        with self._git_output_logged(task):
            return await self._land(task, prepared)

    async def _land(self, task: Task, prepared: Prepared) -> Landed:
        if prepared.worktree is None or task.project is None:
            return Landed()
        project = self.plan.projects[task.project]
        repo = await self._repo(project)
        assert repo is not None
        wt = self._worktree(prepared)
        message = f"planrun {self.plan.name}: {task.key}: {task.title}"
        await commit_leftovers(wt, message, repo=repo)
        if project.integrate == "none":
            return Landed(None, None)
        # one hold of the repository lock: land, then remove the worktree (and the branch
        # if it landed whole)
        result, _ = await land_and_remove(
            repo, wt, project.target_branch, project.integrate, message
        )
        return Landed(result.commit, result.diffstat or None)

    async def commit(self, task: Task, prepared: Prepared) -> str | None:
        """Commit what the task left (for review): the work is kept on its branch."""
        if prepared.worktree is None:
            return None
        message = f"planrun {self.plan.name}: {task.key}: {task.title}"
        with self._git_output_logged(task):
            repo = await self._repo(self.plan.projects[task.project]) if task.project else None
            return await commit_all(self._worktree(prepared), message, repo=repo)

    async def keep(self, task: Task, prepared: Prepared, status: Status) -> None:
        """A failed task's worktree and branch stay as they are, for inspection."""
        return None

    def git_log_path(self, task: Task) -> Path:
        """Where the whole stderr of ``task``'s failed git commands is appended."""
        return (
            self.state_dir / "logs" / "git" / f"{worktree_dir(self.state_dir, task.key).name}.log"
        )

    @contextmanager
    def _git_output_logged(self, task: Task) -> Iterator[None]:
        """Append the stderr of a GitError raised inside to the task's git log, and name the
        log in the error's message (unless the log cannot be written: the error stays)."""
        try:
            yield
        except GitError as exc:
            with suppress(OSError):
                exc.output_log = str(self._append_git_log(task, exc))
            raise

    def _append_git_log(self, task: Task, exc: GitError) -> Path:
        path = self.git_log_path(task)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        stderr = exc.stderr if exc.stderr.endswith("\n") or not exc.stderr else exc.stderr + "\n"
        entry = (
            f"--- {iso(time.time())} {task.key}: {' '.join(exc.argv)} exited {exc.returncode}\n"
            f"{stderr}"
        )
        with open(path, "a", encoding="utf-8", errors="surrogateescape") as log:
            log.write(Redactor(self.secrets).redact(entry))
        return path
