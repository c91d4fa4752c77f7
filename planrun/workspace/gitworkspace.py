"""Git worktrees for the scheduler: one per task, landed on the project's target branch.

- The target branch (``project.target_branch``, e.g. ``planrun-<plan>``) is created from the
  project's base branch the first time a run needs it, and never moved backwards.
- A task's worktree is ``<state_dir>/worktrees/<sanitised key>`` on ``planrun/<plan>/<key>``,
  cut from the current tip of the target (so it sees the landed work of its needs: each
  need's landed commit is checked to be an ancestor, not assumed) or of its own
  ``base_branch``. A branch or worktree left by an earlier attempt is brought onto that tip
  (:mod:`planrun.workspace.refresh`); a tmux task being re-attached keeps its worktree as is.
- The plan claims its name in each repository (:mod:`planrun.workspace.namespace`), so two
  plan files never share branches.
- ``setup`` commands run in each new worktree with ``setup_timeout``; a failure is
  startup_failed.
- At success what the agent left uncommitted is committed, the branch lands with the
  project's ``integrate`` strategy (one landing at a time per repository) in a commit whose
  trailer names plan, task, fingerprint and attempt (:mod:`planrun.workspace.trailers`),
  unless that work already landed since the worktree was cut; the clean worktree is
  removed; branches reachable from the target are deleted, the rest kept. A nested
  repository left in the worktree, or a gitlink to a commit the repository lacks, fails
  the task instead (GitlinkError, naming the path).
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
from dataclasses import replace
from pathlib import Path

import trio

from planrun.core.decision import work_needs
from planrun.core.names import branch_name, sanitize_component
from planrun.core.outcomes import Status
from planrun.core.redact import Redactor
from planrun.errors import GitError, SessionStartError
from planrun.plan.resolved import CompiledPlan, ProjectSpec, Task
from planrun.state.faults import after_landing
from planrun.state.store import iso
from planrun.workspace.base import Bases, Landed, Prepared, Setup, no_setup
from planrun.workspace.commits import commit_all, commit_leftovers
from planrun.workspace.git import GitRepo, is_repo
from planrun.workspace.landing import ensure_target, land_and_remove
from planrun.workspace.listing import Worktree
from planrun.workspace.names import worktree_dir
from planrun.workspace.namespace import claim
from planrun.workspace.refresh import KEPT_PREFIX, refresh
from planrun.workspace.targets import find_mark
from planrun.workspace.trailers import Mark
from planrun.workspace.worktrees import add_worktree


class GitWorkspace:
    def __init__(
        self,
        plan: CompiledPlan,
        state_dir: Path,
        *,
        setup: Setup | None = None,
        run_id: str = "",
        secrets: tuple[str, ...] = (),
        bases: Bases | None = None,
    ) -> None:
        self.plan = plan
        self.state_dir = state_dir
        self.setup = setup or no_setup
        self.run_id = run_id
        self.secrets = secrets
        self.bases = bases = bases or Bases()
        #: need key → its landed commit: up to date at the start, then what this run lands
        self.landed: dict[str, str] = dict(bases.landed)
        self._repos: dict[str, GitRepo | None] = {}
        self._targets: dict[str, trio.Event] = {}

    async def _repo(self, project: ProjectSpec) -> GitRepo | None:
        if project.name not in self._repos:
            usable = project.worktrees and await is_repo(Path(project.path))
            self._repos[project.name] = GitRepo(Path(project.path)) if usable else None
        return self._repos[project.name]

    async def prepare(self, task: Task, attempt: int) -> Prepared:
        with self._git_output_logged(task):
            return await self._prepare(task, attempt)

    async def _prepare(self, task: Task, attempt: int) -> Prepared:
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
        base = await self._base(repo, task, start)
        wt, kept = await self._worktree_on(repo, task, attempt, base)
        if project.setup and wt.fresh:  # a reused worktree keeps what setup made in it
            await self.setup(task, project, wt.path, wt.branch)
        mark = Mark(
            self.plan.name,
            task.key,
            self.bases.fingerprints.get(task.key, ""),
            f"{self.run_id}#{attempt}",
        )
        return Prepared(
            cwd=wt.path,
            branch=wt.branch,
            worktree=wt.path,
            base_commit=wt.base_commit,
            mark=mark,
            kept=kept,
        )

    async def _worktree_on(
        self, repo: GitRepo, task: Task, attempt: int, base: str
    ) -> tuple[Worktree, str | None]:
        """The task's worktree, made or resumed, and brought onto ``base`` (a tmux task being
        re-attached to keeps its own); the branch that keeps set-aside work, if any."""
        wt = await add_worktree(
            repo,
            worktree_dir(self.state_dir, task.key),
            branch_name(self.plan.name, task.key),
            base,
            reason=f"planrun {self.plan.name} {task.key}",
            quarantine_dir=self.state_dir / "quarantine",
        )
        if wt.created or task.key in self.bases.reattach:
            return wt, None  # a branch cut just now from base, or a live tmux task's own
        done = await refresh(
            repo,
            wt,
            base,
            start_over=task.key in self.bases.fresh,
            kept_name=self._kept_name(task, attempt),
            message=f"planrun {self.plan.name}: {task.key}: work left by an earlier attempt",
        )
        return done.worktree, done.kept

    async def reviewed(self, task: Task, prepared: Prepared) -> Prepared:
        """Where the reviewed work of ``task`` is, to land it: its worktree on its branch,
        made again if it was removed. SessionStartError when the branch itself is gone."""
        project = self.plan.projects[task.project] if task.project else None
        repo = await self._repo(project) if project else None
        if project is None or repo is None:
            return prepared
        branch = branch_name(self.plan.name, task.key)
        if await repo.rev_parse(f"refs/heads/{branch}") is None:
            raise SessionStartError(
                (),
                f"the reviewed work of {task.key} is gone: branch {branch} no longer exists "
                f"in {project.path}; `planrun apply --force {task.key}` runs it again",
            )
        wt = await add_worktree(
            repo,
            worktree_dir(self.state_dir, task.key),
            branch,
            branch,
            reason=f"planrun {self.plan.name} {task.key}",
            quarantine_dir=self.state_dir / "quarantine",
        )
        fork = await repo.run(
            "merge-base", "--end-of-options", project.target_branch, branch, check=False
        )
        return replace(
            prepared,
            cwd=wt.path,
            branch=branch,
            worktree=wt.path,
            base_commit=fork.stdout.strip() or None,
        )

    def _kept_name(self, task: Task, attempt: int) -> str:
        plan, key = sanitize_component(self.plan.name), sanitize_component(task.key)
        return f"{KEPT_PREFIX}/{plan}/{key}/{self.run_id or 'run'}-a{attempt}"

    async def _base(self, repo: GitRepo, task: Task, start: str) -> str:
        """The commit an attempt starts from: ``start``'s tip now, which must contain the
        landed commit of every need of the same project landing there (checked)."""
        base = await repo.rev_parse(f"refs/heads/{start}") or await repo.rev_parse(start)
        if base is None:
            raise GitError(("git", "rev-parse", start), 1, f"fatal: {start!r} is not a commit\n")
        project = self.plan.projects[task.project] if task.project else None
        if project is None or start != project.target_branch:
            return base
        needed = {
            need: self.landed[need]
            for need in work_needs(self.plan, task.key)
            if need in self.landed and self.plan.tasks[need].project == task.project
        }
        if needed:
            missing = await _not_contained(repo, base, needed)
            if missing:
                raise SessionStartError(
                    (),
                    f"{start} ({base[:12]}) lacks the landed work of "
                    + ", ".join(f"{k} ({c[:12]})" for k, c in missing.items())
                    + ": the branch was reset or rewritten while planrun ran; "
                    "apply again to run those needs again",
                )
        return base

    async def _ensure_target(self, repo: GitRepo, project: ProjectSpec) -> None:
        """Create the target once per run, even when many tasks start together."""
        event = self._targets.get(project.name)
        if event is not None:
            await event.wait()
            return
        event = self._targets[project.name] = trio.Event()
        try:
            await repo.check_ref(project.target_branch)
            await claim(repo, self.plan.name, str(self.plan.path))
            base = project.base_branch or await repo.current_branch() or "HEAD"
            await ensure_target(repo, project.target_branch, base)
        except BaseException:
            del self._targets[project.name]
            event.set()
            raise
        event.set()

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
        mark = prepared.mark
        if mark is not None and prepared.base_commit is not None:
            found = await find_mark(repo, project.target_branch, prepared.base_commit, mark)
            if found is not None:  # this very work landed meanwhile: never twice
                self.landed[task.key] = found
                return Landed(found, None)
        # one hold of the repository lock: land, then remove the worktree (and the branch
        # if it landed whole)
        result, _ = await land_and_remove(
            repo, wt, project.target_branch, project.integrate, message, mark=mark
        )
        if result.commit:
            self.landed[task.key] = result.commit
            after_landing(task.key)  # the test seam (planrun.state.faults)
        return Landed(result.commit, result.diffstat or None)

    async def commit(
        self, task: Task, prepared: Prepared, message: str | None = None
    ) -> str | None:
        """Commit what the task left (for review, or partial work a budget cut short):
        the work is kept on its branch."""
        if prepared.worktree is None:
            return None
        message = message or f"planrun {self.plan.name}: {task.key}: {task.title}"
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


async def _not_contained(repo: GitRepo, base: str, commits: Mapping[str, str]) -> dict[str, str]:
    """The entries of ``commits`` (key → commit) that are not ancestors of ``base``.

    One ``rev-list`` answers for all of them: nothing reachable from them but not from
    ``base`` means every one is contained; only then is no further call needed.
    """
    wanted = sorted(set(commits.values()))
    out = await repo.run(
        "rev-list", "--count", "--end-of-options", *wanted, f"^{base}", "--", check=False
    )
    if out.returncode == 0 and out.stdout.strip() == "0":
        return {}
    missing = {}
    for key, commit in commits.items():
        if not await repo.is_ancestor(commit, base):
            missing[key] = commit
    return missing
