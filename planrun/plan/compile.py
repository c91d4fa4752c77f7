"""A validated :class:`PlanFile` → a :class:`CompiledPlan`: resolved tasks and their graph.

Every problem found is collected, with its location, and raised together as one PlanError.
The only I/O is reading what the plan points at next to it (glob, ``lines``, ``prompt_file``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from planrun.errors import Location, PlanError
from planrun.graph import TaskGraph
from planrun.plan import templates
from planrun.plan.checks import TemplateChecks, check_secrets, check_state_dir
from planrun.plan.diagnose import suggest
from planrun.plan.expand import Item, ItemError, expanded_key
from planrun.plan.link import check_parents, link, task_graph
from planrun.plan.model import (
    KEY_PATTERN,
    PlanFile,
    Provider,
    Settings,
    TaskSpec,
)
from planrun.plan.problems import Problems
from planrun.plan.reads import DiskFiles, PlanFiles, ReadError
from planrun.plan.resolve import Inheritance, plan_projects, plan_providers, task_kwargs
from planrun.plan.resolved import (
    CommandSpec,
    ProjectSpec,
    ProviderSpec,
    Task,
)
from planrun.plan.source import Source, is_lossy_float
from planrun.workspace.names import state_folder

Locate = Callable[..., Location]
RUN_HOOKS = (
    "on_run_start",
    "on_task_start",
    "on_task_retry",
    "on_task_success",
    "on_task_failure",
    "on_run_end",
)


@dataclass(frozen=True)
class CompiledPlan:
    """Everything ``apply`` needs, resolved and checked."""

    name: str
    path: Path
    directory: Path
    sha256: str
    settings: Settings
    providers: dict[str, ProviderSpec]
    projects: dict[str, ProjectSpec]
    hooks: dict[str, tuple[CommandSpec, ...]]
    tasks: dict[str, Task]
    graph: TaskGraph
    secrets: tuple[str, ...] = ()

    @cached_property
    def work(self) -> tuple[str, ...]:
        """The keys of the work tasks (not groups), in dispatch order."""
        return tuple(k for k in self.graph.topological() if self.tasks[k].kind == "work")

    def plan_context(self) -> dict[str, Any]:
        return {"name": self.name, "path": str(self.path), "dir": str(self.directory)}

    def project_context(self, name: str | None) -> dict[str, Any]:
        if name is None:
            return {"name": None, "path": str(self.directory)}
        project = self.projects[name]
        return {
            "name": project.name,
            "path": project.path,
            "base_branch": project.base_branch,
            "target_branch": project.target_branch,
        }


def compile_plan(source: Source, plan: PlanFile, path: Path) -> CompiledPlan:
    """Resolve, expand and link a validated plan; PlanError with every problem found.

    ``path`` anchors relative paths (globs, ``lines``, ``prompt_file``, project folders).
    """
    compiler = _Compiler(source, plan, path)
    compiled = compiler.compile()
    if compiler.problems:
        raise PlanError(compiler.problems.found)
    assert compiled is not None
    return compiled


class _Compiler:
    """One compilation: collects diagnostics instead of stopping at the first problem."""

    def __init__(self, source: Source, plan: PlanFile, path: Path) -> None:
        self.source = source
        self.plan = plan
        self.path = path.resolve()
        self.directory = self.path.parent
        self.problems = Problems(source)
        self.name = plan.name or path.stem
        self.inheritance = Inheritance(plan)
        self._items: dict[str, list[Item]] = {}
        self._prompts: dict[str, str | None] = {}
        state = self.directory / state_folder(self.name, plan.settings.state_dir)
        self.files: PlanFiles = DiskFiles(self.directory, state)
        self.tasks: dict[str, Task] = {}

    # --- the whole plan -------------------------------------------------------------------

    def compile(self) -> CompiledPlan | None:
        if self.plan.name is None and not re.match(KEY_PATTERN, self.name):
            self.problems.fail(
                (), f"the file name {self.path.stem!r} cannot name the plan; add `name:`"
            )
        self.providers = plan_providers(self.problems, self.plan)
        self.projects = plan_projects(self.problems, self.plan, self.name, self.directory)
        check_state_dir(self.problems, self.plan.settings, self.name, self.directory)
        self.template_checks = TemplateChecks(self.problems, self.name, self.path)
        secrets = tuple(self.plan.settings.secrets)
        self.parents = check_parents(self.problems, self.plan.tasks)
        for key, spec in self.plan.tasks.items():
            if spec.parent is None:
                self._expand(key, parent=None)
        hooks = {
            name: tuple(CommandSpec.of(c) for c in getattr(self.plan.hooks, name) or ())
            for name in RUN_HOOKS
        }
        self.template_checks.hooks(hooks)
        edges = link(self.problems, self.plan.tasks, self.tasks, self.parents.children)
        graph = task_graph(self.problems, self.tasks, edges)
        if graph is None or self.problems:
            return None
        return CompiledPlan(
            name=self.name,
            path=self.path,
            directory=self.directory,
            sha256=hashlib.sha256(self.source.text.encode()).hexdigest(),
            settings=self.plan.settings,
            providers=self.providers,
            projects=self.projects,
            hooks=hooks,
            tasks=self.tasks,
            graph=graph,
            secrets=secrets,
        )

    # --- tasks ----------------------------------------------------------------------------

    def _expand(self, key: str, parent: str | None) -> None:
        spec = self.plan.tasks[key]
        fields = self.inheritance.fields(spec)
        if key in self.parents.children:
            self._add_group(key, spec, fields, parent)
            for child in sorted(self.parents.children[key]):
                self._expand(child, parent=key)
        elif spec.for_each is not None:
            self._fan_out(key, spec, fields, parent)
        else:
            self._add_work(key, key, spec, fields, parent, item=None)

    def _add_group(
        self,
        key: str,
        spec: TaskSpec,
        fields: dict[str, Any],
        parent: str | None,
        children: tuple[str, ...] = (),
    ) -> None:
        fan_out = bool(children)
        children = children or tuple(sorted(self.parents.children.get(key, ())))
        # a fan-out's title and description speak of an item: its group shows the key
        title = key if fan_out else self._text(key, spec, "title", {}) or key
        self.tasks[key] = Task(
            key=key,
            kind="group",
            title=title,
            description="" if fan_out else self._text(key, spec, "description", {}),
            location=self.source.locate(("tasks", key), key=True),
            parent=parent,
            children=children,
            needs=tuple(spec.dependencies),
            spec_key=key,
            **task_kwargs(fields),
        )

    def _fan_out(
        self, key: str, spec: TaskSpec, fields: dict[str, Any], parent: str | None
    ) -> None:
        items = self._items_of(key)
        if items is None:
            return
        keys = tuple(expanded_key(key, item.id) for item in items)
        self._add_group(key, spec, fields, parent, children=keys)
        for item in items:
            self._add_work(expanded_key(key, item.id), key, spec, fields, key, item=item)

    def _items_of(self, key: str, chain: tuple[str, ...] = ()) -> list[Item] | None:
        if key in self._items:
            return self._items[key]
        spec = self.plan.tasks[key]
        for_each = spec.for_each
        assert for_each is not None
        where = ("tasks", key, "for_each")
        if for_each.same_as is not None:
            other = self.plan.tasks.get(for_each.same_as)
            if other is None or other.for_each is None:
                hint = suggest(
                    for_each.same_as, [k for k, t in self.plan.tasks.items() if t.for_each]
                )
                self.problems.fail(
                    (*where, "same_as"),
                    f"same_as must name a task with for_each; "
                    f"{for_each.same_as!r} is not one{hint}",
                )
                return None
            if for_each.same_as in (*chain, key):
                self.problems.fail((*where, "same_as"), f"same_as cycle through {for_each.same_as}")
                return None
            items = self._items_of(for_each.same_as, (*chain, key))
        else:
            if not self._items_are_text(where, for_each.items, for_each.matrix):
                return None
            root, root_name = self._glob_root(spec)
            try:
                items = self.files.items(for_each, root, root_name)
            except ItemError as exc:
                index = () if exc.index is None else (exc.index,)
                self.problems.fail((*where, exc.field, *index), exc.message)
                return None
        self._items[key] = items or []
        return items

    def _glob_root(self, spec: TaskSpec) -> tuple[Path, str]:
        """The folder a task's glob runs in, and how messages name it."""
        project = self.inheritance.fields(spec).get("project")
        if project in self.projects:
            written = self.plan.projects[project].path
            return Path(self.projects[project].path), f"project {project} ({written})"
        return self.directory, "the plan's folder"

    def _items_are_text(self, where: tuple[str, ...], items: Any, matrix: Any) -> bool:
        ok = True
        values: list[tuple[tuple[str | int, ...], Any]] = []
        if items is not None:
            values = [((*where, "items", i), v) for i, v in enumerate(items)]
        if matrix is not None:
            values = [
                ((*where, "matrix", axis, i), v)
                for axis, vs in matrix.items()
                for i, v in enumerate(vs)
            ]
        for path, value in values:
            raw = self.source.raw_text(path)
            if isinstance(value, float) and raw is not None and is_lossy_float(raw):
                self.problems.fail(
                    path,
                    f'{raw} is read as the number {value!r}; quote it ("{raw}") to keep the text',
                )
                ok = False
        return ok

    def _add_work(
        self,
        key: str,
        spec_key: str,
        spec: TaskSpec,
        fields: dict[str, Any],
        parent: str | None,
        item: Item | None,
    ) -> None:
        where: tuple[str, ...] = ("tasks", spec_key)
        if spec.run is not None and "provider" not in spec.model_fields_set:
            fields = {**fields, "provider": "shell"}
        provider = self.providers.get(fields["provider"])
        if provider is None and fields["provider"] in self.plan.providers:
            return  # a declared provider with errors of its own, reported already
        if provider is None:
            known = sorted(self.providers)
            at = (
                (*where, "provider")
                if "provider" in spec.model_fields_set
                else ("defaults", "provider")
            )
            self.problems.fail(
                at, f"unknown provider {fields['provider']!r}{suggest(fields['provider'], known)}"
            )
            return
        if fields.get("project") is not None and fields["project"] not in self.projects:
            at = (
                (*where, "project")
                if "project" in spec.model_fields_set
                else ("defaults", "project")
            )
            self.problems.fail(
                at,
                f"unknown project {fields['project']!r}{suggest(fields['project'], self.projects)}",
            )
            return
        check_secrets(self.problems, self.plan, spec_key, fields)
        context = {"item": item} if item is not None else {}
        prompt = spec.prompt
        if spec.prompt_file is not None:
            if spec.prompt_file not in self._prompts:
                self._prompts[spec.prompt_file] = self._read_prompt(where, spec.prompt_file)
            prompt = self._prompts[spec.prompt_file]
        if provider.is_agent and spec.run is not None:
            self.problems.fail(
                (*where, "run"),
                f"run is for commands, but provider {provider.name!r} takes a prompt; "
                "drop run or set provider: shell",
            )
            return
        if not provider.is_agent and spec.run is None:
            if not (self.parents.unknown and _looks_like_group(spec)):
                self.problems.fail(where, _nothing_to_do(spec_key, spec), key=True)
            return
        backend = fields["backend"] or provider.backend or "subprocess"
        task = Task(
            key=key,
            kind="work",
            title=self._text(spec_key, spec, "title", context) or key,
            description=self._text(spec_key, spec, "description", context),
            location=self.source.locate(where, key=True),
            parent=parent,
            needs=tuple(spec.dependencies),
            run=CommandSpec.of(spec.run) if spec.run is not None else None,
            prompt=prompt,
            item=item,
            item_id=item.id if item is not None else None,
            spec_key=spec_key,
            **{**task_kwargs(fields), "backend": backend},
        )
        self.template_checks.task(where, task, spec, provider)
        self.tasks[key] = task

    def _text(self, key: str, spec: TaskSpec, name: str, context: dict[str, Any]) -> str:
        text: str | None = getattr(spec, name)
        if not text:
            return ""
        if not templates.is_template(text):
            return text
        full = {"task": {"key": key}, "plan": {"name": self.name}, **context}
        try:
            return templates.refuse_nul(templates.render(text, full))
        except templates.TemplateProblem as exc:
            self.problems.fail_template(("tasks", key, name), exc)
            return text

    def _read_prompt(self, where: tuple[str, ...], name: str) -> str | None:
        try:
            return self.files.prompt(name)
        except ReadError as exc:
            self.problems.fail((*where, "prompt_file"), str(exc))
            return None


def _nothing_to_do(key: str, spec: TaskSpec) -> str:
    parent = "" if spec.for_each is not None else f", or make it a parent (parent: {key})"
    return (
        f"task {key} has nothing to do: give it run (a command) or a provider that takes "
        f"a prompt{parent}"
    )


def _looks_like_group(spec: TaskSpec) -> bool:
    """A task that sets nothing to run: meant as a parent, perhaps of a misspelt child."""
    return (
        spec.run is None
        and spec.prompt is None
        and spec.prompt_file is None
        and (spec.provider is None and spec.for_each is None)
    )


__all__ = ["CompiledPlan", "Provider", "compile_plan"]
