"""``planrun plan``: what ``apply`` would do, task by task, and why (read-only).

Each task gets one action: ``run`` (nothing it needs runs first), ``wait`` (it runs after
needs that run in the same apply), ``up to date`` (its success is recorded with the same
fingerprint), ``in review`` (waiting for ``planrun approve``) or ``fail`` (it has spent its
attempts; ``--rerun-failed`` gives new ones). The reason names what changed, what is
forced, or which need runs again. The state folder is opened read-only, never created.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from planrun.convergence import decide
from planrun.fingerprint import fingerprint
from planrun.outcomes import Status
from planrun.plan.compile import CompiledPlan
from planrun.plan.load import load_plan


@dataclass(frozen=True)
class Choices:
    """The apply options that change decisions (as ``apply`` takes them)."""

    force: Collection[str] = ()
    force_all: bool = False
    rerun_failed: bool = False
    state_dir: Path | None = None


def plan_rows(plan: CompiledPlan, choices: Choices = Choices()) -> list[dict[str, Any]]:
    from planrun.commands.state import open_state

    state_dir = (choices.state_dir or plan.directory / plan.settings.state_dir).resolve()
    fingerprints = {k: fingerprint(plan, plan.tasks[k]) for k in plan.work}
    with open_state(plan, state_dir, readonly=True) as state:
        known = state.known
    decisions = decide(
        plan,
        fingerprints,
        known,
        force=choices.force,
        force_all=choices.force_all,
        rerun_failed=choices.rerun_failed,
    )
    rows = []
    for key in plan.work:
        task = plan.tasks[key]
        decision = decisions[key]
        needs = _work_needs(plan, key)
        seen = known.get(key)
        if (
            seen is not None
            and seen.status is Status.IN_REVIEW
            and decision.why.startswith("not done")
            and seen.fingerprint == fingerprints[key][0]
        ):
            action, why = "in review", "waiting for planrun approve"
        elif not decision.run:
            action, why = "up to date", decision.why
        elif decision.prior_attempts >= task.retry.attempts:
            action, why = (
                "fail",
                (
                    f"no attempts left ({decision.prior_attempts} of "
                    f"{task.retry.attempts} spent); --rerun-failed gives new ones"
                ),
            )
        else:
            running = [n for n in needs if decisions[n].run]
            action = "wait" if running else "run"
            why = decision.why + (f"; after {', '.join(running)}" if running else "")
        rows.append(
            {
                "key": key,
                "title": task.title,
                "priority": task.priority,
                "provider": task.provider,
                "project": task.project,
                "needs": needs,
                "action": action,
                "why": why,
                "fingerprint": fingerprints[key][0],
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


def describe_plan(
    path: Path, out: TextIO, *, as_json: bool = False, choices: Choices = Choices()
) -> int:
    plan = load_plan(path)
    rows = plan_rows(plan, choices)
    if as_json:
        out.write(json.dumps({"plan": plan.name, "tasks": rows}, indent=2) + "\n")
        return 0
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["action"]] = counts.get(row["action"], 0) + 1
    summary = ", ".join(f"{n} {a}" for a, n in counts.items()) or "no tasks"
    print(f"plan {plan.name}: {summary}", file=out)
    width = max((len(r["key"]) for r in rows), default=4)
    for n, row in enumerate(rows, 1):
        print(f"{n:>4}. {row['key']:<{width}}  {row['action']:<10}  {row['why']}", file=out)
    return 0
