"""``planrun plan``: what apply would run, in dispatch order, and why (read-only)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TextIO

from planrun.plan.compile import CompiledPlan
from planrun.plan.load import load_plan


def plan_rows(plan: CompiledPlan) -> list[dict[str, Any]]:
    rows = []
    for key in plan.work:
        task = plan.tasks[key]
        rows.append(
            {
                "key": key,
                "title": task.title,
                "priority": task.priority,
                "provider": task.provider,
                "project": task.project,
                "needs": _work_needs(plan, key),
                "action": "run",
            }
        )
    return rows


def _work_needs(plan: CompiledPlan, key: str) -> list[str]:
    """The work tasks ``key`` waits for directly, seeing through groups."""
    found: list[str] = []
    stack = list(reversed(plan.graph.waits_for(key)))
    seen: set[str] = set()
    while stack:
        need = stack.pop()
        if need in seen:
            continue
        seen.add(need)
        if plan.tasks[need].kind == "group":
            stack.extend(reversed(plan.graph.waits_for(need)))
        else:
            found.append(need)
    return sorted(found)


def describe_plan(path: Path, out: TextIO, *, as_json: bool = False) -> int:
    plan = load_plan(path)
    rows = plan_rows(plan)
    if as_json:
        out.write(json.dumps({"plan": plan.name, "tasks": rows}, indent=2) + "\n")
        return 0
    print(f"plan {plan.name}: {len(rows)} task{'s' if len(rows) != 1 else ''} to run", file=out)
    width = max((len(r["key"]) for r in rows), default=4)
    for n, row in enumerate(rows, 1):
        needs = f"  needs {', '.join(row['needs'])}" if row["needs"] else ""
        print(
            f"{n:>4}. {row['key']:<{width}}  {row['action']:<10} p{row['priority']:<3} "
            f"{row['title']}{needs}",
            file=out,
        )
    return 0
