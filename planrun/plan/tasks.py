"""The written tasks → :class:`~planrun.plan.resolved.Task` objects, depth first from the roots.

A parent becomes a group that waits for its children; a ``for_each`` task, a group of one
work task per item (``KEY[id]``); any other task, one work task with its inherited fields,
its provider and its prompt. Each work task's secrets and templates are checked as it is
built (:mod:`planrun.plan.checks`); the files it names are read through
:class:`~planrun.plan.reads.PlanFiles`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from planrun.errors import suggest
from planrun.plan import templates
from planrun.plan.checks import TemplateChecks, check_secrets
from planrun.plan.expand import ItemError, expanded_key
from planrun.plan.item import Item, repo_context
from planrun.plan.link import Parents
from planrun.plan.model import ForEach, PlanFile, TaskSpec
from planrun.plan.problems import Problems
from planrun.plan.reads import PlanFiles, ReadError
from planrun.plan.repositories import repo_item
from planrun.plan.resolve import Inheritance, Resolved, task_kwargs
from planrun.plan.resolved import CommandSpec, ProviderSpec, Task
from planrun.plan.scalars import is_lossy_float
from planrun.plan.trackers import tracker_of


class TaskBuilder:
    """One pass over a plan's tasks; what it cannot build, it reports and leaves out."""

    def __init__(
        self,
        problems: Problems,
        plan: PlanFile,
        resolved: Resolved,
        parents: Parents,
        checks: TemplateChecks,
        files: PlanFiles,
    ) -> None:
        self._problems = problems
        self._source = problems.source
        self._plan = plan
        self._resolved = resolved
        self._parents = parents
        self._checks = checks
        self._files = files
        self._inheritance = Inheritance(plan)
        self._items: dict[str, list[Item]] = {}
        self._prompts: dict[str, str | None] = {}
        self._tasks: dict[str, Task] = {}

    def build(self) -> dict[str, Task]:
        """The tasks, each parent before its children, in the plan's order."""
        for key, spec in self._plan.tasks.items():
            if spec.parent is None:
                self._expand(key, parent=None)
        return self._tasks

    def _expand(self, key: str, parent: str | None) -> None:
        spec = self._plan.tasks[key]
        fields = self._inheritance.fields(spec)
        if key in self._parents.children:
            self._add_group(key, spec, fields, parent)
            for child in sorted(self._parents.children[key]):
                self._expand(child, parent=key)
        elif fields.get("project") in self._plan_repositories():
            self._fan_out_repositories(key, spec, fields, parent)
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
        fan_out: bool = False,
    ) -> None:
        fan_out = fan_out or bool(children)
        children = children or tuple(sorted(self._parents.children.get(key, ())))
        # a fan-out's title and description speak of an item: its group shows the key
        title = key if fan_out else self._text(key, spec, "title", {}) or key
        self._tasks[key] = Task(
            key=key,
            kind="group",
            title=title,
            description="" if fan_out else self._text(key, spec, "description", {}),
            location=self._source.locate(("tasks", key), key=True),
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
        self._add_group(key, spec, fields, parent, children=keys, fan_out=True)
        for item in items:
            self._add_work(expanded_key(key, item.id), key, spec, fields, key, item=item)

    def _plan_repositories(self) -> set[str]:
        return {k for k, p in self._plan.projects.items() if p.repositories is not None}

    def _fan_out_repositories(
        self, key: str, spec: TaskSpec, fields: dict[str, Any], parent: str | None
    ) -> None:
        """One task ``KEY[owner/name]`` per repository of the task's project, in its
        repository's own project."""
        project = fields["project"]
        if spec.for_each is not None:
            self._problems.fail(
                ("tasks", key, "for_each"),
                f"task {key} is in project {project}, whose tasks fan out per repository "
                "already; for_each is not for them",
            )
            return
        repos = self._resolved.repositories.get(project)
        if repos is None:
            return  # the repositories could not be listed: reported already
        keys = tuple(expanded_key(key, repo.name) for repo in repos)
        self._add_group(key, spec, fields, parent, children=keys, fan_out=True)
        for index, repo in enumerate(repos):
            own = {**fields, "project": repo.key}
            self._add_work(
                expanded_key(key, repo.name), key, spec, own, key, repo_item(repo, index)
            )

    def _items_of(self, key: str, chain: tuple[str, ...] = ()) -> list[Item] | None:
        if key in self._items:
            return self._items[key]
        spec = self._plan.tasks[key]
        for_each = spec.for_each
        assert for_each is not None
        where = ("tasks", key, "for_each")
        if for_each.same_as is not None:
            other = self._plan.tasks.get(for_each.same_as)
            if other is None or other.for_each is None:
                hint = suggest(
                    for_each.same_as, [k for k, t in self._plan.tasks.items() if t.for_each]
                )
                self._problems.fail(
                    (*where, "same_as"),
                    f"same_as must name a task with for_each; "
                    f"{for_each.same_as!r} is not one{hint}",
                )
                return None
            if for_each.same_as in (*chain, key):
                self._problems.fail(
                    (*where, "same_as"), f"same_as cycle through {for_each.same_as}"
                )
                return None
            items = self._items_of(for_each.same_as, (*chain, key))
        elif for_each.tracker is not None:
            items = self._tracker_items(key, for_each.tracker, for_each)
            if items is None:
                return None
        elif for_each.agent is not None:
            items = self._agent_items(where, for_each.agent)
            if items is None:
                return None
        else:
            if not self._items_are_text(where, for_each.items, for_each.matrix):
                return None
            root, root_name = self._glob_root(spec)
            try:
                items = self._files.items(for_each, root, root_name)
            except ItemError as exc:
                index = () if exc.index is None else (exc.index,)
                self._problems.fail((*where, exc.field, *index), exc.message)
                return None
        self._items[key] = items or []
        return items

    def _agent_items(self, where: tuple[str, ...], name: str) -> list[Item] | None:
        """The mentions of agent ``name`` (serve gives them; none otherwise); None when
        the agent is unknown (reported) or invalid (reported where it is written)."""
        agents = self._plan.agents
        if name in agents:
            return self._files.agent_items(name)
        if self._problems.source._node(("agents", name)) is None:
            hint = suggest(name, agents) if agents else " (declare it under agents:)"
            self._problems.fail((*where, "agent"), f"unknown agent {name!r}{hint}")
        return None

    def _tracker_items(self, key: str, name: str, for_each: ForEach) -> list[Item] | None:
        """A tracker fan-out's items (read by :class:`~planrun.plan.reads.PlanFiles`);
        None when the tracker is unknown or cannot be read (reported)."""
        tracker = tracker_of(self._problems, self._plan, key, name)
        if tracker is None:
            return None
        try:
            items = self._files.tracker_items(name, tracker, for_each.select)
        except ItemError as exc:
            at = ("trackers", name, exc.field) if exc.field == "token" else None
            self._problems.fail(at or ("tasks", key, "for_each", "tracker"), exc.message)
            return None
        return items

    def _glob_root(self, spec: TaskSpec) -> tuple[Path, str]:
        """The folder a task's glob runs in, and how messages name it."""
        project = self._inheritance.fields(spec).get("project")
        if project in self._resolved.projects:
            written = self._plan.projects[project].path
            return Path(self._resolved.projects[project].path), f"project {project} ({written})"
        return self._resolved.directory, "the plan's folder"

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
            raw = self._source.raw_text(path)
            if isinstance(value, float) and raw is not None and is_lossy_float(raw):
                self._problems.fail(
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
        provider = self._provider(where, spec, fields)
        if provider is None:
            return
        check_secrets(self._problems, self._plan, spec_key, fields)
        context = {"item": item, **repo_context(item)} if item is not None else {}
        prompt = self._prompt(where, spec)
        if not self._has_work(where, spec_key, spec, provider):
            return
        backend = fields["backend"] or provider.backend or "subprocess"
        task = Task(
            key=key,
            kind="work",
            title=self._text(spec_key, spec, "title", context) or key,
            description=self._text(spec_key, spec, "description", context),
            location=self._source.locate(where, key=True),
            parent=parent,
            needs=tuple(spec.dependencies),
            run=CommandSpec.of(spec.run) if spec.run is not None else None,
            prompt=prompt,
            item=item,
            item_id=item.id if item is not None else None,
            spec_key=spec_key,
            **{**task_kwargs(fields), "backend": backend},
        )
        self._checks.task(where, task, spec, provider)
        self._tasks[key] = task

    def _provider(
        self, where: tuple[str, ...], spec: TaskSpec, fields: dict[str, Any]
    ) -> ProviderSpec | None:
        """The task's provider; None when it or the task's project is unknown."""
        name = fields["provider"]
        provider = self._resolved.providers.get(name)
        if provider is None:
            if name not in self._plan.providers:  # else its own errors are reported already
                self._unknown(where, spec, "provider", name, sorted(self._resolved.providers))
            return None
        project = fields.get("project")
        if project is not None and project not in self._resolved.projects:
            self._unknown(where, spec, "project", project, self._resolved.projects)
            return None
        return provider

    def _unknown(
        self, where: tuple[str, ...], spec: TaskSpec, field: str, name: str, known: Iterable[str]
    ) -> None:
        """An unknown provider or project: where the task sets it, else where the nearest
        parent that sets it does, else in defaults."""
        at = self._set_at(where, spec, field)
        self._problems.fail(at, f"unknown {field} {name!r}{suggest(name, known)}")

    def _set_at(self, where: tuple[str, ...], spec: TaskSpec, field: str) -> tuple[str, ...]:
        seen: set[str] = set()
        current: TaskSpec | None = spec
        while current is not None:
            if field in current.model_fields_set:
                return (*where, field)
            parent = current.parent
            if parent is None or parent in seen:
                break
            seen.add(parent)
            current, where = self._plan.tasks.get(parent), ("tasks", parent)
        return ("defaults", field)

    def _prompt(self, where: tuple[str, ...], spec: TaskSpec) -> str | None:
        """The written prompt, or the prompt_file's text (each file read, and reported, once)."""
        name = spec.prompt_file
        if name is None:
            return spec.prompt
        if name not in self._prompts:
            try:
                self._prompts[name] = self._files.prompt(name)
            except ReadError as exc:
                self._problems.fail((*where, "prompt_file"), str(exc))
                self._prompts[name] = None
        return self._prompts[name]

    def _has_work(
        self, where: tuple[str, ...], spec_key: str, spec: TaskSpec, provider: ProviderSpec
    ) -> bool:
        """Whether the task gives its provider what it takes: a command, or a prompt."""
        if provider.is_agent and spec.run is not None:
            self._problems.fail(
                (*where, "run"),
                f"run is for commands, but provider {provider.name!r} takes a prompt; "
                "drop run or set provider: shell",
            )
            return False
        if not provider.is_agent and spec.run is None:
            if not (self._parents.unknown and _looks_like_group(spec)):
                self._problems.fail(where, _nothing_to_do(spec_key, spec), key=True)
            return False
        return True

    def _text(self, key: str, spec: TaskSpec, name: str, context: dict[str, Any]) -> str:
        text: str | None = getattr(spec, name)
        if not text:
            return ""
        if not templates.is_template(text):
            return text
        full = {"task": {"key": key}, "plan": {"name": self._resolved.name}, **context}
        try:
            return templates.refuse_nul(templates.render(text, full))
        except templates.TemplateProblem as exc:
            self._problems.fail_template(("tasks", key, name), exc)
            return text


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
