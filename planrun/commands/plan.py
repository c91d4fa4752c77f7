"""``planrun plan``: what ``apply`` would do, task by task, and why (read-only).

Each task gets the action of the one decision that ``apply`` acts on
(:mod:`planrun.core.decision`): ``run``, ``wait``, ``up to date``, ``in review``, ``fail``,
``blocked`` or ``skip``, with the reason. The state folder is opened read-only, never
created; the repositories are only read, but for those of a ``repositories:`` project,
which are cloned (or fetched) into the state folder first, as ``apply`` does.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any, TextIO

from planrun.commands.repos import with_repositories
from planrun.core.decision import PLAIN, Choices, work_needs
from planrun.plan.load import load_plan
from planrun.plan.resolved import CompiledPlan
from planrun.run.prepare import decide_for, fingerprints_of


def plan_rows(
    plan: CompiledPlan, choices: Choices = PLAIN, state_dir: Path | None = None
) -> list[dict[str, Any]]:
    """One row per work task: what :func:`planrun.run.prepare.decide_for` says apply does."""
    from planrun.state.folder import open_state
    from planrun.state.locate import state_dir_for
    from planrun.state.queries import catch_up

    fingerprints = fingerprints_of(plan)
    folder = state_dir_for(plan, state_dir)
    catch_up(folder)  # a dead run's journal first, as apply will replay it
    with open_state(plan, folder, readonly=True) as state:
        decision = decide_for(plan, state.known, choices, fingerprints)
    rows = []
    for key, step in decision.steps.items():
        task = plan.tasks[key]
        rows.append(
            {
                "key": key,
                "title": task.title,
                "priority": task.priority,
                "provider": task.provider,
                "project": task.project,
                "needs": work_needs(plan, key),
                "action": step.action.value,
                "why": step.why,
                "fingerprint": fingerprints[key][0],
            }
        )
    order = {k: n for n, k in enumerate(plan.work)}
    return sorted(rows, key=lambda row: order[row["key"]])


def describe_plan(
    path: Path,
    out: TextIO,
    *,
    as_json: bool = False,
    choices: Choices = PLAIN,
    state_dir: Path | None = None,
) -> int:
    plan, prepared = with_repositories(load_plan(path), sys.stderr)
    rows = plan_rows(plan, choices, state_dir)
    left = [asdict(left) for left in prepared.left] if prepared is not None else []
    changes = changeset_rows(plan, rows, state_dir)
    if as_json:
        data = {"plan": plan.name, "tasks": rows}
        data.update({k: v for k, v in (("changesets", changes), ("left_out", left)) if v})
        out.write(json.dumps(data, indent=2) + "\n")
        return 0
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["action"]] = counts.get(row["action"], 0) + 1
    summary = ", ".join(f"{n} {a}" for a, n in counts.items()) or "no tasks"
    print(f"plan {plan.name}: {summary}", file=out)
    width = max((len(r["key"]) for r in rows), default=4)
    for n, row in enumerate(rows, 1):
        print(f"{n:>4}. {row['key']:<{width}}  {row['action']:<10}  {row['why']}", file=out)
    print_changesets(changes, out)
    return 0


def changeset_rows(
    plan: CompiledPlan, rows: list[dict[str, Any]], state_dir: Path | None
) -> list[dict[str, Any]]:
    """What apply would propose per project with a changeset (docs/batch-changes.md): a
    proposal when one of its tasks runs, its wave, and its state as last recorded."""
    projects = [k for k, p in plan.projects.items() if p.changeset is not None]
    if not projects:
        return []
    from planrun.changes.records import last_states
    from planrun.core.waves import wave_numbers
    from planrun.state.locate import state_dir_for

    waves = wave_numbers(projects, plan.publishing.waves) if plan.publishing.waves else {}
    last = last_states(state_dir_for(plan, state_dir))
    found = []
    for name in projects:
        spec = plan.projects[name].changeset
        assert spec is not None
        runs = any(r["action"] == "run" for r in rows if r["project"] == name)
        found.append(
            {
                "project": name,
                "repo": spec.repo,
                "branch": spec.branch,
                "base": spec.base,
                "published": spec.published,
                "wave": waves.get(name),
                "proposes": runs,
                "last": last.get(name),
            }
        )
    return found


def print_changesets(changes: list[dict[str, Any]], out: TextIO) -> None:
    if not changes:
        return
    print(f"changesets: {len(changes)}", file=out)
    width = max(len(c["repo"]) for c in changes)
    for change in changes:
        branch = f"{change['branch']} → {change['base']}"
        published = {True: "PR", False: "no PR (kept unpublished)"}.get(change["published"])
        what = (
            f"{published or 'draft PR'} {branch} once its checks pass"
            if change["proposes"]
            else "nothing to propose (no task runs)"
        )
        wave = f"wave {change['wave']}: " if change["wave"] else ""
        last = f" (last: {change['last']})" if change["last"] else ""
        print(f"      {change['repo']:<{width}}  {wave}{what}{last}", file=out)


def run_plan(args: argparse.Namespace, out: TextIO) -> int:
    choices = Choices(args.force, args.force_all, args.rerun_failed)
    return describe_plan(
        Path(args.plan), out, as_json=args.json, choices=choices, state_dir=args.state_dir
    )
