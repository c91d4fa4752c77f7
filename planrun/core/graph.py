"""The task graph: which task waits for which, and in what order ready tasks start.

An edge ``a → b`` means *b waits for a*. Work tasks wait for their needs; a group (a parent
or a fan-out) waits for its children, so that "needs: [EPIC]" waits for all of EPIC.

Ready tasks start by priority (higher first), then by the amount of work behind them (the
longest chain of work tasks that waits on them, so the critical path starts early), then by
key. :meth:`TaskGraph.order_key` gives that order as a sortable tuple.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterable, Mapping

from planrun.core.frozen import frozen
from planrun.errors import Diagnostic, Location, PlanError
from planrun.plan.resolved import Task


@frozen(slots=True)
class Edge:
    """``after`` waits for ``before``; ``location`` is where the plan says so.

    ``why`` is ``"needs"`` (a dependency) or ``"parent"`` (a group waits for its child);
    ``via`` names the ancestor whose ``needs`` a task inherited, if it was not its own.
    """

    before: str
    after: str
    location: Location
    why: str  # "needs" or "parent"
    via: str | None = None


class TaskGraph:
    """An acyclic graph of tasks; build it with :meth:`build`.

    Plain adjacency dicts (networkx only explains a cycle): building and ordering a
    100,000-task graph stays linear.
    """

    def __init__(
        self,
        tasks: Mapping[str, Task],
        edges: dict[tuple[str, str], Edge],
        links: tuple[dict[str, list[str]], dict[str, list[str]]],
        order: list[str],
    ) -> None:
        """Use :meth:`build`: ``links`` are (successors, predecessors) of ``edges`` and
        ``order`` one of their topological orders."""
        self.tasks = tasks
        self._edges = edges
        self._succ, self._pred = links
        self._kahn_order = order
        # the dispatch order is worked out on first use: validating a plan does not need it
        self._behind_cache: dict[str, int] | None = None
        self._order_cache: dict[str, tuple[int, int, str]] | None = None
        self._topological_cache: tuple[str, ...] | None = None

    @property
    def _behind(self) -> dict[str, int]:
        if self._behind_cache is None:
            self._behind_cache = self._work_behind(self._kahn_order)
        return self._behind_cache

    @property
    def _order(self) -> dict[str, tuple[int, int, str]]:
        if self._order_cache is None:
            behind = self._behind
            self._order_cache = {
                key: (-task.priority, -behind[key], key) for key, task in self.tasks.items()
            }
        return self._order_cache

    @property
    def _topological(self) -> tuple[str, ...]:
        if self._topological_cache is None:
            self._topological_cache = self._sorted_topological()
        return self._topological_cache

    # --- construction -------------------------------------------------------------------

    @classmethod
    def build(cls, tasks: Mapping[str, Task], edges: Iterable[Edge]) -> TaskGraph:
        """The graph of ``tasks``; PlanError naming a cycle (with locations) if there is one.

        Every edge must join two keys of ``tasks``. When one pair is linked twice the first
        edge given is kept.
        """
        unique: dict[tuple[str, str], Edge] = {}
        for edge in edges:
            unique.setdefault((edge.before, edge.after), edge)
        succ: dict[str, list[str]] = {key: [] for key in tasks}
        pred: dict[str, list[str]] = {key: [] for key in tasks}
        for before, after in unique:
            succ[before].append(after)
            pred[after].append(before)
        order = _kahn(succ, pred)
        if len(order) < len(tasks):
            raise PlanError([_find_cycle(tasks, unique, set(order))])
        return cls(tasks, unique, (succ, pred), order)

    def _work_behind(self, order: list[str]) -> dict[str, int]:
        """For each task, the most work tasks on one chain that waits for it (itself included)."""
        behind: dict[str, int] = {}
        for key in reversed(order):
            own = 1 if self.tasks[key].kind == "work" else 0
            later = [behind[s] for s in self._succ[key]]
            behind[key] = own + (max(later) if later else 0)
        return behind

    def _sorted_topological(self) -> tuple[str, ...]:
        """Kahn's algorithm taking the first ready task in dispatch order each time."""
        order = self._order
        waiting = {key: len(preds) for key, preds in self._pred.items()}
        heap = [order[k] for k, n in waiting.items() if n == 0]
        heapq.heapify(heap)
        result: list[str] = []
        while heap:
            key = heapq.heappop(heap)[2]
            result.append(key)
            for later in self._succ[key]:
                waiting[later] -= 1
                if waiting[later] == 0:
                    heapq.heappush(heap, order[later])
        return tuple(result)

    # --- queries ------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.tasks)

    def __contains__(self, key: object) -> bool:
        return key in self._succ

    def waits_for(self, key: str) -> list[str]:
        """The tasks ``key`` waits for directly (its needs, or a group's children), sorted."""
        return sorted(self._pred[key])

    def waited_on_by(self, key: str) -> list[str]:
        """The tasks that wait for ``key`` directly, sorted."""
        return sorted(self._succ[key])

    def work_behind(self, key: str) -> int:
        """The longest chain of work tasks that starts at ``key`` (itself included if work)."""
        return self._behind[key]

    def order_key(self, key: str) -> tuple[int, int, str]:
        """Sorts ready tasks: higher priority, then more work behind, then key."""
        return self._order[key]

    def edge(self, before: str, after: str) -> Edge:
        """The edge by which ``after`` waits for ``before`` (KeyError if there is none)."""
        return self._edges[before, after]

    def edges(self) -> list[Edge]:
        """Every edge, sorted by (before, after)."""
        return [self._edges[pair] for pair in sorted(self._edges)]

    def topological(self) -> list[str]:
        """Every key, needs before dependents, ties broken by dispatch order."""
        return list(self._topological)

    def upstream(self, keys: Iterable[str]) -> set[str]:
        """``keys`` with everything they transitively wait for."""
        return _reach(keys, self._pred)

    def downstream(self, keys: Iterable[str]) -> set[str]:
        """``keys`` with everything that transitively waits for them."""
        return _reach(keys, self._succ)

    # --- drawings -----------------------------------------------------------------------

    def to_mermaid(self, statuses: Mapping[str, str] | None = None) -> str:
        """A Mermaid flowchart that renders whatever the plan's size (see
        :mod:`planrun.core.mermaid`), labelled with ``statuses`` when given."""
        from planrun.core.mermaid import Node, draw

        nodes = [
            Node(
                key,
                self.tasks[key].kind == "group",
                tuple((b, self._edges[b, key].why == "parent") for b in self._pred[key]),
            )
            for key in self.topological()
        ]
        return draw(nodes, statuses)

    def to_dot(self) -> str:
        lines = ["digraph plan {", "  rankdir=LR;", "  node [shape=box];"]
        for key in self.topological():
            task = self.tasks[key]
            style = ", style=dashed" if task.kind == "group" else ""
            lines.append(f"  {_dot_id(key)} [label={_dot_id(task.title or key)}{style}];")
        for edge in self.edges():
            style = " [style=dashed]" if edge.why == "parent" else ""
            lines.append(f"  {_dot_id(edge.before)} -> {_dot_id(edge.after)}{style};")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def to_json(self) -> str:
        nodes = [
            {
                "key": key,
                "title": self.tasks[key].title,
                "kind": self.tasks[key].kind,
                "priority": self.tasks[key].priority,
                "work_behind": self._behind[key],
                "waits_for": self.waits_for(key),
            }
            for key in self.topological()
        ]
        edges = [{"from": e.before, "to": e.after, "why": e.why} for e in self.edges()]
        return json.dumps({"nodes": nodes, "edges": edges}, indent=2) + "\n"


