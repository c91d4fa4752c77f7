"""Checks of what a plan asks for that its schema cannot see: folders, branches, secrets, templates.

- the state folder is not in git's data nor a system folder (:mod:`planrun.plan.paths`);
- each project's target branch is a name git accepts, outside the task branches;
- every secret a task is granted is declared in ``settings.secrets``;
- every template of a task, of its provider and of the plan's hooks renders against a
  context shaped like a run's, so that a misspelt name fails now rather than mid-run.

Each check reports into :class:`~planrun.plan.problems.Problems` and changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from planrun.core.names import sanitize_component, state_folder
from planrun.plan import probes, templates
from planrun.plan.diagnose import field_name as dotted
from planrun.plan.item import repo_context
from planrun.plan.model import KEY_PATTERN, PlanFile, Settings, TaskSpec
from planrun.plan.problems import Problems
from planrun.plan.refs import branch_problem
from planrun.plan.resolved import CommandSpec, ProviderSpec, Task


def check_state_dir(problems: Problems, settings: Settings, name: str, directory: Path) -> None:
    """The state folder must not be in git's data nor a system folder (planrun.plan.paths)."""
    folder = state_folder(name, settings.state_dir)
    problem = probes.state_dir_problem(probes.resolved(directory / folder))
    if problem is None:
        return
    if "state_dir" in settings.model_fields_set:
        problems.fail(("settings", "state_dir"), f"settings.state_dir: {problem}")
    else:
        problems.fail((), f"settings.state_dir (default {folder}): {problem}")


def check_target(
    problems: Problems, plan: PlanFile, plan_name: str, name: str, target: str
) -> None:
    """The rendered target branch must be a name git accepts, outside the task branches.

    The task branches are ``planrun/<plan>/<key>``; a target at ``planrun/<plan>`` (or
    above, or among them) could not coexist with them: a git branch cannot also be a
    folder of branches. The default target is looked at only where it is used (a project
    with worktrees) and when the plan's name is valid (else that is the error).
    """
    project = plan.projects[name]
    where: tuple[str, ...] = ("projects", name, "target_branch")
    written = "target_branch" in project.model_fields_set
    if not written and (not project.worktrees or not re.match(KEY_PATTERN, plan_name)):
        return
    plan_part = sanitize_component(plan_name)
    problem = branch_problem(target)
    if problem is not None:
        what = "is not a valid git branch name"
    elif target in ("planrun", f"planrun/{plan_part}") or target.startswith(
        f"planrun/{plan_part}/"
    ):
        what = f"clashes with the task branches planrun/{plan_part}/<task>"
        problem = (
            "a git branch cannot also hold branches under its name, nor share a task's; "
            f"choose a name outside planrun/{plan_part}/, such as planrun-{plan_part}"
        )
    else:
        return
    if not written:
        at: tuple[str, ...] = ("name",) if plan.name is not None else ("projects", name)
        problems.fail(
            at,
            f"{dotted(where)}: the default {project.target_branch} gives {target!r}, "
            f"which {what}: {problem}; set target_branch or rename the plan",
            key=plan.name is None,
        )
    elif target != project.target_branch:
        problems.fail(where, f"{dotted(where)}: renders to {target!r}, which {what}: {problem}")
    else:
        problems.fail(where, f"{dotted(where)}: {target!r} {what}: {problem}")


def check_secrets(problems: Problems, plan: PlanFile, key: str, fields: dict[str, Any]) -> None:
    """Every secret a task is granted must be declared in settings.secrets."""
    declared = plan.settings.secrets
    for name in fields.get("secrets") or ():
        if name not in declared:
            problems.fail(
                _secret_origin(plan, key, name),
                f"secret {name!r} is not declared in settings.secrets",
            )


def _secret_origin(plan: PlanFile, key: str, name: str) -> tuple[str | int, ...]:
    """Where a granted secret is written: the task, an ancestor, or defaults."""
    owner: str | None = key
    while owner is not None:
        spec = plan.tasks[owner]
        if spec.secrets and name in spec.secrets:
            return ("tasks", owner, "secrets", spec.secrets.index(name))
        owner = spec.parent
    written = plan.defaults.secrets or []
    return ("defaults", "secrets", written.index(name)) if name in written else ("defaults",)


