"""A task's own ``changeset:`` resolved and checked (docs/batch-changes.md, "A task's own
changeset").

A task with a changeset proposes its own verified work alone: the changes of its landing
commits, as one commit on the base. What the schema cannot see, reported at load:

- the task is a plain one (no ``for_each``), in a project that gives it a worktree and
  lands it as one commit (``integrate: merge`` or ``squash``: each landing is one
  first-parent step of the integration branch, so its own changes are known);
- its project has no changeset of its own (the task's work would be proposed twice: in
  the project's PR and in its own), and no project has the task's key as its name;
- ``repo`` is set, ``on_base_change`` is not (a task's changeset does not follow a moved
  base: its commit is made on the base as last fetched, at each delivery);
- the branch (default ``planrun/<plan>/<task>``) renders to a name git accepts.
"""

from __future__ import annotations

from planrun.plan.changesetmodel import Changeset
from planrun.plan.changesets import changeset_spec
from planrun.plan.model import PlanFile
from planrun.plan.problems import Problems
from planrun.plan.resolved import ChangesetSpec, ProjectSpec, Task


def task_changesets(
    problems: Problems,
    plan: PlanFile,
    plan_name: str,
    projects: dict[str, ProjectSpec],
    tasks: dict[str, Task],
) -> dict[str, ChangesetSpec]:
    """Each task's own changeset, by task key; problems reported."""
    found: dict[str, ChangesetSpec] = {}
    for key, written in plan.tasks.items():
        changeset = written.changeset
        if changeset is None:
            continue
        where = ("tasks", key, "changeset")
        task = tasks.get(key)
        if written.for_each is not None or task is None or task.kind != "work":
            problems.fail(where, f"task {key}: only a plain task (no for_each) has a changeset")
            continue
        project = projects.get(task.project or "")
        why = _refused(key, project, changeset, projects)
        if why is not None or project is None:
            problems.fail(where, why or f"task {key} has a changeset: it needs a project")
            continue
        branch = f"planrun/{plan_name}/{key}"
        base = task.base_branch or project.base_branch or "main"
        found[key] = changeset_spec(problems, where, plan_name, key, changeset, branch, base)
    return found


def _refused(
    key: str, project: ProjectSpec | None, changeset: Changeset, projects: dict[str, ProjectSpec]
) -> str | None:
    """Why task ``key`` cannot have ``changeset`` (None: it can)."""
    if project is None:
        return None
    said = f"task {key} has a changeset"
    if project.changeset is not None:
        return (
            f"{said}, and its project {project.name} has one too: the task's work would be "
            "proposed twice (remove one of them)"
        )
    if not project.worktrees or project.integrate not in ("merge", "squash"):
        return (
            f"{said}: its project {project.name} must give it a worktree and land it as one "
            "commit (worktrees: true, integrate: merge or squash)"
        )
    if key in projects:
        return f"{said}: a project is named {key} too (rename one of them)"
    if changeset.repo is None:
        return f"{said}: it needs repo (owner/name), the GitHub repository"
    if "on_base_change" in changeset.model_fields_set:
        return f"{said}: on_base_change is for a project's changeset (a task's is not rebased)"
    return None
