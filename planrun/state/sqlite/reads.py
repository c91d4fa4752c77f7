"""What the SQLite store reads back: runs, tasks, attempts, events and task_state, as the
row dataclasses of :mod:`planrun.state.store`.

Each read is one statement on the shared connection (:class:`StoreConnection`); it sees
every committed write and never a half one (WAL), so a reader works while an apply writes.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace

from planrun.core.outcomes import Outcome, Status
from planrun.state.sqlite.connection import StoreConnection
from planrun.state.store import (
    RUN_PLAN_EVENT,
    AttemptBrief,
    AttemptRow,
    EventRow,
    JSONObject,
    RunOverview,
    RunRow,
    TaskBrief,
    TaskRow,
    TaskStateRow,
)


class Reads(StoreConnection):
    """The read side of the SQLite store (:class:`planrun.state.store.StoreReader`)."""

    def last_run(self, plan_name: str | None = None) -> RunRow | None:
        """The most recently begun run (of ``plan_name``, or of any plan), or None."""
        if plan_name is None:
            rows = self._query("SELECT * FROM runs ORDER BY rowid DESC LIMIT 1", ())
        else:
            rows = self._query(
                "SELECT * FROM runs WHERE plan_name = ? ORDER BY rowid DESC LIMIT 1",
                (plan_name,),
            )
        return _run_row(rows[0]) if rows else None

    def runs(self, plan_name: str) -> list[RunRow]:
        """Every run of ``plan_name``, oldest first."""
        rows = self._query("SELECT * FROM runs WHERE plan_name = ? ORDER BY rowid", (plan_name,))
        return [_run_row(r) for r in rows]

    def run(self, run_id: str) -> RunRow | None:
        """The run ``run_id``, or None."""
        rows = self._query("SELECT * FROM runs WHERE id = ?", (run_id,))
        return _run_row(rows[0]) if rows else None

    def journal_seq(self, run_id: str) -> int:
        """The last journal record of ``run_id`` applied to the store (0: none, or no run)."""
        rows = self._query("SELECT journal_seq FROM runs WHERE id = ?", (run_id,))
        return int(rows[0][0]) if rows else 0

    def tasks(self, run_id: str) -> list[TaskRow]:
        """The run's task rows, by key."""
        rows = self._query("SELECT * FROM tasks WHERE run_id = ? ORDER BY key", (run_id,))
        return [_task_row(r) for r in rows]

    def attempts(self, run_id: str, key: str | None = None) -> list[AttemptRow]:
        """The run's attempts (of ``key`` only, if given), by key then n."""
        if key is None:
            rows = self._query("SELECT * FROM attempts WHERE run_id = ? ORDER BY key, n", (run_id,))
        else:
            rows = self._query(
                "SELECT * FROM attempts WHERE run_id = ? AND key = ? ORDER BY n", (run_id, key)
            )
        return [_attempt_row(r) for r in rows]

    def events(self, run_id: str, after_seq: int = 0) -> list[EventRow]:
        """The run's events with ``seq > after_seq``, in order (tail with the last seq seen)."""
        rows = self._query(
            "SELECT * FROM events WHERE run_id = ? AND seq > ? ORDER BY seq",
            (run_id, after_seq),
        )
        return [_event_row(r) for r in rows]

    def task_states(self, plan_name: str) -> dict[str, TaskStateRow]:
        """What is durably known about each of the plan's tasks, by key."""
        rows = self._query(
            "SELECT * FROM task_state WHERE plan_name = ? ORDER BY key", (plan_name,)
        )
        return {r["key"]: _task_state_row(r) for r in rows}

    def open_attempts(self, plan_name: str) -> list[AttemptRow]:
        """Attempts of the plan's runs that started and never finished, oldest run first.

        After a crash their pid, pgid and proc_start_time identify processes that may still
        run; kill those, then close each with ``attempt_interrupted``.
        """
        rows = self._query(
            "SELECT a.* FROM attempts AS a JOIN runs AS r ON r.id = a.run_id"
            " WHERE r.plan_name = ? AND a.ended_at IS NULL ORDER BY r.rowid, a.key, a.n",
            (plan_name,),
        )
        return [_attempt_row(r) for r in rows]

    def overview(self, run: RunRow) -> RunOverview:
        """A few narrow statements in one read transaction; only the ``kind`` of each
        task's data is decoded, and only when the data names one."""
        with self._read_transaction() as con:
            ended = con.execute(
                "SELECT status, ended_at FROM runs WHERE id = ?", (run.id,)
            ).fetchone()
            tasks = con.execute(
                "SELECT key, status, reason, attempts, updated_at, data_json FROM tasks"
                " WHERE run_id = ?",
                (run.id,),
            ).fetchall()
            attempts = con.execute(
                "SELECT key, n, started_at, ended_at, outcome, pid, proc_start_time, usage_json"
                " FROM attempts WHERE run_id = ? ORDER BY key, n",
                (run.id,),
            ).fetchall()
            plan = con.execute(
                "SELECT data_json FROM events WHERE run_id = ? AND kind = ? ORDER BY seq LIMIT 1",
                (run.id, RUN_PLAN_EVENT),
            ).fetchone()
        return RunOverview(
            run if ended is None else replace(run, status=ended[0], ended_at=ended[1]),
            [TaskBrief(k, s, r, n, at, _kind(data)) for k, s, r, n, at, data in tasks],
            [_attempt_brief(a) for a in attempts],
            [] if plan is None else _planned(plan[0]),
        )


