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

from planrun.errors import Diagnostic, Location, PlanError, text_position
from planrun.graph import Edge, TaskGraph, cycle_diagnostic
from planrun.plan import templates
from planrun.plan.checks import TemplateChecks, check_secrets, check_state_dir
from planrun.plan.diagnose import suggest
from planrun.plan.expand import Item, ItemError, expanded_key, items_for
from planrun.plan.model import (
    KEY_PATTERN,
    PlanFile,
    Provider,
    Settings,
    TaskSpec,
)
from planrun.plan.problems import Problems
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
        self._needs_at: dict[str, list[Location]] = {}
        self.tasks: dict[str, Task] = {}
        self.edges: list[Edge] = []

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
        self._check_parents()
        for key, spec in self.plan.tasks.items():
            if spec.parent is None:
                self._expand(key, parent=None)
        hooks = {
            name: tuple(CommandSpec.of(c) for c in getattr(self.plan.hooks, name) or ())
            for name in RUN_HOOKS
        }
        self.template_checks.hooks(hooks)
        self._link_needs()
        graph = self._graph()
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

    # --- parents ----------------------------------------------------------

    def _check_parents(self) -> None:
        """Unknown parents, parent cycles (each reported once) and parents with work."""
        tasks = self.plan.tasks
        self.children: dict[str, list[str]] = {}
        self._unknown_parents = False
        for key, spec in tasks.items():
            if spec.parent is None:
                continue
            if spec.parent not in tasks:
                self._unknown_parents = True
                self.problems.fail(
                    ("tasks", key, "parent"),
                    f"unknown parent {spec.parent!r}{suggest(spec.parent, tasks)}",
                )
                continue
            self.children.setdefault(spec.parent, []).append(key)
        for cycle in _parent_cycles(tasks):
            chain = " → ".join([*cycle, cycle[0]])
            self.problems.fail(
                ("tasks", cycle[0], "parent"),
                f"parent cycle {chain}: a task cannot be its own ancestor; remove one parent",
            )
        for parent in self.children:
            spec = tasks[parent]
            for name in ("run", "prompt", "prompt_file", "for_each"):
                if getattr(spec, name) is not None:
                    self.problems.fail(
                        ("tasks", parent, name),
                        f"{parent} is the parent of {', '.join(sorted(self.children[parent]))}; "
                        f"a parent groups its children and cannot have {name}",
                    )

    # --- tasks ----------------------------------------------------------------------------

    def _expand(self, key: str, parent: str | None) -> None:
        spec = self.plan.tasks[key]
        fields = self.inheritance.fields(spec)
        if key in self.children:
            self._add_group(key, spec, fields, parent)
            for child in sorted(self.children[key]):
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
        children = children or tuple(sorted(self.children.get(key, ())))
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
                state = self.directory / state_folder(self.name, self.plan.settings.state_dir)
                items = items_for(for_each, root, self.directory, root_name, exclude=state)
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
            if not (self._unknown_parents and _looks_like_group(spec)):
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
        path = (self.directory / name).resolve()
        at = (*where, "prompt_file")
        if path.exists() and not path.is_file() and not path.is_dir():
            self.problems.fail(at, f"prompt_file {name!r} is not a regular file")
            return None
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            self.problems.fail(
                at, f"prompt_file {name!r} does not exist (paths are relative to the plan's folder)"
            )
        except IsADirectoryError:
            self.problems.fail(at, f"prompt_file {name!r} is a folder, not a file")
        except UnicodeDecodeError:
            self.problems.fail(at, f"prompt_file {name!r} is not UTF-8 text")
        except OSError as exc:
            self.problems.fail(at, f"cannot read prompt_file {name!r}: {exc.strerror}")
        else:
            nul = text.find("\0")
            if nul < 0:
                return text
            self.problems.fail(at, _nul_in_file(name, text, nul))
        return None

    # --- needs ----------------------------------------------------------------------------

    def _graph(self) -> TaskGraph | None:
        """The task graph, or None with every dependency cycle reported.

        Cycles are looked for even when other problems were found, so that one pass reports
        them all: edges to tasks that could not be built (their problems are reported
        already) are left out, which can hide a cycle through such a task but never
        invents one.
        """
        tasks = self.tasks
        edges = [e for e in self.edges if e.before in tasks and e.after in tasks]
        try:
            return TaskGraph.build(tasks, edges)
        except PlanError:
            self.problems.extend(_dependency_cycles(tasks, edges))
            return None

    def _link_needs(self) -> None:
        linked: set[str] = set()
        for key, task in self.tasks.items():
            if task.kind == "group":
                for child in task.children:
                    self.edges.append(Edge(child, key, self._membership(key, child), "parent"))
                continue
            spec = self.plan.tasks[task.spec_key]
            owners = self._owners(task)
            linked.update(owners)
            for owner in owners:
                self._link(task, owner, self.plan.tasks[owner].dependencies)
            if spec.for_each is not None and spec.for_each.same_as is not None and task.item_id:
                other = expanded_key(spec.for_each.same_as, task.item_id)
                where = self.source.locate(("tasks", task.spec_key, "for_each", "same_as"))
                self.edges.append(Edge(other, key, where, "needs"))
        self._check_unlinked_needs(linked)

    def _check_unlinked_needs(self, linked: set[str]) -> None:
        """The needs of tasks no work task was built from (they have problems of their own).

        Which items they have is not known, but a need naming no task, or the task itself, is
        wrong all the same, and is reported in the same pass as those problems.
        """
        for owner, spec in self.plan.tasks.items():
            if owner in linked:
                continue
            field_name = self._needs_field(owner)
            for i, need in enumerate(spec.dependencies):
                if need.split("[", 1)[0] not in self.plan.tasks:
                    self.problems.fail(
                        ("tasks", owner, field_name, i), self._unknown_need(owner, need)
                    )
                elif need == owner and owner not in self.children:
                    self.problems.fail(("tasks", owner, field_name, i), f"{owner} needs itself")

    def _needs_field(self, owner: str) -> str:
        return "needs" if self.plan.tasks[owner].needs is not None else "blocked_by"

    def _unknown_need(self, owner: str, need: str) -> str:
        return f"{owner} needs unknown task {need!r}{suggest(need, self.plan.tasks)}"

    def _membership(self, group: str, child: str) -> Location:
        """Where the plan puts ``child`` in ``group``: its ``parent:`` or the ``for_each``."""
        if child in self.plan.tasks:
            return self.source.locate(("tasks", child, "parent"))
        return self.source.locate(("tasks", group, "for_each"))

    def _owners(self, task: Task) -> list[str]:
        """The written task and its ancestors, whose needs all apply to ``task``."""
        owners = [task.spec_key]
        parent = self.plan.tasks[task.spec_key].parent
        while parent is not None:
            owners.append(parent)
            parent = self.plan.tasks[parent].parent
        return owners

    def _link(self, task: Task, owner: str, needs: list[str]) -> None:
        field_name = self._needs_field(owner)
        for i, need in enumerate(needs):
            path = ("tasks", owner, field_name, i)
            if need not in self.tasks:
                written = need.split("[", 1)[0]
                if written in self.plan.tasks and written not in self.tasks:
                    continue  # that task has errors of its own, reported already
                if written in self.tasks:
                    self.problems.fail(
                        path, f"{owner} needs {need!r}, but {written} has no such item"
                    )
                else:
                    self.problems.fail(path, self._unknown_need(owner, need))
                continue
            if need == task.key and owner != task.spec_key:
                self.problems.fail(
                    path,
                    f"{owner} needs {need}, which is one of its own children "
                    "(a parent already waits for its children)",
                )
                continue
            if need in (task.key, task.spec_key) and owner == task.spec_key:
                self.problems.fail(path, f"{owner} needs itself")
                continue
            via = None if owner == task.spec_key else owner
            where = self._need_locations(owner, field_name)[i]
            self.edges.append(Edge(need, task.key, where, "needs", via))

    def _need_locations(self, owner: str, field_name: str) -> list[Location]:
        """Where each of ``owner``'s needs is written (shared by all of a fan-out's items)."""
        found = self._needs_at.get(owner)
        if found is None:
            found = self._needs_at[owner] = self.source.locate_each(("tasks", owner, field_name))
        return found


