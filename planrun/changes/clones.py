"""The clones of a plan's ``repositories:``, made or brought up to date before ``plan``
and ``apply`` decide anything (docs/batch-changes.md); ``validate`` never clones.

Each repository is cloned once into the state folder (``repos/<owner>/<name>``, a partial
clone, ``--filter=blob:none``, where the remote allows it; git falls back to a full
clone where it does not), made in a ``.partial`` folder and renamed when complete, so a
clone cut short (kill -9) is never taken for a clone; later runs fetch it, never clone
again. Then each repository's base branch (the project's ``base_branch``, else the
remote's default) is asked for a ``.batchignore`` at its root: a repository that has one
opts out, and its tasks are left out of the plan (:func:`without`). A repository that
cannot be cloned or fetched is left out as well, with git's reason. ``plan`` and
``apply`` call the same :func:`prepare_repositories`, so ``plan`` shows what ``apply``
does.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from planrun.changes.gitcall import GitFailed, run_git, url_auth_env
from planrun.core.frozen import frozen
from planrun.core.graph import TaskGraph
from planrun.plan.resolved import CompiledPlan, RepoSpec

if TYPE_CHECKING:
    from planrun.plan.reads import Mentions

IGNORE_FILE = ".batchignore"
#: Repositories cloned or fetched at once.
JOBS = 8
PARTIAL = ".partial-"


@frozen
class Left:
    """A repository left out of this run: ``why`` is ``.batchignore`` or git's error."""

    project: str  # svc[owner/name]
    repo: str
    why: str
    failed: bool  # cloning or fetching failed (not an opt-out)


@dataclass
class Prepared:
    """The plan without the repositories left out, and what was done to get there."""

    plan: CompiledPlan
    left: list[Left] = field(default_factory=list)
    cloned: int = 0
    fetched: int = 0
    git_calls: int = 0

    @property
    def failed(self) -> list[Left]:
        return [left for left in self.left if left.failed]


def prepare_repositories(plan: CompiledPlan, environ: Mapping[str, str] | None = None) -> Prepared:
    """Clone or fetch every repository of ``plan``; the plan without those opting out
    (``.batchignore``) or that could not be cloned or fetched."""
    repos = [repo for found in plan.repositories.values() for repo in found]
    if not repos:
        return Prepared(plan)
    environ = os.environ if environ is None else environ
    base = {key: plan.projects[key].base_branch for key in plan.projects}
    with ThreadPoolExecutor(min(JOBS, len(repos))) as pool:
        done = list(pool.map(lambda r: _ready(r, base.get(r.key), environ), repos))
    prepared = Prepared(plan)
    for repo, (action, calls, why, failed) in zip(repos, done, strict=True):
        prepared.git_calls += calls
        prepared.cloned += action == "cloned"
        prepared.fetched += action == "fetched"
        if why is not None:
            prepared.left.append(Left(repo.key, repo.name, why, failed))
    gone = {left.project for left in prepared.left}
    opted_out = {left.project for left in prepared.left if not left.failed}
    prepared.plan = without(plan, gone, opted_out)
    return prepared


def _ready(
    repo: RepoSpec, base: str | None, environ: Mapping[str, str]
) -> tuple[str, int, str | None, bool]:
    """(cloned or fetched, git calls, why it is left out or None, whether git failed)."""
    env = url_auth_env(repo.url, environ.get(repo.token or "", ""))
    path = Path(repo.path)
    action = "fetched" if (path / ".git").is_dir() else "cloned"
    try:
        if action == "cloned":
            _clone(repo.url, path, base, env)
        else:
            run_git(repo.path, "fetch", "--quiet", "--prune", "origin", env=env)
        ref = f"origin/{base}" if base else "origin/HEAD"
        found = run_git(repo.path, "ls-tree", "--name-only", ref, "--", IGNORE_FILE).strip()
    except GitFailed as exc:
        return action, 2, f"could not be {action.removesuffix('ed')}ed: {exc.fatal}", True
    if found:
        return action, 2, f"{IGNORE_FILE} on {base or 'its default branch'}", False
    return action, 2, None, False


def _clone(url: str, path: Path, base: str | None, env: Mapping[str, str]) -> None:
    """Clone into a ``.partial`` folder first: only a whole clone gets its name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}{PARTIAL}*"):
        shutil.rmtree(stale, ignore_errors=True)  # a clone cut short (planrun's own folder)
    partial = path.parent / f".{path.name}{PARTIAL}{os.getpid()}"
    source = url if "://" in url or not Path(url).is_absolute() else f"file://{url}"
    run_git(
        str(path.parent), "clone", "--quiet", "--filter=blob:none", source, str(partial), env=env
    )
    if base is not None and not run_git(str(partial), "branch", "--list", base).strip():
        # the base is not the remote's default branch: tasks start from it all the same
        run_git(str(partial), "branch", "--no-track", base, f"origin/{base}")
    partial.rename(path)


def without(plan: CompiledPlan, projects: set[str], dropped: set[str]) -> CompiledPlan:
    """``plan`` without the tasks of ``projects``, and without the projects ``dropped``
    (those that opted out: a repository that could not be fetched keeps its project, so
    its changeset still matches, :mod:`planrun.changes.reconcile`)."""
    if not projects:
        return plan
    gone = {k for k, t in plan.tasks.items() if t.kind == "work" and t.project in projects}
    tasks = {}
    for key, task in plan.tasks.items():
        if key in gone:
            continue
        if task.kind == "group" and gone.intersection(task.children):
            task = replace(task, children=tuple(c for c in task.children if c not in gone))
        tasks[key] = task
    edges = [e for e in plan.graph.edges() if e.before not in gone and e.after not in gone]
    kept = {k: p for k, p in plan.projects.items() if k not in dropped}
    return replace(plan, tasks=tasks, graph=TaskGraph.build(tasks, edges), projects=kept)


def load_prepared(path: str | Path, mentions: Mentions | None = None) -> CompiledPlan:
    """The plan at ``path`` (with the agents' ``mentions`` as their items) with its
    repositories cloned or fetched, without those left out (``planrun serve``'s every
    poll; ``plan`` and ``apply`` also say which)."""
    from planrun.plan.load import load_plan

    plan = load_plan(path, mentions=mentions)
    return prepare_repositories(plan).plan if plan.repositories else plan