# ---------------------------------------------------------------- row decoding


def _attempt_brief(row: sqlite3.Row) -> AttemptBrief:
    key, n, started, ended, outcome, pid, start_time, usage = row
    return AttemptBrief(key, n, started, ended, outcome, pid, start_time, _usage(usage))


def _usage(text: str | None) -> JSONObject | None:
    value = json.loads(text) if text else None
    return value if isinstance(value, dict) else None


def _loads_object(text: str | None) -> JSONObject:
    value = json.loads(text) if text else {}
    return value if isinstance(value, dict) else {"value": value}


def _run_row(r: sqlite3.Row) -> RunRow:
    return RunRow(
        id=r["id"],
        plan_name=r["plan_name"],
        plan_path=r["plan_path"],
        plan_sha256=r["plan_sha256"],
        planrun_version=r["planrun_version"],
        started_at=r["started_at"],
        status=r["status"],
        pid=r["pid"],
        host=r["host"],
        args=tuple(str(a) for a in json.loads(r["args_json"])),
        ended_at=r["ended_at"],
    )


def _task_row(r: sqlite3.Row) -> TaskRow:
    return TaskRow(
        run_id=r["run_id"],
        key=r["key"],
        status=Status(r["status"]),
        reason=r["reason"],
        fingerprint=r["fingerprint"],
        attempts=r["attempts"],
        branch=r["branch"],
        base_commit=r["base_commit"],
        landed_commit=r["landed_commit"],
        diffstat=r["diffstat"],
        data=_loads_object(r["data_json"]),
        updated_at=r["updated_at"],
    )


def _attempt_row(r: sqlite3.Row) -> AttemptRow:
    usage = r["usage_json"]
    return AttemptRow(
        run_id=r["run_id"],
        key=r["key"],
        n=r["n"],
        started_at=r["started_at"],
        fingerprint=r["fingerprint"],
        log_path=r["log_path"],
        ended_at=r["ended_at"],
        outcome=None if r["outcome"] is None else Outcome(r["outcome"]),
        exit_code=r["exit_code"],
        signal=r["signal"],
        reason=r["reason"],
        pid=r["pid"],
        pgid=r["pgid"],
        proc_start_time=r["proc_start_time"],
        tail=tuple(str(line) for line in json.loads(r["tail_json"])),
        usage=None if usage is None else _loads_object(usage),
    )


def _event_row(r: sqlite3.Row) -> EventRow:
    return EventRow(
        seq=r["seq"],
        run_id=r["run_id"],
        at=r["at"],
        kind=r["kind"],
        key=r["key"],
        data=_loads_object(r["data_json"]),
    )


def _task_state_row(r: sqlite3.Row) -> TaskStateRow:
    return TaskStateRow(
        plan_name=r["plan_name"],
        key=r["key"],
        fingerprint=r["fingerprint"],
        status=Status(r["status"]),
        done_run_id=r["done_run_id"],
        attempts_total=r["attempts_total"],
        updated_at=r["updated_at"],
    )


def _kind(data_json: str | None) -> str:
    if not data_json or '"kind"' not in data_json:
        return "work"
    return str(_loads_object(data_json).get("kind", "work"))


def _planned(data_json: str) -> list[JSONObject]:
    tasks = _loads_object(data_json).get("tasks")
    return [t for t in tasks if isinstance(t, dict)] if isinstance(tasks, list) else []
