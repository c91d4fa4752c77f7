"""What the SQLite store writes: each write is one transaction and appends one event.

Each write method is exactly one ``BEGIN IMMEDIATE … COMMIT`` transaction (or a share of
the enclosing :meth:`~planrun.state.sqlite.connection.StoreConnection.batch`) and appends
exactly one row to ``events``, so the journal has no gaps and ``seq`` orders every state
change; it returns that event's ``seq``.

Events the write methods append themselves (do not record these kinds again):
``run_started``, ``run_ended``, ``attempt_started``, ``attempt_process``,
``attempt_finished``, ``attempt_interrupted``, ``task_status``, ``task_done``,
``attempts_reset``. ``record_event`` appends any other kind (output, hook, retry, ...).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from planrun.core.outcomes import Outcome, Status
from planrun.errors import InternalError
from planrun.state.sqlite.connection import StoreConnection
from planrun.state.store import RunRow, utc_now

# Task statuses that say something about the task's work, mirrored into task_state.
_MIRRORED = frozenset(
    {
        Status.RUNNING,
        Status.RETRYING,
        Status.NEEDS_INPUT,
        Status.IN_REVIEW,
        Status.FAILED,
        Status.CANCELLED,
    }
)


class Writes(StoreConnection):
    """The write side of the SQLite store (:class:`planrun.state.store.StoreWriter`)."""

    def begin_run(self, run: RunRow) -> int:
        """Record a new run (its ``status`` normally "running"). Returns the event seq."""
        with self._transaction() as con:
            con.execute(
                "INSERT INTO runs (id, plan_name, plan_path, plan_sha256, planrun_version,"
                " started_at, ended_at, status, pid, host, args_json)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run.id,
                    run.plan_name,
                    run.plan_path,
                    run.plan_sha256,
                    run.planrun_version,
                    run.started_at,
                    run.ended_at,
                    run.status,
                    run.pid,
                    run.host,
                    _dumps(list(run.args)),
                ),
            )
            data = {"plan_name": run.plan_name, "plan_sha256": run.plan_sha256}
            return _append_event(con, run.id, "run_started", None, data, run.started_at)

    def end_run(self, run_id: str, status: str, ended_at: str) -> int:
        """Set a run's final status and end time (also for a run that died: "interrupted")."""
        with self._transaction() as con:
            cur = con.execute(
                "UPDATE runs SET status = ?, ended_at = ? WHERE id = ?",
                (status, ended_at, run_id),
            )
            _require(cur.rowcount == 1, f"end_run: unknown run {run_id!r}")
            return _append_event(con, run_id, "run_ended", None, {"status": status}, ended_at)

    def record_event(
        self,
        run_id: str,
        kind: str,
        key: str | None = None,
        data: Mapping[str, Any] | None = None,
        *,
        at: str | None = None,
    ) -> int:
        """Append one event to the journal (``data`` must be JSON-serialisable)."""
        payload = _dumps(dict(data or {}))
        with self._transaction() as con:
            return _insert_event(con, run_id, kind, key, payload, at or utc_now())

    def attempt_started(
        self,
        run_id: str,
        key: str,
        n: int,
        started_at: str,
        fingerprint: str,
        log_path: str,
    ) -> int:
        """Record attempt ``n`` of ``key`` BEFORE its process starts.

        Also sets the run's task row to running (attempts = max(attempts, n)) and counts the
        attempt in task_state (reset to 1 when the fingerprint changed). A second call for
        the same (run, key, n) is a bug: InternalError.
        """
        with self._transaction() as con:
            plan_name = self._plan_of(con, run_id)
            con.execute(
                "INSERT INTO tasks (run_id, key, fingerprint, status, reason, attempts,"
                " updated_at) VALUES (?, ?, ?, ?, '', ?, ?)"
                " ON CONFLICT (run_id, key) DO UPDATE SET fingerprint = excluded.fingerprint,"
                " status = excluded.status, reason = '',"
                " attempts = max(tasks.attempts, excluded.attempts),"
                " updated_at = excluded.updated_at",
                (run_id, key, fingerprint, Status.RUNNING.value, n, started_at),
            )
            con.execute(
                "INSERT INTO attempts (run_id, key, n, fingerprint, started_at, log_path)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (run_id, key, n, fingerprint, started_at, log_path),
            )
            con.execute(
                "INSERT INTO task_state (plan_name, key, fingerprint, status, done_run_id,"
                " attempts_total, updated_at) VALUES (?, ?, ?, ?, NULL, 1, ?)"
                " ON CONFLICT (plan_name, key) DO UPDATE SET"
                " attempts_total = CASE WHEN task_state.fingerprint = excluded.fingerprint"
                " THEN task_state.attempts_total + 1 ELSE 1 END,"
                " fingerprint = excluded.fingerprint, status = excluded.status,"
                " updated_at = excluded.updated_at",
                (plan_name, key, fingerprint, Status.RUNNING.value, started_at),
            )
            data = {"n": n, "fingerprint": fingerprint, "log_path": log_path}
            return _append_event(con, run_id, "attempt_started", key, data, started_at)

    def attempt_process(
        self,
        run_id: str,
        key: str,
        n: int,
        pid: int,
        pgid: int,
        proc_start_time: int,
        *,
        at: str | None = None,
    ) -> int:
        """Record the started process group, so that a later planrun can find and kill it."""
        with self._transaction() as con:
            cur = con.execute(
                "UPDATE attempts SET pid = ?, pgid = ?, proc_start_time = ?"
                " WHERE run_id = ? AND key = ? AND n = ?",
                (pid, pgid, proc_start_time, run_id, key, n),
            )
            _require(cur.rowcount == 1, f"attempt_process: unknown attempt {key}#{n}")
            data = {"n": n, "pid": pid, "pgid": pgid, "proc_start_time": proc_start_time}
            return _append_event(con, run_id, "attempt_process", key, data, at or utc_now())

    def attempt_finished(
        self,
        run_id: str,
        key: str,
        n: int,
        outcome: Outcome,
        ended_at: str,
        exit_code: int | None = None,
        signal: int | None = None,
        reason: str = "",
        tail: Sequence[str] = (),
        usage: Mapping[str, Any] | None = None,
    ) -> int:
        """Close an open attempt. Finishing an unknown or already closed one: InternalError."""
        usage_json = None if usage is None else _dumps(dict(usage))
        with self._transaction() as con:
            cur = con.execute(
                "UPDATE attempts SET outcome = ?, ended_at = ?, exit_code = ?, signal = ?,"
                " reason = ?, tail_json = ?, usage_json = ?"
                " WHERE run_id = ? AND key = ? AND n = ? AND ended_at IS NULL",
                (
                    outcome.value,
                    ended_at,
                    exit_code,
                    signal,
                    reason,
                    _dumps(list(tail)),
                    usage_json,
                    run_id,
                    key,
                    n,
                ),
            )
            _require(cur.rowcount == 1, f"attempt_finished: no open attempt {key}#{n}")
            data = {
                "n": n,
                "outcome": outcome.value,
                "exit_code": exit_code,
                "signal": signal,
                "reason": reason,
            }
            return _append_event(con, run_id, "attempt_finished", key, data, ended_at)

    def task_updated(
        self,
        run_id: str,
        key: str,
        status: Status,
        reason: str = "",
        *,
        at: str | None = None,
        fingerprint: str | None = None,
        attempts: int | None = None,
        branch: str | None = None,
        base_commit: str | None = None,
        landed_commit: str | None = None,
        diffstat: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> int:
        """Set a task's status in a run (creating its row); None fields stay as they were.

        Statuses about the task's own work (running, retrying, needs_input, in_review,
        failed, cancelled) are mirrored into task_state when it has a row. DONE here only
        records the run's view (e.g. "already done in run X"); only :meth:`task_done` makes
        a task durably done.
        """
        at = at or utc_now()
        params = {
            "run_id": run_id,
            "key": key,
            "status": status.value,
            "reason": reason,
            "fingerprint": fingerprint,
            "attempts": attempts,
            "branch": branch,
            "base_commit": base_commit,
            "landed_commit": landed_commit,
            "diffstat": diffstat,
            "data": None if data is None else _dumps(dict(data)),
            "at": at,
        }
        with self._transaction() as con:
            plan_name = self._plan_of(con, run_id)
            _upsert_task(con, params)
            if status in _MIRRORED:
                con.execute(
                    "UPDATE task_state SET status = ?, updated_at = ?"
                    " WHERE plan_name = ? AND key = ?",
                    (status.value, at, plan_name, key),
                )
            payload = {"status": status.value, "reason": reason}
            return _append_event(con, run_id, "task_status", key, payload, at)

    def task_done(
        self,
        plan_name: str,
        run_id: str,
        key: str,
        fingerprint: str,
        *,
        at: str | None = None,
        reason: str = "",
        branch: str | None = None,
        base_commit: str | None = None,
        landed_commit: str | None = None,
        diffstat: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> int:
        """Make ``key`` durably done with ``fingerprint``: task row, task_state and event at once.

        task_state becomes DONE with ``done_run_id = run_id`` and ``attempts_total = 0``
        (the attempt budget starts afresh if the task is ever forced to run again).
        ``plan_name`` must be the run's plan (InternalError otherwise).
        """
        at = at or utc_now()
        params = {
            "run_id": run_id,
            "key": key,
            "status": Status.DONE.value,
            "reason": reason,
            "fingerprint": fingerprint,
            "attempts": None,
            "branch": branch,
            "base_commit": base_commit,
            "landed_commit": landed_commit,
            "diffstat": diffstat,
            "data": None if data is None else _dumps(dict(data)),
            "at": at,
        }
        with self._transaction() as con:
            run_plan = self._plan_of(con, run_id)
            _require(run_plan == plan_name, f"task_done: run {run_id!r} is of plan {run_plan!r}")
            _upsert_task(con, params)
            con.execute(
                "INSERT INTO task_state (plan_name, key, fingerprint, status, done_run_id,"
                " attempts_total, updated_at) VALUES (?, ?, ?, ?, ?, 0, ?)"
                " ON CONFLICT (plan_name, key) DO UPDATE SET"
                " fingerprint = excluded.fingerprint, status = excluded.status,"
                " done_run_id = excluded.done_run_id, attempts_total = 0,"
                " updated_at = excluded.updated_at",
                (plan_name, key, fingerprint, Status.DONE.value, run_id, at),
            )
            payload = {"fingerprint": fingerprint, "branch": branch, "landed_commit": landed_commit}
            return _append_event(con, run_id, "task_done", key, payload, at)

    def reset_attempts(self, run_id: str, keys: Iterable[str], *, at: str | None = None) -> int:
        """Give ``keys`` of the run's plan a fresh attempt budget (--force, --rerun-failed)."""
        at = at or utc_now()
        wanted = sorted(set(keys))
        with self._transaction() as con:
            plan_name = self._plan_of(con, run_id)
            con.executemany(
                "UPDATE task_state SET attempts_total = 0, updated_at = ?"
                " WHERE plan_name = ? AND key = ?",
                [(at, plan_name, key) for key in wanted],
            )
            return _append_event(con, run_id, "attempts_reset", None, {"keys": wanted}, at)

    def mark_interrupted(
        self,
        run_id: str,
        key: str,
        n: int,
        ended_at: str,
        reason: str = "planrun exited during the attempt",
    ) -> int:
        """Close an attempt left open by a planrun that died, with outcome ``interrupted``.

        Call it once the attempt's process group is known dead (see :meth:`open_attempts`).
        The event goes to the attempt's own run. An unknown or closed attempt: InternalError.
        """
        with self._transaction() as con:
            cur = con.execute(
                "UPDATE attempts SET outcome = ?, ended_at = ?, reason = ?"
                " WHERE run_id = ? AND key = ? AND n = ? AND ended_at IS NULL",
                (Outcome.INTERRUPTED.value, ended_at, reason, run_id, key, n),
            )
            _require(cur.rowcount == 1, f"mark_interrupted: no open attempt {key}#{n}")
            data = {"n": n, "reason": reason}
            return _append_event(con, run_id, "attempt_interrupted", key, data, ended_at)

    def set_journal_seq(self, run_id: str, seq: int) -> None:
        """Remember that the run's journal records up to ``seq`` are in the store.

        Bookkeeping, not a state change: no event. Call it inside the :meth:`batch` that
        applied those records, so both commit together.
        """
        with self._transaction() as con:
            cur = con.execute("UPDATE runs SET journal_seq = ? WHERE id = ?", (seq, run_id))
            _require(cur.rowcount == 1, f"set_journal_seq: unknown run {run_id!r}")

    def _plan_of(self, con: sqlite3.Connection, run_id: str) -> str:
        plan = self._plans.get(run_id)
        if plan is None:
            plan = self._plans[run_id] = _plan_of(con, run_id)
        return plan


# ---------------------------------------------------------------- write helpers


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise InternalError(message)


#: One encoder for every stored JSON value (``json.dumps`` with options builds one per call).
_dumps = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode


def _plan_of(con: sqlite3.Connection, run_id: str) -> str:
    row = con.execute("SELECT plan_name FROM runs WHERE id = ?", (run_id,)).fetchone()
    if row is None:
        raise InternalError(f"unknown run {run_id!r}")
    return str(row[0])


def _insert_event(
    con: sqlite3.Connection, run_id: str, kind: str, key: str | None, payload: str, at: str
) -> int:
    cur = con.execute(
        "INSERT INTO events (run_id, at, kind, key, data_json) VALUES (?, ?, ?, ?, ?)",
        (run_id, at, kind, key, payload),
    )
    seq = cur.lastrowid
    if seq is None:
        raise InternalError("the events table returned no seq")
    return seq


def _append_event(
    con: sqlite3.Connection,
    run_id: str,
    kind: str,
    key: str | None,
    data: Mapping[str, Any],
    at: str,
) -> int:
    return _insert_event(con, run_id, kind, key, _dumps(dict(data)), at)


def _upsert_task(con: sqlite3.Connection, params: Mapping[str, Any]) -> None:
    """Insert or update a run's task row; None parameters keep the stored values."""
    con.execute(
        "INSERT INTO tasks (run_id, key, status, reason, fingerprint, attempts, branch,"
        " base_commit, landed_commit, diffstat, data_json, updated_at)"
        " VALUES (:run_id, :key, :status, :reason, :fingerprint, coalesce(:attempts, 0),"
        " :branch, :base_commit, :landed_commit, :diffstat, coalesce(:data, '{}'), :at)"
        " ON CONFLICT (run_id, key) DO UPDATE SET status = excluded.status,"
        " reason = excluded.reason,"
        " fingerprint = coalesce(excluded.fingerprint, tasks.fingerprint),"
        " attempts = coalesce(:attempts, tasks.attempts),"
        " branch = coalesce(excluded.branch, tasks.branch),"
        " base_commit = coalesce(excluded.base_commit, tasks.base_commit),"
        " landed_commit = coalesce(excluded.landed_commit, tasks.landed_commit),"
        " diffstat = coalesce(excluded.diffstat, tasks.diffstat),"
        " data_json = coalesce(:data, tasks.data_json),"
        " updated_at = excluded.updated_at",
        params,
    )
