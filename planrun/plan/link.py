"""How the tasks of a plan connect: parents and their children, needs, and the task graph.

A parent groups its children and waits for them; a task's needs are its own and all its
ancestors'; a ``same_as`` fan-out's items each need the item with the same id. Both parent
links and needs are checked for cycles, each cycle reported once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from planrun.core.frozen import frozen
from planrun.core.graph import Edge, TaskGraph, cycle_diagnostic
from planrun.errors import Diagnostic, Location, PlanError, suggest
from planrun.plan.expand import expanded_key
from planrun.plan.model import TaskSpec
from planrun.plan.problems import Problems
from planrun.plan.resolved import Task


@frozen
class Parents:
    """Each parent's children, as written, and whether some ``parent:`` names no task."""

    children: dict[str, list[str]]
    unknown: bool


def check_parents(problems: Problems, tasks: dict[str, TaskSpec]) -> Parents:
    """Unknown parents, parent cycles (each reported once) and parents with work."""
    children: dict[str, list[str]] = {}
    unknown = False
    for key, spec in tasks.items():
        if spec.parent is None:
            continue
        if spec.parent not in tasks:
            unknown = True
            problems.fail(
                ("tasks", key, "parent"),
                f"unknown parent {spec.parent!r}{suggest(spec.parent, tasks)}",
            )
            continue
        children.setdefault(spec.parent, []).append(key)
    for cycle in _parent_cycles(tasks):
        chain = " → ".join([*cycle, cycle[0]])
        problems.fail(
            ("tasks", cycle[0], "parent"),
            f"parent cycle {chain}: a task cannot be its own ancestor; remove one parent",
        )
    for parent in children:
        spec = tasks[parent]
        for name in ("run", "prompt", "prompt_file", "for_each"):
            if getattr(spec, name) is not None:
                problems.fail(
                    ("tasks", parent, name),
                    f"{parent} is the parent of {', '.join(sorted(children[parent]))}; "
                    f"a parent groups its children and cannot have {name}",
                )
    return Parents(children, unknown)


def link(
    problems: Problems,
    specs: dict[str, TaskSpec],
    tasks: dict[str, Task],
    children: dict[str, list[str]],
) -> list[Edge]:
    """The edges between the built ``tasks``; needs that name no task are reported."""
    return _Linker(problems, specs, tasks, children).link()


def task_graph(problems: Problems, tasks: dict[str, Task], edges: list[Edge]) -> TaskGraph | None:
    """The task graph, or None with every dependency cycle reported.

    Cycles are looked for even when other problems were found, so that one pass reports
    them all: edges to tasks that could not be built (their problems are reported
    already) are left out, which can hide a cycle through such a task but never
    invents one.
    """
    edges = [e for e in edges if e.before in tasks and e.after in tasks]
    try:
        return TaskGraph.build(tasks, edges)
    except PlanError:
        problems.extend(_dependency_cycles(tasks, edges))
        return None


@dataclass
class _Linker:
    """One linking pass: the edges found so far and where each owner's needs are written."""

    problems: Problems
    specs: dict[str, TaskSpec]
    tasks: dict[str, Task]
    children: dict[str, list[str]]
    edges: list[Edge] = field(default_factory=list)
    needs_at: dict[str, list[Location]] = field(default_factory=dict)

    def link(self) -> list[Edge]:
        """Every edge: group members, needs (an ancestor's apply to its descendants), same_as."""
        linked: set[str] = set()
        for key, task in self.tasks.items():
            if task.kind == "group":
                for child in task.children:
                    self.edges.append(Edge(child, key, self._membership(key, child), "parent"))
                continue
            spec = self.specs[task.spec_key]
            owners = self._owners(task)
            linked.update(owners)
            for owner in owners:
                self._link(task, owner, self.specs[owner].dependencies)
            if spec.for_each is not None and spec.for_each.same_as is not None and task.item_id:
                other = expanded_key(spec.for_each.same_as, task.item_id)
                where = self.problems.source.locate(("tasks", task.spec_key, "for_each", "same_as"))
                self.edges.append(Edge(other, key, where, "needs"))
        self._check_unlinked_needs(linked)
        return self.edges

    def _check_unlinked_needs(self, linked: set[str]) -> None:
        """The needs of tasks no work task was built from (they have problems of their own).

        Which items they have is not known, but a need naming no task, or the task itself, is
        wrong all the same, and is reported in the same pass as those problems.
        """
        for owner, spec in self.specs.items():
            if owner in linked:
                continue
            field_name = self._needs_field(owner)
            for i, need in enumerate(spec.dependencies):
                if need.split("[", 1)[0] not in self.specs:
                    self.problems.fail(
                        ("tasks", owner, field_name, i), self._unknown_need(owner, need)
                    )
                elif need == owner and owner not in self.children:
                    self.problems.fail(("tasks", owner, field_name, i), f"{owner} needs itself")

    def _needs_field(self, owner: str) -> str:
        return "needs" if self.specs[owner].needs is not None else "blocked_by"

    def _unknown_need(self, owner: str, need: str) -> str:
        return f"{owner} needs unknown task {need!r}{suggest(need, self.specs)}"

    def _membership(self, group: str, child: str) -> Location:
        """Where the plan puts ``child`` in ``group``: its ``parent:`` or the ``for_each``."""
        if child in self.specs:
            return self.problems.source.locate(("tasks", child, "parent"))
        return self.problems.source.locate(("tasks", group, "for_each"))

    def _owners(self, task: Task) -> list[str]:
        """The written task and its ancestors, whose needs all apply to ``task``."""
        owners = [task.spec_key]
        parent = self.specs[task.spec_key].parent
        while parent is not None:
            owners.append(parent)
            parent = self.specs[parent].parent
        return owners

    def _link(self, task: Task, owner: str, needs: list[str]) -> None:
        field_name = self._needs_field(owner)
        for i, need in enumerate(needs):
            path = ("tasks", owner, field_name, i)
            if need not in self.tasks:
                written = need.split("[", 1)[0]
                if written in self.specs and written not in self.tasks:
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
            self.edges.append(
                Edge(self._same_repository(task, need), task.key, where, "needs", via)
            )

    def _same_repository(self, task: Task, need: str) -> str:
        """A repository's task needs the same repository's task of a fan-out over the same
        project's repositories (``CHECK[acme/api]`` needs ``CODEMOD[acme/api]``)."""
        if not task.item_id or task.project is None or "[" not in task.project:
            return need
        own = expanded_key(need, task.item_id)
        found = self.tasks.get(own)
        return own if found is not None and found.project == task.project else need

    def _need_locations(self, owner: str, field_name: str) -> list[Location]:
        """Where each of ``owner``'s needs is written (shared by all of a fan-out's items)."""
        found = self.needs_at.get(owner)
        if found is None:
            found = self.needs_at[owner] = self.problems.source.locate_each(
                ("tasks", owner, field_name)
            )
        return found


def _dependency_cycles(tasks: dict[str, Task], edges: list[Edge]) -> list[Diagnostic]:
    """One cycle of each group of tasks that wait for one another, as a diagnostic.

    :meth:`TaskGraph.build` names only the first cycle it finds; this names one in each
    strongly connected component, so that separate cycles are all reported at once.
    networkx is imported here, as in :mod:`planrun.core.graph`: only a plan with a cycle needs it.
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
