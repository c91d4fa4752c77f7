"""What an SQL store writes: the write side of :class:`planrun.state.store.StoreWriter`.

Each write method is exactly one transaction (or a share of the enclosing
:meth:`~planrun.state.sql.base.SQLConnection.batch`) and appends exactly one row to
``events``, so the journal has no gaps and ``seq`` orders every state change; it returns
that event's ``seq``. The protocol says what each write means; the docstrings here say how
it lands in the tables (:mod:`planrun.state.sqlite.schema`, :mod:`planrun.state.postgres.
schema`: the same tables in both).

Events the write methods append themselves (do not record these kinds again):
``run_started``, ``run_ended``, ``attempt_started``, ``attempt_process``,
``attempt_finished``, ``attempt_interrupted``, ``task_status``, ``task_done``,
``attempts_reset``. :meth:`SQLWrites.happened` appends any other kind (output, hook, ...).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from planrun.core.outcomes import Outcome, Status
from planrun.errors import InternalError
from planrun.state.records import AttemptEnd, AttemptProcess, AttemptStart, TaskDone, TaskUpdate
from planrun.state.sql.base import SQLConnection, Tx
from planrun.state.sql.rows import MIRRORED, dumps, json_or_none, require, run_params, task_params
from planrun.state.store import AttemptRow, RunRow, utc_now


class SQLWrites(SQLConnection):
    """The write side of an SQL store. See the module docstring."""

    def run_started(self, run: RunRow) -> int:
        """Insert the run's row."""
        with self._transaction() as con:
            con.execute(
                "INSERT INTO runs (id, plan_name, plan_path, plan_sha256, planrun_version,"
                " started_at, ended_at, status, pid, host, args_json)"
                " VALUES (:id, :plan_name, :plan_path, :plan_sha256, :planrun_version,"
                " :started_at, :ended_at, :status, :pid, :host, :args_json)",
                run_params(run),
            )
            data = {"plan_name": run.plan_name, "plan_sha256": run.plan_sha256}
            return self._event(con, run.id, "run_started", None, data, run.started_at)

    def run_ended(self, run_id: str, status: str, at: str) -> int:
        """Set the run row's status and ``ended_at``."""
        with self._transaction() as con:
            cur = con.execute(
                "UPDATE runs SET status = ?, ended_at = ? WHERE id = ?", (status, at, run_id)
            )
            require(cur.rowcount == 1, f"run_ended: unknown run {run_id!r}")
            return self._event(con, run_id, "run_ended", None, {"status": status}, at)

    def attempt_started(self, run_id: str, start: AttemptStart) -> int:
        """Upsert the run's task row as running, insert the attempt, count it in task_state."""
        params = {**vars(start), "run_id": run_id, "running": Status.RUNNING.value}
        with self._transaction() as con:
            params["plan_name"] = self._plan_of(con, run_id)
            con.execute(
                "INSERT INTO tasks (run_id, key, fingerprint, status, reason, attempts,"
                " updated_at) VALUES (:run_id, :key, :fingerprint, :running, '', :n, :at)"
                " ON CONFLICT (run_id, key) DO UPDATE SET fingerprint = excluded.fingerprint,"
                " status = excluded.status, reason = '',"
                " attempts = CASE WHEN excluded.attempts > tasks.attempts"
                " THEN excluded.attempts ELSE tasks.attempts END,"
                " updated_at = excluded.updated_at",
                params,
            )
            con.execute(
                "INSERT INTO attempts (run_id, key, n, fingerprint, started_at, log_path)"
                " VALUES (:run_id, :key, :n, :fingerprint, :at, :log_path)",
                params,
            )
            con.execute(
                "INSERT INTO task_state (plan_name, key, fingerprint, status, done_run_id,"
                " attempts_total, updated_at) VALUES (:plan_name, :key, :fingerprint,"
                " :running, NULL, 1, :at)"
                " ON CONFLICT (plan_name, key) DO UPDATE SET"
                " attempts_total = CASE WHEN task_state.fingerprint = excluded.fingerprint"
                " THEN task_state.attempts_total + 1 ELSE 1 END,"
                " fingerprint = excluded.fingerprint, status = excluded.status,"
                " updated_at = excluded.updated_at",
                params,
            )
            data = {"n": start.n, "fingerprint": start.fingerprint, "log_path": start.log_path}
            return self._event(con, run_id, "attempt_started", start.key, data, start.at)

    def attempt_process(self, run_id: str, process: AttemptProcess) -> int:
        """Set the attempt row's pid, pgid and proc_start_time."""
        p = process
        with self._transaction() as con:
            cur = con.execute(
                "UPDATE attempts SET pid = ?, pgid = ?, proc_start_time = ?"
                " WHERE run_id = ? AND key = ? AND n = ?",
                (p.pid, p.pgid, p.start_time, run_id, p.key, p.n),
            )
            require(cur.rowcount == 1, f"attempt_process: unknown attempt {p.key}#{p.n}")
            data = {"n": p.n, "pid": p.pid, "pgid": p.pgid, "proc_start_time": p.start_time}
            return self._event(con, run_id, "attempt_process", p.key, data, p.at or utc_now())

    def attempt_finished(self, run_id: str, end: AttemptEnd) -> int:
        """Close the open attempt row (``ended_at IS NULL``) with the end's fields."""
        params = {
            **vars(end),
            "run_id": run_id,
            "outcome": Outcome(end.outcome).value,
            "tail": dumps(list(end.tail)),
            "usage": json_or_none(end.usage),
        }
        with self._transaction() as con:
            cur = con.execute(
                "UPDATE attempts SET outcome = :outcome, ended_at = :at,"
                " exit_code = :exit_code, signal = :signal, reason = :reason,"
                " tail_json = :tail, usage_json = :usage"
                " WHERE run_id = :run_id AND key = :key AND n = :n AND ended_at IS NULL",
                params,
            )
            require(cur.rowcount == 1, f"attempt_finished: no open attempt {end.key}#{end.n}")
            data = {"n": end.n, "outcome": params["outcome"], "exit_code": end.exit_code}
            data.update(signal=end.signal, reason=end.reason)
            return self._event(con, run_id, "attempt_finished", end.key, data, end.at)

    def attempt_interrupted(
        self, attempt: AttemptRow, at: str, reason: str = "planrun exited during the attempt"
    ) -> int:
        """Close the open attempt row as ``interrupted``; the event goes to its own run."""
        a = attempt
        with self._transaction() as con:
            cur = con.execute(
                "UPDATE attempts SET outcome = ?, ended_at = ?, reason = ?"
                " WHERE run_id = ? AND key = ? AND n = ? AND ended_at IS NULL",
                (Outcome.INTERRUPTED.value, at, reason, a.run_id, a.key, a.n),
            )
            require(cur.rowcount == 1, f"attempt_interrupted: no open attempt {a.key}#{a.n}")
            data = {"n": a.n, "reason": reason}
            return self._event(con, a.run_id, "attempt_interrupted", a.key, data, at)

    def task_updated(self, run_id: str, update: TaskUpdate) -> int:
        """Upsert the run's task row; mirror a status about the work into task_state."""
        params = _update_params(run_id, update)
        with self._transaction() as con:
            plan_name = self._plan_of(con, run_id)
            _upsert_task(con, params)
            if update.status in MIRRORED:
                con.execute(_MIRROR_STATUS, _mirror(update, params, plan_name))
            kind, key, payload, at = _status_event(update, params)
            return self._insert_event(con, run_id, kind, key, payload, at)

    def tasks_updated(self, run_id: str, updates: Sequence[TaskUpdate]) -> None:
        """:meth:`task_updated` for each, in order, as three ``executemany``: the task rows
        (a key twice: the last update wins, as one by one), the task_state mirrors, then
        the events, in the updates' order."""
        if not updates:
            return
        pairs = [(u, _update_params(run_id, u)) for u in updates]
        with self._transaction() as con:
            plan_name = self._plan_of(con, run_id)
            con.executemany(_UPSERT_TASK, [params for _, params in pairs])
            mirrored = [
                _mirror(u, params, plan_name) for u, params in pairs if u.status in MIRRORED
            ]
            if mirrored:
                con.executemany(_MIRROR_STATUS, mirrored)
            self._insert_events(con, run_id, [_status_event(u, params) for u, params in pairs])

    def task_done(self, run_id: str, done: TaskDone) -> int:
        """Upsert the run's task row as done and task_state as DONE, in one transaction.
        ``done.plan_name`` must be the run's plan (InternalError otherwise)."""
        params = task_params(run_id, done, Status.DONE, done.fingerprint)
        params.update(plan_name=done.plan_name, done=Status.DONE.value)
        with self._transaction() as con:
            run_plan = self._plan_of(con, run_id)
            wrong_plan = f"task_done: run {run_id!r} is of plan {run_plan!r}"
            require(run_plan == done.plan_name, wrong_plan)
            _upsert_task(con, params)
            con.execute(
                "INSERT INTO task_state (plan_name, key, fingerprint, status, done_run_id,"
                " attempts_total, updated_at) VALUES (:plan_name, :key, :fingerprint, :done,"
                " :run_id, 0, :at)"
                " ON CONFLICT (plan_name, key) DO UPDATE SET"
                " fingerprint = excluded.fingerprint, status = excluded.status,"
                " done_run_id = excluded.done_run_id, attempts_total = 0,"
                " updated_at = excluded.updated_at",
                params,
            )
            data = {"fingerprint": done.fingerprint, "branch": done.branch}
            data["landed_commit"] = done.landed_commit
            return self._event(con, run_id, "task_done", done.key, data, params["at"])

    def attempts_reset(self, run_id: str, keys: Iterable[str], *, at: str | None = None) -> int:
        """Zero ``attempts_total`` in the task_state rows of ``keys`` that exist."""
        at = at or utc_now()
        wanted = sorted(set(keys))
        with self._transaction() as con:
            plan_name = self._plan_of(con, run_id)
            con.executemany(
                "UPDATE task_state SET attempts_total = 0, updated_at = ?"
                " WHERE plan_name = ? AND key = ?",
                [(at, plan_name, key) for key in wanted],
            )
            return self._event(con, run_id, "attempts_reset", None, {"keys": wanted}, at)

    def happened(
        self,
        run_id: str,
        kind: str,
        key: str | None = None,
        data: Mapping[str, Any] | None = None,
        *,
        at: str | None = None,
    ) -> int:
        """Append one event (``data`` must be JSON-serialisable)."""
        payload = dumps(dict(data or {}))
        with self._transaction() as con:
            return self._insert_event(con, run_id, kind, key, payload, at or utc_now())

    def journal_applied(self, run_id: str, seq: int) -> None:
        """Set the run row's ``journal_seq``."""
        with self._transaction() as con:
            cur = con.execute("UPDATE runs SET journal_seq = ? WHERE id = ?", (seq, run_id))
            require(cur.rowcount == 1, f"journal_applied: unknown run {run_id!r}")

    def _plan_of(self, con: Tx, run_id: str) -> str:
        """The run's plan name (cached: it never changes); InternalError for no such run."""
        plan = self._plans.get(run_id)
        if plan is None:
            row = con.execute("SELECT plan_name FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise InternalError(f"unknown run {run_id!r}")
            plan = self._plans[run_id] = str(row["plan_name"])
        return plan

    def _event(
        self, con: Tx, run_id: str, kind: str, key: str | None, data: Mapping[str, Any], at: str
    ) -> int:
        return self._insert_event(con, run_id, kind, key, dumps(dict(data)), at)


# ---------------------------------------------------------------- write helpers


def _update_params(run_id: str, update: TaskUpdate) -> dict[str, Any]:
    params = task_params(run_id, update, update.status, update.fingerprint)
    params["attempts"] = update.attempts
    return params


def _mirror(update: TaskUpdate, params: Mapping[str, Any], plan_name: str) -> tuple[str, ...]:
    """The parameters of :data:`_MIRROR_STATUS` for ``update``."""
    return (update.status.value, params["at"], plan_name, update.key)


def _status_event(update: TaskUpdate, params: Mapping[str, Any]) -> tuple[str, str, str, str]:
    """The ``task_status`` event of ``update``: (kind, key, payload, at)."""
    data = {"status": update.status.value, "reason": update.reason}
    return "task_status", update.key, dumps(data), params["at"]


def _upsert_task(con: Tx, params: Mapping[str, Any]) -> None:
    """Insert or update a run's task row; None parameters keep the stored values."""
    con.execute(_UPSERT_TASK, params)


#: A status about the task's work, mirrored into its task_state row (if it has one).
_MIRROR_STATUS = "UPDATE task_state SET status = ?, updated_at = ? WHERE plan_name = ? AND key = ?"

#: Insert or update a run's task row; None parameters keep the stored values.
_UPSERT_TASK = (
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
    " updated_at = excluded.updated_at"
)
