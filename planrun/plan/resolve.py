"""What the plan's names and each task's inherited fields resolve to.

The plan is named by its ``name:``, else by its file; providers are resolved by
:mod:`planrun.plan.providers`, and projects here, with an absolute folder and a rendered,
checked target branch. A task's fields are the built-in defaults, overlaid by the plan's
``defaults:``, then by each ancestor's from the root down, then by its own (:func:`overlay`):
``env`` and ``hooks`` merge by name, ``retry`` and ``budget`` field by field, ``secrets`` and
``tags`` add up, and the rest replace.
"""

from __future__ import annotations

import re
from dataclasses import field, replace
from pathlib import Path
from typing import Any

from planrun.core.frozen import frozen
from planrun.plan import probes, templates
from planrun.plan.changesets import resolve_changeset
from planrun.plan.checks import check_target
from planrun.plan.model import (
    KEY_PATTERN,
    Backoff,
    Budget,
    PlanFile,
    Retry,
    TaskFields,
    TaskHooks,
    TaskSpec,
)
from planrun.plan.problems import Problems
from planrun.plan.providers import resolve_providers
from planrun.plan.resolved import (
    BudgetSpec,
    CommandSpec,
    ProjectSpec,
    ProviderSpec,
    RepoSpec,
    RetryPolicy,
)

TASK_HOOKS = ("on_task_start", "on_task_retry", "on_task_success", "on_task_failure")


@frozen
class Resolved:
    """What the plan's names stand for: its own name and file, its providers and projects."""

    name: str
    path: Path
    providers: dict[str, ProviderSpec]
    projects: dict[str, ProjectSpec]
    #: a ``repositories:`` project's fields, which each of its repositories' projects take
    templates: dict[str, ProjectSpec] = field(default_factory=dict)
    #: each ``repositories:`` project's repositories (:mod:`planrun.plan.repositories`)
    repositories: dict[str, tuple[RepoSpec, ...]] = field(default_factory=dict)

    @property
    def directory(self) -> Path:
        """The plan's folder, which relative paths start from."""
        return self.path.parent


def resolve(problems: Problems, plan: PlanFile, written: Path) -> Resolved:
    """The plan's name (``name:`` or the file's), providers and projects, checked.

    ``written`` is the plan's path as given: its stem names a plan without ``name:``.
    """
    path = probes.resolved(written)
    name = plan.name or written.stem
    if plan.name is None and not re.match(KEY_PATTERN, name):
        problems.fail((), f"the file name {path.stem!r} cannot name the plan; add `name:`")
    providers = plan_providers(problems, plan)
    projects = plan_projects(problems, plan, name, path.parent)
    templates = {k: p for k, p in projects.items() if plan.projects[k].repositories is not None}
    for key in templates:
        del projects[key]
    return Resolved(name, path, providers, projects, templates)


def plan_providers(problems: Problems, plan: PlanFile) -> dict[str, ProviderSpec]:
    """The presets and the plan's providers, merged; their problems reported."""
    providers, found = resolve_providers(plan.providers)
    for where, message in found:
        problems.fail(where, message)
    return providers


def plan_projects(
    problems: Problems, plan: PlanFile, name: str, directory: Path
) -> dict[str, ProjectSpec]:
    """The plan's projects, with absolute folders and rendered, checked target branches."""
    result = {}
    for key, project in plan.projects.items():
        context = {"plan": {"name": name}, "project": {"name": key}}
        try:
            target = templates.render(project.target_branch, context)
        except templates.TemplateProblem as exc:
            problems.fail_template(("projects", key, "target_branch"), exc)
            target = project.target_branch
        else:
            check_target(problems, plan, name, key, target)
        path = directory
        if project.path is not None:  # else each repository's clone (planrun.plan.repositories)
            path = probes.resolved(directory / project.path)
            problem = probes.project_path_problem(path)
            if problem is not None:
                problems.fail(("projects", key, "path"), f"projects.{key}.path: {problem}")
        result[key] = ProjectSpec(
            name=key,
            path=str(path),
            base_branch=project.base_branch,
            worktrees=project.worktrees,
            integrate=project.integrate,
            target_branch=target,
            setup=tuple(CommandSpec.of(c) for c in project.setup),
            setup_timeout=project.setup_timeout,
            max_concurrent=project.max_concurrent,
            changeset=resolve_changeset(problems, plan, name, key, target),
        )
    return result


