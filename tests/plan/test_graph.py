"""The task graph: cycles with their path and locations, parent groups, dispatch order,
upstream/downstream, drawings."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import pytest

from planrun.commands.plan import describe_plan
from planrun.core.graph import Edge, TaskGraph
from planrun.errors import Location, PlanError
from planrun.plan.resolved import Task
from tests.plan.helpers import compile_text, errors_of

ROOT = Path(__file__).resolve().parents[2]


def _task(key: str, priority: int = 0, kind: str = "work") -> Task:
    return Task(
        key=key,
        kind=kind,
        title=key,
        description="",
        location=Location("p", 1, 1),  # type: ignore[arg-type]
        priority=priority,
    )


def _graph(edges: list[tuple[str, str]], priorities: dict[str, int] | None = None) -> TaskGraph:
    keys = sorted({k for edge in edges for k in edge} | set(priorities or {}))
    tasks = {k: _task(k, (priorities or {}).get(k, 0)) for k in keys}
    line = iter(range(1, 10_000))
    return TaskGraph.build(
        tasks, [Edge(a, b, Location("p", next(line), 1), "needs") for a, b in edges]
    )


CYCLE = """
version: 1
tasks:
  a:
    needs: [c]
    run: [echo]
  b:
    needs: [a]
    run: [echo]
  c:
    needs: [b]
    run: [echo]
  d:
    needs: [a]
    run: [echo]
