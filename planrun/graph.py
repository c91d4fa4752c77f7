"""The task graph: which task waits for which, and in what order ready tasks start.

An edge ``a → b`` means *b waits for a*. Work tasks wait for their needs; a group (a parent
or a fan-out) waits for its children, so that "needs: [EPIC]" waits for all of EPIC.

Ready tasks start by priority (higher first), then by the amount of work behind them (the
longest chain of work tasks that waits on them, so the critical path starts early), then by
key. :meth:`TaskGraph.order_key` gives that order as a sortable tuple.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import networkx as nx

from planrun.errors import Diagnostic, Location, PlanError
from planrun.plan.resolved import Task


@dataclass(frozen=True)
class Edge:
    before: str
    after: str
    location: Location
    why: str  # "needs" or "parent"


class TaskGraph:
    """An acyclic graph of tasks; build it with :meth:`build`."""

    def __init__(self, tasks: Mapping[str, Task], graph: nx.DiGraph) -> None:
        self.tasks = tasks
        self._g = graph
        self._behind = self._work_behind()
        self._order = {
            key: (-tasks[key].priority, -self._behind[key], key) for key in self._g.nodes
        }

    # --- construction -------------------------------------------------------------------

    @classmethod
    def build(cls, tasks: Mapping[str, Task], edges: Iterable[Edge]) -> TaskGraph:
        graph = nx.DiGraph()
        graph.add_nodes_from(tasks)
        for edge in edges:
            graph.add_edge(edge.before, edge.after, location=edge.location, why=edge.why)
        cls._check_acyclic(graph)
        return cls(tasks, graph)

    @staticmethod
    def _check_acyclic(graph: nx.DiGraph) -> None:
        try:
            cycle = nx.find_cycle(graph)
        except nx.NetworkXNoCycle:
            return
        chain = " → ".join([b for _, b in reversed(cycle)] + [cycle[-1][1]])
        steps = []
        for a, b in reversed(cycle):
            data = graph.edges[a, b]
            verb = "needs" if data["why"] == "needs" else "is the parent of"
            steps.append(f"{b} {verb} {a} at {data['location']}")
        first = graph.edges[cycle[0][0], cycle[0][1]]["location"]
        message = f"dependency cycle {chain}: " + "; ".join(steps)
        raise PlanError([Diagnostic(first, message)])

    def _work_behind(self) -> dict[str, int]:
        behind: dict[str, int] = {}
        for key in reversed(list(nx.topological_sort(self._g))):
            own = 1 if self.tasks[key].kind == "work" else 0
            later = [behind[s] for s in self._g.successors(key)]
            behind[key] = own + (max(later) if later else 0)
        return behind

    # --- queries ------------------------------------------------------------------------

    def __len__(self) -> int:
        return int(self._g.number_of_nodes())

    def __contains__(self, key: object) -> bool:
        return key in self._g

    def waits_for(self, key: str) -> list[str]:
        """The tasks ``key`` waits for directly (its needs, or a group's children)."""
        return sorted(self._g.predecessors(key))

    def waited_on_by(self, key: str) -> list[str]:
        return sorted(self._g.successors(key))

    def work_behind(self, key: str) -> int:
        return self._behind[key]

    def order_key(self, key: str) -> tuple[int, int, str]:
        return self._order[key]

    def edge(self, before: str, after: str) -> Edge:
        data = self._g.edges[before, after]
        return Edge(before, after, data["location"], data["why"])

    def topological(self) -> list[str]:
        """Every key, needs before dependents, ties broken by dispatch order."""
        return list(nx.lexicographical_topological_sort(self._g, key=self._order.__getitem__))

    def upstream(self, keys: Iterable[str]) -> set[str]:
        """``keys`` with everything they transitively wait for."""
        found: set[str] = set()
        for key in keys:
            if key not in found:
                found.add(key)
                found |= nx.ancestors(self._g, key)
        return found

    def downstream(self, keys: Iterable[str]) -> set[str]:
        """``keys`` with everything that transitively waits for them."""
        found: set[str] = set()
        for key in keys:
            if key not in found:
                found.add(key)
                found |= nx.descendants(self._g, key)
        return found

    # --- drawings -----------------------------------------------------------------------

    def to_mermaid(self, statuses: Mapping[str, str] | None = None) -> str:
        ids = {key: f"t{n}" for n, key in enumerate(self.topological())}
        lines = ["graph TD"]
        for key, ident in ids.items():
            label = key if statuses is None else f"{key}: {statuses.get(key, '')}"
            text = _mermaid_text(label)
            if self.tasks[key].kind == "group":
                lines.append(f'  {ident}[["{text}"]]')
            else:
                lines.append(f'  {ident}["{text}"]')
        for a, b in sorted(self._g.edges, key=lambda e: (ids[e[0]], ids[e[1]])):
            arrow = "-.->" if self._g.edges[a, b]["why"] == "parent" else "-->"
            lines.append(f"  {ids[a]} {arrow} {ids[b]}")
        return "\n".join(lines) + "\n"

    def to_dot(self) -> str:
        lines = ["digraph plan {", "  rankdir=LR;", "  node [shape=box];"]
        for key in self.topological():
            task = self.tasks[key]
            style = ", style=dashed" if task.kind == "group" else ""
            lines.append(f"  {_dot_id(key)} [label={_dot_id(task.title or key)}{style}];")
        for a, b in sorted(self._g.edges):
            style = " [style=dashed]" if self._g.edges[a, b]["why"] == "parent" else ""
            lines.append(f"  {_dot_id(a)} -> {_dot_id(b)}{style};")
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
        edges = [
            {"from": a, "to": b, "why": self._g.edges[a, b]["why"]}
            for a, b in sorted(self._g.edges)
        ]
        return json.dumps({"nodes": nodes, "edges": edges}, indent=2) + "\n"


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")


def _dot_id(text: str) -> str:
    return json.dumps(text)