class Inheritance:
    """The fields each written task resolves to, with what each parent passes on memoised."""

    def __init__(self, plan: PlanFile) -> None:
        self._plan = plan
        self._bases: dict[str | None, dict[str, Any]] = {}

    def fields(self, spec: TaskSpec) -> dict[str, Any]:
        """``spec``'s fields over those it inherits."""
        return overlay(self._base(spec.parent), spec)

    def _base(self, parent: str | None) -> dict[str, Any]:
        """Resolved inheritable fields for children of ``parent`` (memoised)."""
        if parent in self._bases:
            return self._bases[parent]
        if parent is None:
            base = overlay(builtin_fields(), self._plan.defaults)
        else:
            spec = self._plan.tasks[parent]
            base = overlay(self._base(spec.parent), spec)
        self._bases[parent] = base
        return base


_INHERITED = tuple(TaskFields.model_fields)


def builtin_fields() -> dict[str, Any]:
    return {
        "project": None,
        "provider": "shell",
        "backend": None,
        "priority": 0,
        "base_branch": None,
        "run_when": "success",
        "review": False,
        "timeout": 3600.0,
        "idle_timeout": None,
        "input_timeout": 600.0,
        "retry": RetryPolicy(),
        "env": {},
        "secrets": (),
        "hooks": {},
        "tags": (),
        "max_turns": 3,
        "verify": None,
        "budget": None,
        "autonomous": True,
    }


def overlay(base: dict[str, Any], layer: TaskFields) -> dict[str, Any]:
    """``base`` with the fields ``layer`` sets; mappings merge, scalars replace."""
    names = layer.model_fields_set & set(_INHERITED)
    if not names:
        return base
    result = dict(base)
    for name in names:
        value = getattr(layer, name)
        if value is None:
            continue
        if name == "retry":
            result[name] = _merge_retry(result[name], value)
        elif name == "budget":
            result[name] = _merge_budget(result[name], value)
        elif name == "env":
            result[name] = {**result[name], **value}
        elif name == "hooks":
            result[name] = _merge_hooks(result[name], value)
        elif name in ("secrets", "tags"):
            result[name] = tuple(dict.fromkeys((*result[name], *value)))
        elif name == "verify":
            result[name] = CommandSpec.of(value)
        else:
            result[name] = value
    return result


def _merge_retry(policy: RetryPolicy, retry: Retry) -> RetryPolicy:
    changes: dict[str, Any] = {}
    if retry.attempts is not None:
        changes["attempts"] = retry.attempts
    if retry.on is not None:
        changes["on"] = frozenset(retry.on)
    if retry.backoff is not None:
        changes.update(_backoff_changes(retry.backoff))
    return replace(policy, **changes) if changes else policy


def _backoff_changes(backoff: Backoff) -> dict[str, Any]:
    return {k: v for k, v in backoff.model_dump().items() if v is not None}


def _merge_budget(current: BudgetSpec | None, budget: Budget) -> BudgetSpec:
    base = current or BudgetSpec()
    return replace(base, **{k: v for k, v in budget.model_dump().items() if v is not None})


def _merge_hooks(current: dict[str, tuple[CommandSpec, ...]], hooks: TaskHooks) -> dict[str, Any]:
    merged = dict(current)
    for name in TASK_HOOKS:
        commands = getattr(hooks, name)
        if commands is not None:
            merged[name] = tuple(CommandSpec.of(c) for c in commands)
    return merged


def task_kwargs(fields: dict[str, Any]) -> dict[str, Any]:
    kwargs = dict(fields)
    kwargs["env"] = tuple(sorted(fields["env"].items()))
    kwargs["hooks"] = tuple(sorted(fields["hooks"].items()))
    kwargs["backend"] = fields["backend"] or "subprocess"
    return kwargs
