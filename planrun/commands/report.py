"""``planrun report PLAN [--run ID] [--json-out FILE] [--junit FILE] [--summary FILE]``.

Regenerates the run report (the same :class:`~planrun.report.model.RunReport`, validated
against ``schemas/report.schema.json``), the JUnit XML and the Markdown summary of any past
run (default: the last one) from the state store, with the writers ``apply`` uses
(:mod:`planrun.report.write`). It works for a run whose planrun was killed (which wrote no
report) and while a run is going (``status: running``). The store is opened read-only and
never locked; only the files asked for are written. With no output option the JSON report
goes to stdout (as with ``--json-out -``).

Where each field comes from (tables of ``planrun.state.sqlite``):

- ``runs``: plan name, path and sha256, run id, planrun version, ``started_at``,
  ``ended_at``, the run's status (``running`` while its apply holds the state lock,
  ``interrupted`` when that apply died) and, from it, ``exit_code`` (0, 1, 130, or none
  while running); ``duration_s`` is computed from the two times.
- ``tasks`` (the run's task rows): status, reason, fingerprint, branch, base commit,
  landed commit, diffstat, ``cause`` and the title; ``ended_at`` of a finished task is
  when its final status was recorded.
- ``attempts``: every attempt of the run: number, start, end, duration, outcome, reason,
  exit code, signal, log path, last lines and usage; a task's ``started_at`` is its first
  attempt's start, and its ``usage`` and the run's are the sums of the attempts' usage.
- the ``changeset_intent`` and ``changeset_delivered`` events: the run's changesets;
- the ``run_plan`` event (written when the run began): which tasks the run covered and in
  what order, kind, title, priority, needs, parent, provider, project, the Mermaid graph's
  edges, and for a task that never got a row, the reason apply had to run it.

Differences from the report ``apply`` wrote: times are the store's (to the microsecond, the
moment each write committed); tasks of a run that died show as ``cancelled`` (what was
running: "interrupted: planrun exited during the attempt"). Runs recorded before the
``run_plan`` event existed list only tasks with a row, without priority, needs or graph.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TextIO

from planrun.changes.records import run_changesets
from planrun.core.outcomes import Status
from planrun.report.model import (
    AttemptReport,
    PlanInfo,
    RunReport,
    TaskReport,
    Usage,
    total_usage,
    usage_of,
)
from planrun.state.locate import locate
from planrun.state.queries import (
    elapsed_s,
    in_run,
    open_readonly,
    planned_tasks,
    run_liveness,
    run_status,
    select_run,
    task_status,
)
from planrun.state.store import AttemptRow, RunRow, StoreReader, TaskRow

_EXIT_CODES = {"succeeded": 0, "failed": 1, "interrupted": 130}


def run_report(args: argparse.Namespace, out: TextIO) -> int:
    """Write the reports asked for (JSON to stdout when none is); 0 when written."""
    from planrun.report.model import report_json
    from planrun.report.write import (
        append_text,
        junit_xml,
        summary_markdown,
        write_atomic,
    )
    from planrun.state.lock import read_holder

    located = locate(args.plan, args.state_dir)
    store = open_readonly(located)
    try:
        run = select_run(store, located, args.run)
        holder = read_holder(located.state_dir)
        report, planned = build_report(store, run, run_liveness(run, holder))
    finally:
        store.close()
    validate(report)
    text = report_json(report)
    json_out = args.json_out or (None if args.junit or args.summary else "-")
    if json_out == "-":
        out.write(text)
    elif json_out:
        write_atomic(Path(json_out), text)
    if args.junit:
        write_atomic(args.junit, junit_xml(report))
    if args.summary:
        statuses = {t.key: t.status for t in report.tasks}
        append_text(args.summary, summary_markdown(report, mermaid(planned, statuses)))
    return 0


def validate(report: RunReport) -> None:
    """Check the report against the published JSON Schema (a failure is a planrun bug)."""
    import jsonschema

    from planrun.errors import InternalError
    from planrun.report.model import report_json, report_json_schema

    try:
        jsonschema.validate(json.loads(report_json(report)), report_json_schema())
    except jsonschema.ValidationError as e:
        raise InternalError(f"the regenerated report does not match its schema: {e}") from e


# ---------------------------------------------------------------- building


def build_report(
    store: StoreReader, run: RunRow, liveness: str
) -> tuple[RunReport, list[dict[str, Any]]]:
    """The run's report from the store, and the run's planned tasks (for the graph)."""
    planned = planned_tasks(store.events(run.id))
    rows = {t.key: t for t in store.tasks(run.id)}
    attempts: dict[str, list[AttemptRow]] = {}
    for attempt in store.attempts(run.id):
        attempts.setdefault(attempt.key, []).append(attempt)
    now = time.time()
    metas = in_run(planned, rows, liveness) or [_meta_from_row(row) for row in rows.values()]
    listed = {str(m["key"]) for m in metas}
    metas += [_meta_from_row(rows[k]) for k in sorted(rows) if k not in listed]
    tasks = [_task(m, rows.get(str(m["key"])), attempts, liveness, now) for m in metas]
    status = run_status(run, liveness)
    ended = run.ended_at
    report = RunReport(
        planrun_version=run.planrun_version,
        plan=PlanInfo(name=run.plan_name, path=run.plan_path, sha256=run.plan_sha256),
        run_id=run.id,
        host=run.host,
        started_at=run.started_at,
        ended_at=ended,
        duration_s=elapsed_s(run.started_at, ended, now),
        status=status,  # run_status returns only the four statuses the model allows
        exit_code=_EXIT_CODES.get(status),
        counts=_counts(tasks),
        usage=total_usage([a.usage for t in tasks for a in t.attempts]),
        tasks=tasks,
        changesets=run_changesets(store, run.id),
    )
    return report, in_run(planned, rows, liveness)


def _meta_from_row(row: TaskRow) -> dict[str, Any]:
    kind = row.data.get("kind")
    return {"key": row.key, "kind": kind if kind in ("work", "group") else "work"}


def _task(
    meta: Mapping[str, Any],
    row: TaskRow | None,
    attempts: Mapping[str, list[AttemptRow]],
    liveness: str,
    now: float,
) -> TaskReport:
    key = str(meta["key"])
    kind: Literal["work", "group"] = "group" if meta.get("kind") == "group" else "work"
    tried = attempts.get(key, [])
    last = tried[-1] if tried else None
    status, reason = task_status(
        None if row is None else row.status.value,
        "" if row is None else row.reason,
        liveness=liveness,
        attempt_open=last is not None and last.ended_at is None,
        last_outcome=None if last is None or last.outcome is None else last.outcome.value,
        why=str(meta.get("why", "")),
    )
    started = tried[0].started_at if tried else None
    ended = _task_end(status, row, last)
    reports = [_attempt(a, liveness, now) for a in tried]
    data = row.data if row is not None else {}
    return TaskReport(
        key=key,
        title=str(meta.get("title") or data.get("title") or key),
        kind=kind,
        status=status,
        reason=reason,
        cause=data.get("cause") if isinstance(data.get("cause"), str) else None,
        priority=int(meta.get("priority", 0)),
        needs=[str(n) for n in meta.get("waits_for", [])] if kind == "work" else [],
        parent=meta.get("parent"),
        provider=meta.get("provider"),
        project=meta.get("project"),
        fingerprint=row.fingerprint if row else None,
        branch=row.branch if row else None,
        base_commit=row.base_commit if row else None,
        landed_commit=row.landed_commit if row else None,
        diffstat=row.diffstat if row else None,
        started_at=started,
        ended_at=ended,
        duration_s=elapsed_s(started, ended, now) if started and ended else None,
        attempts=reports,
        usage=total_usage([a.usage for a in reports]),
    )


def _task_end(status: str, row: TaskRow | None, last: AttemptRow | None) -> str | None:
    """When a finished task finished: its final status's time (else its last attempt's)."""
    if not Status(status).is_final or row is None:
        return None
    if row.status.is_final:
        return row.updated_at
    return last.ended_at if last is not None else None


def _attempt(attempt: AttemptRow, liveness: str, now: float) -> AttemptReport:
    outcome = attempt.outcome.value if attempt.outcome is not None else None
    if outcome is None:
        outcome = "running" if liveness == "live" else "interrupted"
    end = attempt.ended_at
    return AttemptReport(
        number=attempt.n,
        started_at=attempt.started_at,
        ended_at=end,
        duration_s=elapsed_s(attempt.started_at, end, now) if end else None,
        outcome=outcome,
        reason=attempt.reason,
        exit_code=attempt.exit_code,
        signal=attempt.signal,
        log_path=attempt.log_path,
        tail=list(attempt.tail),
        usage=_usage(attempt.usage),
    )


def _usage(data: Mapping[str, Any] | None) -> Usage | None:
    if not data:
        return None
    return usage_of(dict(data))


def _counts(tasks: list[TaskReport]) -> dict[str, int]:
    counts = {s.value: 0 for s in Status}
    for task in tasks:
        if task.kind == "work":
            counts[task.status] = counts.get(task.status, 0) + 1
    return counts


# ---------------------------------------------------------------- the graph


def mermaid(planned: list[dict[str, Any]], statuses: Mapping[str, str]) -> str | None:
    """The run's graph as ``planrun.core.graph.TaskGraph.to_mermaid`` draws it, from the
    ``run_plan`` event (None for runs recorded without one)."""
    from planrun.core.mermaid import Node, draw

    if not planned:
        return None
    keys = {str(t["key"]) for t in planned}
    nodes = []
    for task in planned:
        children = set(task.get("children", []))
        waits = tuple((str(n), n in children) for n in task.get("waits_for", []) if n in keys)
        nodes.append(Node(str(task["key"]), task.get("kind") == "group", waits))
    return draw(nodes, statuses)
