"""The integration branches, verified rather than assumed (SPEC §4, §5).

Before a run decides anything, :func:`inspect_landings` reads each git project's target
branch once:

- a target of that name that shares no history with the project's base branch was not
  made by planrun: :class:`~planrun.errors.TargetError`, before anything runs;
- each done task's landed commit must still be on the target; when the branch was
  deleted, reset or rewritten, the task is named in ``Landings.gone`` (it runs again);
- a done task whose landed commit is gone but whose landing trailer (same plan, task and
  fingerprint) is on the target was rebased there (a changeset's moved base): it is
  named in ``Landings.moved`` (recorded done with that commit, not run);
- each task not recorded done whose latest attempt's trailer is on the target landed its
  work before planrun died: it is named in ``Landings.found`` (recorded done, not run).

:func:`find_mark` is what a landing asks first: did this task's work (same plan, task and
fingerprint) land since its worktree was cut?
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from planrun.core.decision import Known, Landings
from planrun.core.outcomes import Status
from planrun.errors import TargetError
from planrun.plan.resolved import CompiledPlan, ProjectSpec
from planrun.workspace.git import GitRepo, is_repo
from planrun.workspace.namespace import check
from planrun.workspace.trailers import ATTEMPT, TASK, Mark, read_mark

_RECORD = "\x1e"


async def log_marks(
    repo: GitRepo, *revs: str, greps: Iterable[str] = (), since: str | None = None
) -> list[tuple[str, Mark]]:
    """(commit, mark) of the first-parent commits of ``revs`` that carry a trailer.

    ``greps`` (fixed strings, any of them) narrow what git reads back.
    """
    args = ["log", "--first-parent", f"--format=%H%x00%B{_RECORD}"]
    patterns = list(greps)
    if patterns:
        args += ["-F", *(f"--grep={p}" for p in patterns)]
    if since is not None:
        args.append(f"--since={since}")
    out = await repo.run(*args, "--end-of-options", *revs, "--")
    found: list[tuple[str, Mark]] = []
    for record in out.stdout.split(_RECORD):
        sha, _, message = record.strip("\n").partition("\0")
        mark = read_mark(message) if sha else None
        if mark is not None:
            found.append((sha, mark))
    return found


async def find_mark(repo: GitRepo, target: str, since_commit: str, mark: Mark) -> str | None:
    """The commit that landed ``mark``'s work on ``target`` after ``since_commit``, if any."""
    marks = await log_marks(repo, f"refs/heads/{target}", f"^{since_commit}", greps=[f"{TASK}: "])
    return next((sha for sha, found in marks if found.same_work(mark)), None)


async def inspect_landings(
    plan: CompiledPlan, known: Mapping[str, Known], fingerprints: Mapping[str, str]
) -> Landings:
    """What the plan's target branches say of ``known`` tasks (see the module doc).

    ``fingerprints`` maps each work task to its current fingerprint. Raises TargetError
    for a target branch planrun did not make, NamespaceError when another plan file owns
    this plan's name in a repository.
    """
    gone: dict[str, str] = {}
    found: dict[str, str] = {}
    moved: dict[str, str] = {}
    grouped = _by_project(plan, known)
    for name, project in plan.projects.items():
        repo = await _repo(project)
        if repo is None:
            continue
        await check(repo, plan.name, str(plan.path))
        if project.integrate == "none":
            continue
        tip = await _verified_tip(repo, project)
        tasks = {k: known[k] for k in grouped.get(name, ())}
        lost = await _gone(repo, project.target_branch, tip, tasks)
        again = await _moved(repo, plan.name, tip, {k: tasks[k] for k in lost})
        gone.update({k: why for k, why in lost.items() if k not in again})
        moved.update(again)
        found.update(await _found(repo, plan.name, tip, tasks, fingerprints))
    return Landings(gone=gone, found=found, moved=moved)


def _by_project(plan: CompiledPlan, known: Mapping[str, Known]) -> dict[str, list[str]]:
    """The known tasks of each project whose work lands on a target branch."""
    grouped: dict[str, list[str]] = {}
    for key in known:
        task = plan.tasks.get(key)
        if task is None or task.kind != "work" or task.project is None:
            continue
        if plan.projects[task.project].integrate != "none":
            grouped.setdefault(task.project, []).append(key)
    return grouped


async def _repo(project: ProjectSpec) -> GitRepo | None:
    if not project.worktrees or not await is_repo(Path(project.path)):
        return None
    return GitRepo(Path(project.path))


async def _verified_tip(repo: GitRepo, project: ProjectSpec) -> str | None:
    """The target's tip (None: it does not exist); TargetError if planrun did not make it."""
    await repo.check_ref(project.target_branch)
    tip = await repo.rev_parse(f"refs/heads/{project.target_branch}")
    if tip is None:
        return None
    base = project.base_branch or await repo.current_branch() or "HEAD"
    out = await repo.run("merge-base", "--end-of-options", base, tip, check=False)
    if out.returncode == 1 and not out.stdout.strip():
        raise TargetError(project.name, project.path, project.target_branch, base)
    return tip


async def _gone(
    repo: GitRepo, target: str, tip: str | None, tasks: Mapping[str, Known]
) -> dict[str, str]:
    """Done tasks whose landed commit is no longer on the target → why."""
    landed = {
        k: t.landed_commit for k, t in tasks.items() if t.status is Status.DONE and t.landed_commit
    }
    if not landed:
        return {}
    if tip is None:
        return {k: f"branch {target} no longer exists" for k in landed}
    out = await repo.run("rev-list", "--first-parent", "--end-of-options", tip, "--")
    on_target = set(out.stdout.split())
    gone = {}
    for key, commit in landed.items():
        if commit in on_target or await repo.is_ancestor(commit, tip):
            continue
        gone[key] = f"its commit {commit[:12]} is no longer on {target} (reset or rewritten)"
    return gone


async def _moved(
    repo: GitRepo, plan_name: str, tip: str | None, tasks: Mapping[str, Known]
) -> dict[str, str]:
    """Done tasks whose landed commit is gone but whose landing (same plan, task and
    fingerprint, by its trailer) is on the target: the branch was rebased → that commit."""
    if tip is None or not tasks:
        return {}
    moved: dict[str, str] = {}
    for sha, mark in await log_marks(repo, tip, greps=[f"{TASK}: "]):
        seen = tasks.get(mark.task)
        if seen is not None and mark.plan == plan_name and mark.fingerprint == seen.fingerprint:
            moved.setdefault(mark.task, sha)
    return moved


async def _found(
    repo: GitRepo,
    plan_name: str,
    tip: str | None,
    tasks: Mapping[str, Known],
    fingerprints: Mapping[str, str],
) -> dict[str, str]:
    """Tasks not recorded done whose latest attempt's landing is on the target → commit."""
    # by task and attempt: attempts are numbered per task, so two tasks of one run both
    # have a "<run>#1" (keyed by the attempt alone, one of them was never found)
    wanted = {
        (k, t.last_attempt)
        for k, t in tasks.items()
        if t.status is not Status.DONE and t.last_attempt and t.fingerprint == fingerprints.get(k)
    }
    if tip is None or not wanted:
        return {}
    greps = sorted({f"{ATTEMPT}: {attempt}" for _, attempt in wanted})
    found = {}
    for sha, mark in await log_marks(repo, tip, greps=greps):
        key = mark.task
        if (key, mark.attempt) in wanted and mark.plan == plan_name and key not in found:
            found[key] = sha
    return found