class TemplateChecks:
    """The templates of one plan, rendered against sample contexts to find undefined names."""

    def __init__(self, problems: Problems, name: str, path: Path) -> None:
        self._problems = problems
        self._name = name
        self._path = path
        self._static_context: dict[str, Any] | None = None

    def _plan_context(self) -> dict[str, Any]:
        return {"name": self._name, "path": str(self._path), "dir": str(self._path.parent)}

    def _sample_context(self, task: Task) -> dict[str, Any]:
        """A context shaped like the one a run renders with, to find undefined names."""
        static = self._static_context
        if static is None:
            static = self._static_context = {
                "plan": self._plan_context(),
                "run": {"id": "run-id", "started_at": "2026-01-01T00:00:00Z"},
                "attempt": 1,
                "turn": 1,
                "prompt": "",
                "worktree": "/worktree",
                "verify": {"output": "", "exit_code": 1},
            }
        return {
            **static,
            "task": task.template_context(),
            "item": task.item,
            **repo_context(task.item),
            "project": {
                "name": task.project,
                "path": "/project",
                "base_branch": "main",
                "target_branch": "planrun-target",
            },
            "branch": f"planrun/{self._name}/{task.key}",
        }

    def task(
        self, where: tuple[str, ...], task: Task, spec: TaskSpec, provider: ProviderSpec
    ) -> None:
        """The templates a run of ``task`` renders: its commands, prompt, hooks, provider."""
        context: dict[str, Any] | None = None

        def check(path: tuple[str | int, ...], text: str, shell: bool = False) -> None:
            nonlocal context
            if not templates.is_template(text):
                return
            context = context or self._sample_context(task)
            try:
                templates.check(text, context, shell=shell)
            except templates.TemplateProblem as exc:
                self._problems.fail_template(path, exc)

        for path, command in [((*where, "run"), task.run), ((*where, "verify"), task.verify)]:
            if command is not None:
                _check_command(check, path, command)
        if task.prompt is not None:
            written = "prompt" in spec.model_fields_set
            check((*where, "prompt") if written else (*where, "prompt_file"), task.prompt)
        elif provider.is_agent:
            check(
                ("providers", provider.name, "autonomous_prompt_template"),
                provider.autonomous_prompt_template,
            )
        for moment, commands in task.hooks:
            for i, command in enumerate(commands):
                _check_command(check, (*where, "hooks", moment, i), command)
        for i, part in enumerate(provider.command):
            check(("providers", provider.name, "command", i), part)
        if provider.is_agent:  # used only by follow-up turns: a typo would surface late
            for i, part in enumerate(provider.prompt_command or ()):
                check(("providers", provider.name, "prompt_command", i), part)

    def hooks(self, hooks: dict[str, tuple[CommandSpec, ...]]) -> None:
        """The plan's own hooks, against a context shaped like the one they run with."""
        context = {
            "plan": self._plan_context(),
            "run": {"id": "run-id", "started_at": "2026-01-01T00:00:00Z", "status": "done"},
            "task": {
                "key": "KEY",
                "title": "",
                "description": "",
                "priority": 0,
                "tags": [],
                "project": None,
                "provider": "shell",
                "needs": [],
                "parent": None,
                "item_id": None,
                "status": "done",
                "reason": "",
            },
            "attempt": 1,
        }

        def check(path: tuple[str | int, ...], text: str, shell: bool = False) -> None:
            try:
                templates.check(text, context, shell=shell)
            except templates.TemplateProblem as exc:
                self._problems.fail_template(path, exc)

        for moment, commands in hooks.items():
            for i, command in enumerate(commands):
                _check_command(check, ("hooks", moment, i), command)


def _check_command(
    check: Callable[..., None], path: tuple[str | int, ...], command: CommandSpec
) -> None:
    if command.shell is not None:
        check(path, command.shell, True)
    else:
        for i, part in enumerate(command.argv or ()):
            check((*path, i), part)
