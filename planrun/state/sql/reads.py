"""What an SQL store reads back: runs, tasks, attempts, events and task_state, as the
row dataclasses of :mod:`planrun.state.store`.

Each read is one statement on the shared connection (:class:`SQLConnection`); it sees
every committed write and never a half one, so a reader works while an apply writes.
Runs are ordered by ``rowid``: the order they began in (SQLite's implicit row id; an
identity column of that name in PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import replace

from planrun.core.outcomes import Outcome
from planrun.state.sql.base import SQLConnection
from planrun.state.sql.rows import (
    attempt_brief,
    attempt_row,
    event_row,
    past_task,
    planned,
    run_row,
    task_brief,
    task_row,
    task_state_row,
)
from planrun.state.store import (
    RUN_PLAN_EVENT,
    AttemptRow,
    EventRow,
    PastAttempt,
    PastTask,
    RunOverview,
    RunRow,
    TaskRow,
    TaskStateRow,
)


class SQLReads(SQLConnection):
    """The read side of an SQL store (:class:`planrun.state.store.StoreReader`)."""

    def last_run(self, plan_name: str | None = None) -> RunRow | None:
        """The most recently begun run (of ``plan_name``, or of any plan), or None."""
        if plan_name is None:
            rows = self._query("SELECT * FROM runs ORDER BY rowid DESC LIMIT 1", ())
        else:
            rows = self._query(
                "SELECT * FROM runs WHERE plan_name = ? ORDER BY rowid DESC LIMIT 1",
                (plan_name,),
            )
        return run_row(rows[0]) if rows else None

    def runs(self, plan_name: str) -> list[RunRow]:
        """Every run of ``plan_name``, oldest first."""
        rows = self._query("SELECT * FROM runs WHERE plan_name = ? ORDER BY rowid", (plan_name,))
        return [run_row(r) for r in rows]

    def run(self, run_id: str) -> RunRow | None:
        """The run ``run_id``, or None."""
        rows = self._query("SELECT * FROM runs WHERE id = ?", (run_id,))
        return run_row(rows[0]) if rows else None

    def journal_seq(self, run_id: str) -> int:
        """The last journal record of ``run_id`` applied to the store (0: none, or no run)."""
        rows = self._query("SELECT journal_seq FROM runs WHERE id = ?", (run_id,))
        return int(rows[0]["journal_seq"]) if rows else 0

    def tasks(self, run_id: str) -> list[TaskRow]:
        """The run's task rows, by key."""
        rows = self._query("SELECT * FROM tasks WHERE run_id = ? ORDER BY key", (run_id,))
        return [task_row(r) for r in rows]

    def attempts(self, run_id: str, key: str | None = None) -> list[AttemptRow]:
        """The run's attempts (of ``key`` only, if given), by key then n."""
        if key is None:
            rows = self._query("SELECT * FROM attempts WHERE run_id = ? ORDER BY key, n", (run_id,))
        else:
            rows = self._query(
                "SELECT * FROM attempts WHERE run_id = ? AND key = ? ORDER BY n", (run_id, key)
            )
        return [attempt_row(r) for r in rows]

    def events(self, run_id: str, after_seq: int = 0) -> list[EventRow]:
        """The run's events with ``seq > after_seq``, in order (tail with the last seq seen)."""
        rows = self._query(
            "SELECT * FROM events WHERE run_id = ? AND seq > ? ORDER BY seq",
            (run_id, after_seq),
        )
        return [event_row(r) for r in rows]

    def plan_events(self, plan_name: str, kinds: Collection[str]) -> list[EventRow]:
        """The events of these ``kinds`` of every run of the plan, runs in the order they
        began, each run's in order: one query, where reading each run's events and
        keeping a few kinds read and decoded every event the plan ever had."""
        wanted = sorted(kinds)
        if not wanted:
            return []
        marks = ", ".join("?" for _ in wanted)
        rows = self._query(
            "SELECT e.* FROM events AS e JOIN runs AS r ON r.id = e.run_id"
            f" WHERE r.plan_name = ? AND e.kind IN ({marks}) ORDER BY r.rowid, e.seq",
            (plan_name, *wanted),
        )
        return [event_row(r) for r in rows]

    def task_states(self, plan_name: str) -> dict[str, TaskStateRow]:
        """What is durably known about each of the plan's tasks, by key."""
        rows = self._query(
            "SELECT * FROM task_state WHERE plan_name = ? ORDER BY key", (plan_name,)
        )
        return {r["key"]: task_state_row(r) for r in rows}

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
        return [attempt_row(r) for r in rows]

    def past_attempts(self, run_ids: Sequence[str]) -> list[PastAttempt]:
        """Every attempt of ``run_ids`` (its run, key, n, fingerprint and outcome only)."""
        if not run_ids:
            return []
        marks = ", ".join("?" for _ in run_ids)
        rows = self._query(
            f"SELECT run_id, key, n, fingerprint, outcome FROM attempts WHERE run_id IN ({marks})",
            tuple(run_ids),
        )
        outcomes = {o.value: o for o in Outcome}
        return [
            PastAttempt(r["run_id"], r["key"], r["n"], r["fingerprint"], outcomes.get(r["outcome"]))
            for r in rows
        ]

    def past_tasks(self, run_id: str) -> dict[str, PastTask]:
        """The run's task rows by key: fingerprint, landed commit and per-field hashes."""
        rows = self._query(
            "SELECT key, fingerprint, landed_commit, data_json FROM tasks WHERE run_id = ?",
            (run_id,),
        )
        return {r["key"]: past_task(r) for r in rows}

    def overview(self, run: RunRow) -> RunOverview:
        """A few narrow statements in one read transaction; only the ``kind`` of each
        task's data is decoded, and only when the data names one."""
        with self._read_transaction() as con:
            ended = con.execute(
                "SELECT status, ended_at FROM runs WHERE id = ?", (run.id,)
            ).fetchone()
            tasks = con.execute(
                "SELECT key, status, reason, attempts, updated_at, data_json FROM tasks"
                " WHERE run_id = ? ORDER BY key",
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
        if ended is not None:
            run = replace(run, status=ended["status"], ended_at=ended["ended_at"])
        return RunOverview(
            run,
            [task_brief(t) for t in tasks],
            [attempt_brief(a) for a in attempts],
            [] if plan is None else planned(plan["data_json"]),
        )
