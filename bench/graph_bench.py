"""The task graph's algorithms: planrun's adjacency dicts against networkx, side by side.

For N work tasks in layers of 50, each needing two tasks of the layer before, it times
(median of REPS) building the graph and working out what a run needs of it: a topological
order, the work behind each task (longest path, for dispatch order) and the ancestors of
one task (``--only``). planrun's figures come from ``TaskGraph``; networkx's from
``DiGraph``, ``topological_sort``, a longest-path pass over ``topological_sort`` and
``ancestors``. Run: ``python bench/graph_bench.py [N ...]``; see bench/RESULTS.md.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import networkx as nx

from planrun.core.graph import Edge, TaskGraph
from planrun.plan.load import load_plan
from planrun.plan.resolved import Task

REPS = 5


def tasks_and_edges(n: int) -> tuple[dict[str, Task], list[Edge]]:
    """A compiled plan of ``n`` tasks (layers of 50, two needs each): its tasks and edges."""
    lines = ["version: 1", "tasks:"]
    for i in range(n):
        needs = ""
        if i >= 50:
            start = (i // 50 - 1) * 50
            needs = f", needs: [T{start + i % 50}, T{start + (i * 7) % 50}]"
        lines.append(f"  T{i}: {{run: [echo]{needs}}}")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "plan.yaml"
        path.write_text("\n".join(lines) + "\n")
        plan = load_plan(path)
    return dict(plan.tasks), plan.graph.edges()


def timed(work: Callable[[], object]) -> float:
    runs = []
    for _ in range(REPS):
        start = time.perf_counter()
        work()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def ours(tasks: dict[str, Task], edges: list[Edge]) -> None:
    graph = TaskGraph.build(tasks, edges)
    graph.topological()
    graph.work_behind("T0")
    graph.upstream([f"T{len(tasks) - 1}"])


def theirs(tasks: dict[str, Task], edges: list[Edge]) -> None:
    graph = nx.DiGraph()
    graph.add_nodes_from(tasks)
    graph.add_edges_from((e.before, e.after) for e in edges)
    order = list(nx.topological_sort(graph))
    behind: dict[str, int] = {}
    for key in reversed(order):
        later = [behind[s] for s in graph.successors(key)]
        behind[key] = 1 + (max(later) if later else 0)
    nx.ancestors(graph, f"T{len(tasks) - 1}")


def main(sizes: list[int]) -> None:
    print(f"{'tasks':>7} {'planrun ms':>11} {'networkx ms':>12} {'ratio':>6}")
    for n in sizes:
        tasks, edges = tasks_and_edges(n)
        a = timed(lambda t=tasks, e=edges: ours(t, e)) * 1000
        b = timed(lambda t=tasks, e=edges: theirs(t, e)) * 1000
        print(f"{n:>7} {a:>11.1f} {b:>12.1f} {b / a:>6.2f}")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1_000, 10_000, 50_000])