def _kahn(succ: dict[str, list[str]], pred: dict[str, list[str]]) -> list[str]:
    """A topological order of the keys; shorter than ``succ`` when there is a cycle."""
    waiting = {key: len(preds) for key, preds in pred.items()}
    order = [key for key, n in waiting.items() if n == 0]
    for key in order:  # grows while iterating
        for later in succ[key]:
            waiting[later] -= 1
            if waiting[later] == 0:
                order.append(later)
    return order


def _find_cycle(
    tasks: Mapping[str, Task], edges: dict[tuple[str, str], Edge], ordered: set[str]
) -> Diagnostic:
    """One cycle among the keys Kahn's algorithm could not order, as a diagnostic.

    networkx is imported here, not at the top: it is the largest import planrun has, and
    only a plan with a cycle needs it.
    """
    import networkx as nx

    graph = nx.DiGraph()
    graph.add_nodes_from(key for key in tasks if key not in ordered)  # in the plan's order
    graph.add_edges_from(pair for pair in edges if pair[0] not in ordered)
    cycle = nx.find_cycle(graph)
    return cycle_diagnostic([edges[pair] for pair in cycle])


def cycle_diagnostic(cycle: list[Edge]) -> Diagnostic:
    """``dependency cycle a → c → b → a: a needs c (line 4), ...`` at the first step's place.

    ``cycle`` lists edges in the waiting direction (``e.before`` → ``e.after``). The message
    reads it in the "needs" direction and starts at the step written first in the file, so
    the same plan always gets the same message.
    """
    steps = list(reversed(cycle))
    first = min(range(len(steps)), key=lambda i: steps[i].location)
    steps = steps[first:] + steps[:first]
    chain = " → ".join([steps[0].after, *(step.before for step in steps)])
    told = ", ".join(_step_text(step) for step in steps)
    message = f"dependency cycle {chain}: {told}; remove one of these dependencies"
    return Diagnostic(steps[0].location, message)


def _step_text(edge: Edge) -> str:
    line = f"line {edge.location.line}"
    if edge.why == "parent":
        return f"{edge.after} waits for its child {edge.before} ({line})"
    if edge.via:
        return f"{edge.after} needs {edge.before} (through its parent {edge.via}, {line})"
    return f"{edge.after} needs {edge.before} ({line})"


def _reach(keys: Iterable[str], links: dict[str, list[str]]) -> set[str]:
    """``keys`` and every key reachable from them through ``links``."""
    found: set[str] = set()
    stack = [key for key in keys]
    while stack:
        key = stack.pop()
        if key not in found:
            found.add(key)
            stack.extend(links[key])
    return found


def _dot_id(text: str) -> str:
    return json.dumps(text)