def _dependency_cycles(tasks: dict[str, Task], edges: list[Edge]) -> list[Diagnostic]:
    """One cycle of each group of tasks that wait for one another, as a diagnostic.

    :meth:`TaskGraph.build` names only the first cycle it finds; this names one in each
    strongly connected component, so that separate cycles are all reported at once.
    networkx is imported here, as in :mod:`planrun.graph`: only a plan with a cycle needs it.
    """
    import networkx as nx

    unique: dict[tuple[str, str], Edge] = {}
    for edge in edges:
        unique.setdefault((edge.before, edge.after), edge)
    graph = nx.DiGraph()
    graph.add_nodes_from(tasks)  # in the plan's order, so that the cycles found are stable
    graph.add_edges_from(unique)
    order = {key: n for n, key in enumerate(tasks)}
    found = []
    for component in nx.strongly_connected_components(graph):
        first = min(component, key=order.__getitem__)
        if len(component) == 1 and not graph.has_edge(first, first):
            continue
        cycle = nx.find_cycle(graph.subgraph(component), source=first)
        found.append(cycle_diagnostic([unique[before, after] for before, after in cycle]))
    return found


def _parent_cycles(tasks: dict[str, TaskSpec]) -> list[list[str]]:
    """Each cycle of ``parent`` links once, starting at its member written first."""
    order = {key: n for n, key in enumerate(tasks)}
    state: dict[str, int] = {}  # 1: on the current chain, 2: finished
    cycles = []
    for start in tasks:
        chain: list[str] = []
        current: str | None = start
        while current is not None and current in tasks and current not in state:
            state[current] = 1
            chain.append(current)
            current = tasks[current].parent
        if current is not None and state.get(current) == 1:
            cycle = chain[chain.index(current) :]
            first = min(range(len(cycle)), key=lambda i: order[cycle[i]])
            cycles.append(cycle[first:] + cycle[:first])
        for key in chain:
            state[key] = 2
    return cycles


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


def _nul_in_file(name: str, text: str, index: int) -> str:
    """Where the first NUL of prompt_file ``name`` is, and why it cannot stay."""
    line, column = text_position(text, index)
    hint = (
        " (the file looks like UTF-16: save it as UTF-8)"
        if text.count("\0") * 4 > len(text)
        else ""
    )
    return (
        f"prompt_file {name!r} contains a NUL character (\\0) on line {line}, column {column}, "
        f"which cannot be passed to a process; remove it{hint}"
    )


__all__ = ["CompiledPlan", "Provider", "compile_plan"]
