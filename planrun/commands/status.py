"""``planrun status [PLAN]``: the last run's tasks and states, while it runs or after (SPEC §6).

Reads the state store read-only and never takes the state lock, so it answers while an
apply writes (SQLite WAL: readers see every committed write, never a half one). All of it
is read in one read transaction, so counts and rows agree with each other.

What it shows: the run (id, plan, start, end or "running for", status), who holds the state
lock when an apply is live (:mod:`planrun.state.lock`), counts per status, and a table of
the run's work tasks in dependency order: key, status, attempt, elapsed, reason, and
tokens and cost when an agent reported usage (the sum over the task's attempts in this
run, as the report's ``usage``; the run's total in the header). Tasks that
have not started show as ``pending`` with the reason apply decided to run them; in a run
whose planrun died, what was running or waiting shows as ``cancelled`` (the next apply
recovers it), but a tmux task whose pane still runs shows as ``running`` ("planrun exited;
re-attached by the next apply"): its recorded process is alive (same start time) and a tmux
server's child. ``--json`` prints the same as one JSON document.

Speed: a 10,000-task run answers in well under a second. The rows are read with
:meth:`~planrun.state.store.StoreReader.overview` (a few narrow statements in one read
transaction) rather than the full rows, which decode every JSON column (tails, data) and
take most of a second for 10,000 tasks.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

from planrun.core.frozen import frozen
from planrun.core.outcomes import Status
from planrun.errors import StoreError, UsageError
from planrun.report.figures import cost_text, duration_text, tokens_text, usage_text
from planrun.sessions.procfs import PPID, STARTTIME, STATE, stat_field, stat_fields
from planrun.state.locate import Located, locate
from planrun.state.queries import (
    USAGE_FIELDS,
    attempt_spans,
    elapsed_s,
    in_run,
    open_readonly,
    run_liveness,
    run_status,
    select_run,
    sum_usage,
    task_status,
    usage_by_task,
)
from planrun.state.store import AttemptBrief, RunOverview, RunRow, StoreReader, TaskBrief


@frozen
class TaskLine:
    """One work task of the run as status shows it."""

    key: str
    status: str
    attempt: int  # the number of its latest attempt (counted across runs); 0: none
    started_at: str | None
    ended_at: str | None
    elapsed_s: float | None
    reason: str
    #: input_tokens, output_tokens and cost_usd summed over the run's attempts (None: unknown)
    usage: dict[str, Any] | None = None


@frozen
class Snapshot:
    """A consistent view of one run."""

    run: RunRow
    status: str  # running, interrupted, succeeded, failed
    liveness: str  # live, dead, ended
    holder: dict[str, Any] | None
    tasks: list[TaskLine]

    def counts(self) -> dict[str, int]:
        """Work tasks per status, every status listed (as the report's ``counts``)."""
        counts = {s.value: 0 for s in Status}
        for task in self.tasks:
            counts[task.status] = counts.get(task.status, 0) + 1
        return counts

    def usage(self) -> dict[str, Any] | None:
        """The run's usage: the sum of its tasks' (None when no task reported any)."""
        return sum_usage(t.usage for t in self.tasks)


def run_status_command(args: argparse.Namespace, out: TextIO) -> int:
    """Print the status of the last run of PLAN (or of ./.planrun); 0 when it could."""
    from planrun.state.lock import read_holder

    located = locate(args.plan, args.state_dir)
    served = _served(located.state_dir)
    try:
        store = open_readonly(located)
    except StoreError:
        if served is None:
            raise
        return _served_only(served, args.json, out)  # serving, nothing run yet
    try:
        run = select_run(store, located)
        holder = read_holder(located.state_dir)  # before the rows: a run ending meanwhile
        snapshot = read_snapshot(store, run, holder)  # shows as ended, not as dead
        snapshot = _with_open_runs(store, snapshot, served)
        waiting = tracker_updates_waiting(store, run.plan_name)
    except UsageError:
        if served is None:
            raise
        return _served_only(served, args.json, out)
    finally:
        store.close()
    changes = changesets_line(located.state_dir)
    if args.json:
        document = as_json(snapshot, located)
        document["serve"] = served
        if changes is not None:
            document["changesets"] = changes
        if waiting:
            document["tracker_updates_waiting"] = waiting
        out.write(json.dumps(document, indent=2) + "\n")
    else:
        out.write("".join(f"{line}\n" for line in serve_lines(served)))
        out.write(as_text(snapshot, located) + (f"\n{changes}\n" if changes else ""))
        if waiting:
            shown = ", ".join(waiting[:5]) + (
                f" and {len(waiting) - 5} more" if len(waiting) > 5 else ""
            )
            out.write(f"tracker updates waiting: {shown} (the next apply delivers them)\n")
    return 0


#: planrun.trackers.outbox.INTENT_EVENT, written out so that status imports no HTTP client
#: for a plan without trackers (tests/test_trackers_status.py checks the two agree)
TRACKER_INTENT = "tracker_intent"


def tracker_updates_waiting(store: StoreReader, plan_name: str) -> list[str]:
    """The tracker items whose latest status update is not delivered yet (docs/trackers.md,
    "Delivery: the outbox"); planrun.trackers is imported only when the plan has any."""
    if not store.plan_events(plan_name, (TRACKER_INTENT,)):
        return []
    from planrun.trackers.outbox import pending_intents

    found = pending_intents(store, plan_name)
    return sorted(f"{p.intent.item_key} ({p.intent.task})" for p in found.values())


def changesets_line(state_dir: Path) -> str | None:
    """The one-line summary of the plan's changesets, if it has any (docs/batch-changes.md);
    planrun.changes is imported only then."""
    if not (state_dir / "changesets.json").is_file():  # planrun.changes.records.SUMMARY_FILE
        return None
    from planrun.changes.records import summary

    return summary(state_dir)


_UNDER_WAY = frozenset({"pending", "ready", "running", "retrying", "needs_input"})


def _with_open_runs(
    store: StoreReader, snapshot: Snapshot, served: dict[str, Any] | None
) -> Snapshot:
    """A served plan's latest run, with the tasks still under way in its other open runs
    (serve runs several passes at once; docs/serve.md)."""
    lines = {t.key: t for t in snapshot.tasks}
    for run_id in (served or {}).get("runs") or ():
        run = store.run(run_id) if run_id != snapshot.run.id else None
        if run is None:
            continue
        for task in read_snapshot(store, run, snapshot.holder).tasks:
            if task.key not in lines or task.status in _UNDER_WAY:
                lines[task.key] = task
    return replace(snapshot, tasks=list(lines.values()))


def _served_only(served: dict[str, Any], as_json: bool, out: TextIO) -> int:
    if as_json:
        out.write(json.dumps({"serve": served}, indent=2) + "\n")
    else:
        out.write("".join(f"{line}\n" for line in [*serve_lines(served), "no run yet"]))
    return 0


def _served(state_dir: Path) -> dict[str, Any] | None:
    """What a live ``planrun serve`` of this state folder says of itself (None: none)."""
    from planrun.run.serve_file import paused, read_status

    served = read_status(state_dir)
    if served is not None:
        served["paused"] = paused(state_dir)
    return served


def serve_lines(served: dict[str, Any] | None) -> list[str]:
    """The lines of a served run, above the latest run's (docs/serve.md)."""
    if served is None:
        return []
    since = str(served.get("since", "?")).replace("T", " ")[:19] + "Z"
    state = ", draining" if served.get("draining") else ", paused" if served.get("paused") else ""
    lines = [f"served by planrun serve (pid {served.get('pid')}) since {since}{state}"]
    polls = (
        f"last poll {served.get('last_poll') or 'not yet'}, next {served.get('next_poll') or '-'}"
    )
    lines.append(f"{polls} (every {served.get('interval')} s)")
    if served.get("last_problem"):
        lines.append(f"last poll failed: {served['last_problem']}")
    runs = served.get("runs") or []
    lines.append(f"open runs: {', '.join(runs) if runs else 'none'}")
    for agent, addresses in sorted((served.get("webhooks") or {}).items()):
        lines.append(f"agent {agent}: webhooks on {', '.join(addresses)}")
    return lines


# ---------------------------------------------------------------- reading


def read_snapshot(store: StoreReader, run: RunRow, holder: dict[str, Any] | None) -> Snapshot:
    """The run's tasks as they stand, read in one read-only transaction."""
    now = time.time()
    overview = store.overview(run)
    liveness = run_liveness(overview.run, holder)
    lines = _lines(overview, liveness, now)
    return Snapshot(overview.run, run_status(overview.run, liveness), liveness, holder, lines)


def _lines(overview: RunOverview, liveness: str, now: float) -> list[TaskLine]:
    """Work tasks in the run_plan's order, then any other recorded task by key."""
    spans = attempt_spans(overview.attempts)
    in_tmux = _in_tmux(overview.attempts) if liveness == "dead" else set()
    usage = usage_by_task(overview.attempts)
    recorded = {t.key: t for t in overview.tasks}
    planned = overview.planned
    order = [t for t in in_run(planned, recorded, liveness) if t.get("kind", "work") == "work"]
    known = {str(t["key"]) for t in planned}
    extra = sorted(k for k, t in recorded.items() if k not in known and t.kind == "work")
    lines = [
        _line(str(t["key"]), recorded, spans, liveness, now, str(t.get("why", "")), in_tmux)
        for t in order
    ]
    lines += [_line(k, recorded, spans, liveness, now, "", in_tmux) for k in extra]
    return [replace(line, usage=usage.get(line.key)) for line in lines]


def _in_tmux(attempts: Iterable[AttemptBrief]) -> set[str]:
    """The tasks of a dead run whose last attempt is open and whose tmux pane still runs."""
    last = {a.key: a for a in attempts}
    return {
        key
        for key, a in last.items()
        if a.ended_at is None and tmux_pane_alive(a.pid, a.proc_start_time)
    }


def tmux_pane_alive(pid: int | None, start_time: int | None) -> bool:
    """True if ``pid`` is still the recorded process (same start time) and a tmux server's
    child: a tmux pane that outlived the planrun that started it."""
    if not pid or not start_time:
        return False
    fields = stat_fields(pid)
    if fields is None or stat_field(fields, STATE) in ("Z", "X"):
        return False
    if int(stat_field(fields, STARTTIME)) != start_time:
        return False
    try:
        parent = Path(f"/proc/{stat_field(fields, PPID)}/comm").read_text()
    except OSError:
        return False
    return parent.startswith("tmux")


def _line(
    key: str,
    recorded: dict[str, TaskBrief],
    spans: dict[str, tuple[str, str | None, bool, str | None, int]],
    liveness: str,
    now: float,
    why: str,
    in_tmux: set[str],
) -> TaskLine:
    row = recorded.get(key)
    span = spans.get(key)
    started, ended, is_open, outcome, number = span if span else (None, None, False, None, 0)
    status, reason = task_status(
        None if row is None else row.status,
        "" if row is None else row.reason,
        liveness=liveness,
        attempt_open=is_open,
        last_outcome=outcome,
        why=why,
        session_alive=key in in_tmux,
    )
    final = Status(status).is_final
    if not final:
        ended = None  # still going: elapsed counts to now
    elif ended is None and row is not None and not is_open:
        ended = row.updated_at  # finished without an attempt in this run (up to date, skipped)
    # an attempt left open by a planrun that died has no known end
    elapsed = elapsed_s(started, ended, now) if ended is not None or not final else None
    return TaskLine(
        key=key,
        status=status,
        attempt=number or (row.attempts if row else 0),
        started_at=started,
        ended_at=ended,
        elapsed_s=elapsed,
        reason=reason,
    )


# ---------------------------------------------------------------- output


def as_json(snapshot: Snapshot, located: Located) -> dict[str, Any]:
    """The snapshot as one JSON-able document (documented in the command's help)."""
    run = snapshot.run
    return {
        "state_dir": str(located.state_dir),
        "run": {
            "id": run.id,
            "plan": run.plan_name,
            "plan_path": run.plan_path,
            "started_at": run.started_at,
            "ended_at": run.ended_at,
            "status": snapshot.status,
            "pid": run.pid,
            "host": run.host,
        },
        "lock_holder": snapshot.holder,
        "counts": snapshot.counts(),
        "usage": snapshot.usage(),
        "tasks": [dict(vars(t)) for t in snapshot.tasks],  # asdict() deep-copies: 10x slower
    }


def as_text(snapshot: Snapshot, located: Located) -> str:
    """The header and the task table, for a terminal."""
    lines = _header(snapshot, located)
    lines.append("")
    lines += _table(snapshot.tasks)
    return "\n".join(lines) + "\n"


def _header(snapshot: Snapshot, located: Located) -> list[str]:
    from planrun.state.lock import describe_holder

    run = snapshot.run
    lines = [f"run {run.id} of plan {run.plan_name} ({run.plan_path})"]
    started = run.started_at.replace("T", " ")[:19] + "Z"
    if run.ended_at is not None:
        took = elapsed_s(run.started_at, run.ended_at, time.time())
        lines.append(f"started {started}, ended after {duration_text(took)}: {snapshot.status}")
    elif snapshot.liveness == "live":
        took = elapsed_s(run.started_at, None, time.time())
        lines.append(f"started {started}, running for {duration_text(took)}")
    else:
        lines.append(
            f"started {started}: interrupted (planrun pid {run.pid} exited without ending"
            " the run; the next apply recovers it)"
        )
    if snapshot.holder is not None:
        lines.append(f"lock: held by {describe_holder(snapshot.holder)}")
    counts = ", ".join(f"{n} {s}" for s, n in snapshot.counts().items() if n)
    lines.append(f"tasks: {counts or 'none'}  (state: {located.state_dir})")
    usage = snapshot.usage()
    if usage is not None:
        lines.append("usage: " + usage_text(*(usage[name] for name in USAGE_FIELDS)))
    return lines


_COLUMNS = ("KEY", "STATUS", "ATTEMPT", "ELAPSED", "TOKENS", "COST", "REASON")


def _table(tasks: list[TaskLine]) -> list[str]:
    """One row per task; TOKENS and COST only when some task reported usage."""
    priced = any(t.usage is not None for t in tasks)
    columns = _COLUMNS if priced else _COLUMNS[:4] + _COLUMNS[-1:]
    cells = [_cells(t, priced) for t in tasks]
    last = len(columns) - 1
    widths = [max([len(columns[i]), *(len(c[i]) for c in cells)]) for i in range(last)]
    return [
        (
            "  ".join(c.ljust(w) for c, w in zip(row[:last], widths, strict=True))
            + "  "
            + row[last]
        ).rstrip()
        for row in [columns, *cells]
    ]


def _cells(task: TaskLine, priced: bool) -> tuple[str, ...]:
    attempt = str(task.attempt) if task.attempt else "-"
    head = (task.key, task.status, attempt, duration_text(task.elapsed_s))
    if not priced:
        return (*head, task.reason)
    usage = task.usage or {}
    tokens = (usage.get("input_tokens") or 0) + (usage.get("output_tokens") or 0)
    figures = (tokens_text(tokens if usage else None), cost_text(usage.get("cost_usd")))
    return (*head, *figures, task.reason)