"""


def test_a_cycle_is_reported_with_its_path_and_every_edges_line(tmp_path: Path) -> None:
    assert errors_of(CYCLE, tmp_path) == [
        "5:13: dependency cycle a → c → b → a: a needs c (line 5), c needs b (line 11), "
        "b needs a (line 8); remove one of these dependencies"
    ]


def test_the_cycle_message_starts_at_the_edge_written_first(tmp_path: Path) -> None:
    reordered = CYCLE.replace("  a:\n    needs: [c]\n    run: [echo]\n", "") + (
        "  a:\n    needs: [c]\n    run: [echo]\n"
    )
    assert errors_of(reordered, tmp_path) == [
        "5:13: dependency cycle b → a → c → b: b needs a (line 5), a needs c (line 14), "
        "c needs b (line 8); remove one of these dependencies"
    ]


def test_a_cycle_through_a_parent_names_the_inherited_need(tmp_path: Path) -> None:
    assert errors_of(
        """
        version: 1
        tasks:
          epic: {needs: [later]}
          inside: {parent: epic, run: [echo]}
          later: {needs: [epic], run: [echo]}
        """,
        tmp_path,
    ) == [
        "4:18: dependency cycle inside → later → epic → inside: inside needs later (through "
        "its parent epic, line 4), later needs epic (line 6), epic waits for its child inside "
        "(line 5); remove one of these dependencies"
    ]


def test_unknown_needs_self_dependencies_and_every_cycle_are_reported_together(
    tmp_path: Path,
) -> None:
    assert errors_of(
        """
        version: 1
        tasks:
          a: {needs: [b], run: [echo]}
          b: {needs: [a], run: [echo]}
          u: {needs: [nope], run: [echo]}
          s: {needs: [s, t], run: [echo]}
          t: {needs: [s], run: [echo]}
          x: {needs: [y, x], run: [echo], provider: nope}
        """,
        tmp_path,
    ) == [
        "4:15: dependency cycle a → b → a: a needs b (line 4), b needs a (line 5); "
        "remove one of these dependencies",
        "6:15: u needs unknown task 'nope'",
        "7:15: s needs itself",
        "7:18: dependency cycle s → t → s: s needs t (line 7), t needs s (line 8); "
        "remove one of these dependencies",
        "9:15: x needs unknown task 'y'",
        "9:18: x needs itself",
        "9:45: unknown provider 'nope'",
    ]


def test_a_task_with_problems_of_its_own_is_left_out_of_the_cycle_search(
    tmp_path: Path,
) -> None:
    """b is not built (unknown provider): no cycle is made up through it."""
    assert errors_of(
        """
        version: 1
        tasks:
          a: {needs: [b], run: [echo]}
          b: {needs: [a], run: [echo], provider: nope}
        """,
        tmp_path,
    ) == ["5:42: unknown provider 'nope'"]


def test_a_cycle_built_directly_raises_plan_error() -> None:
    with pytest.raises(PlanError) as caught:
        _graph([("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")])
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.message.startswith("dependency cycle b → a → c → b: b needs a (line 1)")


def test_a_group_waits_for_its_children_and_its_dependents_for_it(tmp_path: Path) -> None:
    plan = compile_text(
        """
        version: 1
        tasks:
          epic: {title: The epic}
          one: {parent: epic, run: [echo]}
          two: {parent: epic, run: [echo]}
          after: {needs: [epic], run: [echo]}
        """,
        tmp_path,
    )
    epic = plan.tasks["epic"]
    assert (epic.kind, epic.title, epic.children) == ("group", "The epic", ("one", "two"))
    assert plan.graph.waits_for("epic") == ["one", "two"]
    assert plan.graph.waits_for("after") == ["epic"]
    assert plan.graph.edge("one", "epic").why == "parent"
    assert plan.work == ("one", "two", "after")


def test_ready_tasks_go_by_priority_then_work_behind_then_key(tmp_path: Path) -> None:
    plan = compile_text(
        """
        version: 1
        tasks:
          z-long: {run: [echo]}
          z-long-2: {needs: [z-long], run: [echo]}
          z-long-3: {needs: [z-long-2], run: [echo]}
          b-short: {run: [echo]}
          a-short: {run: [echo]}
          urgent: {priority: 5, run: [echo]}
        """,
        tmp_path,
    )
    ready = ["a-short", "b-short", "urgent", "z-long"]
    assert sorted(ready, key=plan.graph.order_key) == ["urgent", "z-long", "a-short", "b-short"]
    assert plan.graph.work_behind("z-long") == 3
    assert plan.graph.order_key("urgent") == (-5, -1, "urgent")
    # once z-long is done, z-long-2 has more work behind it than the short ones
    assert plan.work == ("urgent", "z-long", "z-long-2", "a-short", "b-short", "z-long-3")


def test_work_behind_counts_work_tasks_only() -> None:
    tasks = {
        "a": _task("a"),
        "g": _task("g", kind="group"),
        "b": _task("b"),
    }
    edges = [
        Edge("a", "g", Location("p", 1, 1), "parent"),
        Edge("g", "b", Location("p", 2, 1), "needs"),
    ]
    graph = TaskGraph.build(tasks, edges)
    assert [graph.work_behind(k) for k in "agb"] == [2, 1, 1]


def test_upstream_and_downstream() -> None:
    graph = _graph([("a", "b"), ("b", "c"), ("x", "c"), ("c", "d"), ("e", "f")])
    assert graph.upstream(["c"]) == {"a", "b", "c", "x"}
    assert graph.downstream(["a"]) == {"a", "b", "c", "d"}
    assert graph.upstream([]) == set()
    assert graph.downstream(["e", "d"]) == {"d", "e", "f"}
    assert graph.waits_for("c") == ["b", "x"]
    assert graph.waited_on_by("c") == ["d"]


def test_topological_order_respects_every_edge_and_is_deterministic() -> None:
    rng = random.Random(1)
    for _ in range(20):
        keys = [f"k{n:02d}" for n in range(30)]
        edges = sorted({(rng.choice(keys[:i]), keys[i]) for i in range(1, 30) for _ in range(2)})
        priorities = {k: rng.randrange(3) for k in keys}
        graph = _graph(edges, priorities)
        order = graph.topological()
        position = {k: n for n, k in enumerate(order)}
        assert sorted(order) == keys
        assert all(position[a] < position[b] for a, b in edges)
        assert order == _graph(list(reversed(edges)), priorities).topological()


def test_drawings(tmp_path: Path) -> None:
    plan = compile_text(
        """
        version: 1
        tasks:
          build: {title: 'Build "it"', run: [echo]}
          epic: {}
          child: {parent: epic, needs: [build], run: [echo]}
        """,
        tmp_path,
    )
    graph = plan.graph
    assert graph.to_mermaid() == (
        'graph TD\n  t0["build"]\n  t1["child"]\n  t2[["epic"]]\n  t0 --> t1\n  t1 -.-> t2\n'
    )
    assert graph.to_mermaid({"build": "done"}).splitlines()[1] == '  t0["build: done"]'
    dot = graph.to_dot()
    assert '"build" [label="Build \\"it\\""];' in dot
    assert '"child" -> "epic" [style=dashed];' in dot
    data = json.loads(graph.to_json())
    assert [n["key"] for n in data["nodes"]] == ["build", "child", "epic"]
    assert data["edges"] == [
        {"from": "build", "to": "child", "why": "needs"},
        {"from": "child", "to": "epic", "why": "parent"},
    ]


def test_planrun_plan_lists_work_in_dispatch_order_seeing_through_groups(
    tmp_path: Path,
) -> None:
    out = io.StringIO()
    state_dir = tmp_path / "state"  # a folder no run has used
    assert describe_plan(ROOT / "plans" / "diamond.yaml", out, state_dir=state_dir) == 0
    assert out.getvalue().splitlines() == [
        "plan diamond: 1 run, 5 wait",
        "   1. fetch      run         new: never ran",
        "   2. build-api  wait        new: never ran; after fetch",
        "   3. build-web  wait        new: never ran; after fetch",
        "   4. notes      wait        new: never ran; after build-api, build-web",
        "   5. package    wait        new: never ran; after build-api, build-web",
        "   6. announce   wait        new: never ran; after notes, package",
    ]
    assert not (tmp_path / "state").exists()
