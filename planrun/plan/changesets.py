"""A project's ``changeset:`` resolved and checked (docs/batch-changes.md).

What the schema cannot see:

- the token is a declared secret (``settings.secrets``), never granted to a session nor
  passed on by ``settings.env.inherit``: GitHub credentials are planrun's alone;
- the project gives each task a worktree and lands it (``worktrees: true``, ``integrate``
  other than ``none``): what is proposed is the branch its tasks landed on;
- the branch renders to a name git accepts; the title and body render against a context
  shaped like the one used when the changeset is recorded;
- ``published`` as a mapping has a pattern that matches the repository (else: false).
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Literal

from planrun.plan import templates
from planrun.plan.changesetmodel import Changeset, Fork
from planrun.plan.credentials import declared, keep_from_sessions
from planrun.plan.model import PlanFile, Project
from planrun.plan.problems import Problems
from planrun.plan.refs import branch_problem
from planrun.plan.resolved import ChangesetSpec, PublishPolicy

SAMPLE_TASK = {"key": "KEY", "title": "a title", "status": "done", "reason": ""}


def resolve_changeset(
    problems: Problems, plan: PlanFile, plan_name: str, key: str, target: str
) -> ChangesetSpec | None:
    """Project ``key``'s changeset with its branch rendered (None without one); its
    problems reported."""
    project = plan.projects[key]
    changeset = project.changeset
    if changeset is None:
        return None
    where = ("projects", key, "changeset")
    _check_project(problems, plan, key, project)
    if changeset.repo is None and project.repositories is None:
        problems.fail(
            where, f"project {key}: changeset needs repo (owner/name), the GitHub repository"
        )
    spec = changeset_spec(
        problems, where, plan_name, key, changeset, target, project.base_branch or "main"
    )
    if changeset.commit_message is not None and spec.branch == target:
        problems.fail(
            (*where, "commit_message"),
            f"project {key}: a changeset with a commit_message proposes one squashed commit, "
            f"on a branch of its own: set changeset.branch (not {target}, where the tasks land)",
        )
    return spec


def changeset_spec(
    problems: Problems,
    where: tuple[str, ...],
    plan_name: str,
    name: str,
    changeset: Changeset,
    branch: str,
    base: str,
) -> ChangesetSpec:
    """``changeset`` of ``name`` (a project, or a task) resolved: its branch (``branch``
    unless it names one) rendered, its templates checked; problems reported at ``where``."""
    fork = changeset.fork if isinstance(changeset.fork, Fork) else Fork(when=changeset.fork)
    spec = ChangesetSpec(
        repo=changeset.repo or "OWNER/NAME",  # a project with repositories: each one's
        token=changeset.token,
        remote=changeset.remote,
        branch=_branch(problems, where, plan_name, name, changeset, branch),
        base=changeset.base or base,
        title=changeset.title,
        body=changeset.body,
        labels=tuple(changeset.labels),
        reviewers=tuple(changeset.reviewers),
        published=published_for(changeset),
        url=changeset.url,
        on_base_change=changeset.on_base_change,
        commit_message=changeset.commit_message,
        fork=fork.when,
        fork_organization=fork.organization,
    )
    context = spec.context(plan_name, name, [SAMPLE_TASK])
    for field in ("title", "body", "commit_message"):
        text = getattr(changeset, field)
        if text is not None:
            try:
                templates.check(text, context)
            except templates.TemplateProblem as exc:
                problems.fail_template((*where, field), exc)
    return spec


def published_for(changeset: Changeset, repo: str | None = None) -> bool | Literal["draft"]:
    """``published`` for the changeset's repository (or ``repo``): the first pattern that
    matches it, else false (nothing is published that the plan did not choose)."""
    if not isinstance(changeset.published, dict):
        return changeset.published
    for pattern, value in changeset.published.items():
        if fnmatchcase(repo or changeset.repo or "", pattern):
            return value
    return False


def _branch(
    problems: Problems,
    at: tuple[str, ...],
    plan_name: str,
    key: str,
    changeset: Changeset,
    target: str,
) -> str:
    if changeset.branch is None:
        return target
    where = (*at, "branch")
    repo = changeset.repo or "OWNER/NAME"
    context = {"plan": {"name": plan_name}, "project": {"name": key, "repo": repo}}
    try:
        branch = templates.render(changeset.branch, context)
    except templates.TemplateProblem as exc:
        problems.fail_template(where, exc)
        return changeset.branch
    problem = branch_problem(branch)
    if problem is not None:
        problems.fail(
            where, f"changeset branch {branch!r} is not a branch name git accepts: {problem}"
        )
    return branch


def _check_project(problems: Problems, plan: PlanFile, key: str, project: Project) -> None:
    where = ("projects", key)
    if not project.worktrees:
        problems.fail(
            (*where, "worktrees"),
            f"project {key} has a changeset: its tasks "
            "need worktrees (worktrees: true) to land on the branch it proposes",
        )
    if project.integrate == "none":
        problems.fail(
            (*where, "integrate"),
            f"project {key} has a changeset: its tasks must "
            "land (integrate: merge, squash or rebase) on the branch it proposes",
        )


def check_tokens(problems: Problems, plan: PlanFile) -> None:
    """Each changeset's token is a declared secret that no session is given."""
    tokens: dict[str, str] = {}
    owners = [("projects", "project", k, p.changeset) for k, p in plan.projects.items()]
    owners += [("tasks", "task", k, t.changeset) for k, t in plan.tasks.items()]
    for section, what, key, changeset in owners:
        if changeset is None:
            continue
        token = changeset.token
        tokens.setdefault(token, f"{what} {key}")
        where = (section, key, "changeset", "token")
        declared(problems, plan, where, token, f"{what} {key}: changeset token")
    keep_from_sessions(
        problems,
        plan,
        tokens,
        lambda owner: f"the changeset token of {owner}",
        "it is",
    )


def publish_policy(plan: PlanFile) -> PublishPolicy:
    """The plan's ``changesets:`` as plain values."""
    changesets = plan.changesets
    return PublishPolicy(
        changesets.per_hour,
        frozenset(changesets.fail_on),
        tuple(changesets.waves),
        float(changesets.halt_above.rstrip("%")) / 100,
        changesets.close_unmatched,
    )
