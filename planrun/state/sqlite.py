"""The durable state store: one SQLite file, ``<state_dir>/state.db``, in WAL mode.

Durability. ``journal_mode=WAL`` with ``synchronous=FULL``: every commit fsyncs the WAL, so
a write method that returned survives SIGKILL *and* power loss (SPEC §5: "a task is done only
once its success is durable"; an attempt is recorded before its process starts). Each write
method is exactly one ``BEGIN IMMEDIATE … COMMIT`` transaction and appends exactly one row to
``events``, so the journal has no gaps and ``seq`` orders every state change. WAL lets
``planrun status`` read (``Store.open(path, readonly=True)``) while an apply writes.
During a run the scheduler's records reach the store through :mod:`planrun.state.journal`
(a file per run, applied here in group commits), not one transaction each.

Safety. planrun never deletes, truncates or rebuilds a store it cannot read. ``Store.open``
refuses, with StoreError and advice, a file that is not SQLite, is corrupt
(``PRAGMA quick_check``), belongs to another application (``application_id``) or was
written by a newer planrun (``user_version``); those checks run on a read-only connection
first so that the file is left byte-for-byte as it was. A new store is built in a temporary
file and hard-linked into place, so ``state.db`` is either absent or complete.

Callers must hold the state folder's :class:`planrun.state.lock.StateLock` to write.
Methods are synchronous and short (one indexed statement or a few); a lock inside makes a
Store safe to share between threads (e.g. ``trio.to_thread.run_sync``).

Schema (version 2, ``application_id`` 0x506C526E, "PlRn"; a writer migrates a version 1
store when it opens it)::

    runs        id PK, plan_name, plan_path, plan_sha256, planrun_version, started_at,
                ended_at, status, pid, host, args_json, journal_seq
                                              one row per apply; journal_seq: the last of the
                                              run's journal records applied (planrun.state.journal)
    tasks       PK(run_id, key), fingerprint, status, reason, attempts, branch,
                base_commit, landed_commit, diffstat, data_json, updated_at
                                                                  a task as one run saw it
    attempts    PK(run_id, key, n), fingerprint, started_at, ended_at, outcome, exit_code,
                signal, reason, pid, pgid, proc_start_time, log_path, tail_json, usage_json
                                                                  open while ended_at IS NULL
    events      seq INTEGER PK AUTOINCREMENT, run_id, at, kind, key, data_json
                                                                  the journal, in commit order
    task_state  PK(plan_name, key), fingerprint, status, done_run_id, attempts_total,
                updated_at                              convergence across runs (TaskStateRow)

Events the write methods append themselves (do not record these kinds again):
``run_started``, ``run_ended``, ``attempt_started``, ``attempt_process``,
``attempt_finished``, ``attempt_interrupted``, ``task_status``, ``task_done``,
``attempts_reset``. ``record_event`` appends any other kind (output, hook, retry, ...).

Fault seam, FOR TESTS ONLY (:mod:`planrun.state.faults`): when ``PLANRUN_FAULT_AT=k`` is
set as a store opens, the process sends itself SIGKILL right after its k-th write: every
write method of a file-backed Store counts once (creating the schema does not; MemoryStore
never counts), and so does every record appended to a run's journal file, whose later
application to the store (``batch(counted=False)``) does not count again. Each write
appends one event, so once the next apply has replayed the journal, a fresh store killed
this way holds exactly events 1..k.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from planrun.atomic import ensure_private_dir, fsync_dir
from planrun.core.outcomes import Outcome, Status
from planrun.errors import InternalError, StoreError
from planrun.state.connect import MOVE_ASIDE as _MOVE_ASIDE
from planrun.state.connect import PERMISSIONS as _PERMISSIONS
from planrun.state.connect import connect as _connect
from planrun.state.connect import connect_reader, read_error
from planrun.state.faults import count_write, fault_at_from_env
from planrun.state.store import (
    AttemptRow,
    EventRow,
    JSONObject,
    RunRow,
    TaskRow,
    TaskStateRow,
    utc_now,
)

APPLICATION_ID = 0x506C526E  # "PlRn": marks a file as a planrun state store
SCHEMA_VERSION = 2
STATE_DB_NAME = "state.db"

Synchronous = Literal["FULL", "NORMAL"]

_MAGIC = b"SQLite format 3\x00"
_HEADER_SIZE = 100
_APP_ID_OFFSET = 68  # big-endian u32 in the database header
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

_SCHEMA = """
CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    plan_name TEXT NOT NULL,
    plan_path TEXT NOT NULL,
    plan_sha256 TEXT NOT NULL,
    planrun_version TEXT NOT NULL,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    status TEXT NOT NULL,
    pid INTEGER,
    host TEXT,
    args_json TEXT NOT NULL DEFAULT '[]',
    journal_seq INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX runs_by_plan ON runs(plan_name);
CREATE TABLE tasks (
    run_id TEXT NOT NULL REFERENCES runs(id),
    key TEXT NOT NULL,
    fingerprint TEXT,
    status TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    attempts INTEGER NOT NULL DEFAULT 0,
    branch TEXT,
    base_commit TEXT,
    landed_commit TEXT,
    diffstat TEXT,
    data_json TEXT NOT NULL DEFAULT '{}',
    updated_at TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
CREATE TABLE attempts (
    run_id TEXT NOT NULL,
    key TEXT NOT NULL,
    n INTEGER NOT NULL CHECK (n >= 1),
    fingerprint TEXT NOT NULL,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    outcome TEXT,
    exit_code INTEGER,
    signal INTEGER,
    reason TEXT NOT NULL DEFAULT '',
    pid INTEGER,
    pgid INTEGER,
    proc_start_time INTEGER,
    log_path TEXT NOT NULL,
    tail_json TEXT NOT NULL DEFAULT '[]',
    usage_json TEXT,
    PRIMARY KEY (run_id, key, n),
    FOREIGN KEY (run_id, key) REFERENCES tasks(run_id, key)
) WITHOUT ROWID;
CREATE INDEX attempts_open ON attempts(run_id) WHERE ended_at IS NULL;
CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL REFERENCES runs(id),
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    key TEXT,
    data_json TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX events_by_run ON events(run_id, seq);
CREATE TABLE task_state (
    plan_name TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status TEXT NOT NULL,
    done_run_id TEXT REFERENCES runs(id),
    attempts_total INTEGER NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (plan_name, key)
) WITHOUT ROWID;
"""


def create_schema(con: sqlite3.Connection) -> None:
    """Create planrun's tables, application_id and user_version in one transaction."""
    # PRAGMA values cannot be bound as parameters; these are our own integer constants.
    con.executescript(
        "BEGIN IMMEDIATE;"
        f"PRAGMA application_id = {APPLICATION_ID:d};"
        f"PRAGMA user_version = {SCHEMA_VERSION:d};"
        f"{_SCHEMA}"
        "COMMIT;"
    )


class Store:
    """planrun's state store over one SQLite connection. See the module docstring."""

    def __init__(
        self, con: sqlite3.Connection, path: str, *, readonly: bool, fault_at: int | None
    ) -> None:
        """Wrap a configured connection; use :meth:`open` (or ``MemoryStore()``)."""
        con.row_factory = sqlite3.Row
        self.path = path
        self.readonly = readonly
        #: read without locks (planrun.state.connect): a folder this process cannot write
        self.immutable = False
        self._con: sqlite3.Connection | None = con
        self._lock = threading.RLock()  # re-entered by writes inside batch()
        self._batch_writes: int | None = None  # writes waiting for the batch's commit
        self._fault_at = fault_at
        self._plans: dict[str, str] = {}  # run id -> plan name (never changes)

    # ------------------------------------------------------------ opening and closing

    @classmethod
    def open(
        cls,
        path: Path | str,
        *,
        readonly: bool = False,
        synchronous: Synchronous = "FULL",
    ) -> Store:
        """Open the store at ``path``, creating it (and its folder, 0700) when absent.

        With ``readonly=True`` the file is never created or written (``mode=ro``), and
        reading works while another process writes; in a folder this process cannot
        write, a store without a write-ahead log is read as it is (``immutable``, see
        :mod:`planrun.state.connect`). Raises StoreError when the file is missing
        (read-only), unreadable, not SQLite, corrupt, foreign or newer.
        ``synchronous="NORMAL"`` exists for benchmarks: commits then survive a crash of
        planrun but not of the machine.
        """
        path = Path(path)
        if readonly:
            if not path.exists():
                raise StoreError(
                    str(path),
                    "no state store here yet",
                    "run `planrun apply` first, or pass the right --state-dir",
                )
            _check_header(path)
            con, immutable = _connect_checked(path, quick_check=False)
            store = cls(con, str(path), readonly=True, fault_at=None)
            store.immutable = immutable
            return store
        fault_at = fault_at_from_env()
        if not path.exists():
            _create(path)
        _check_header(path)
        _connect_checked(path, quick_check=True)[0].close()
        con = _connect(path, readonly=False)
        try:
            _configure_writer(con, path, synchronous)
        except BaseException:
            con.close()
            raise
        return cls(con, str(path), readonly=False, fault_at=fault_at)

    def close(self) -> None:
        """Close the connection (checkpointing the WAL). Calling it again does nothing."""
        with self._lock:
            if self._con is not None:
                self._con.close()
                self._con = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ writes

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

    # ------------------------------------------------------------ queries

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
        run; kill those, then :meth:`mark_interrupted` each attempt.
        """
        rows = self._query(
            "SELECT a.* FROM attempts AS a JOIN runs AS r ON r.id = a.run_id"
            " WHERE r.plan_name = ? AND a.ended_at IS NULL ORDER BY r.rowid, a.key, a.n",
            (plan_name,),
        )
        return [_attempt_row(r) for r in rows]

    # ------------------------------------------------------------ internals

    def _plan_of(self, con: sqlite3.Connection, run_id: str) -> str:
        plan = self._plans.get(run_id)
        if plan is None:
            plan = self._plans[run_id] = _plan_of(con, run_id)
        return plan

    def _connection(self) -> sqlite3.Connection:
        if self._con is None:
            raise InternalError(f"state store {self.path} used after close()")
        return self._con

    @contextlib.contextmanager
    def batch(self, *, counted: bool = True) -> Iterator[None]:
        """Group commit: the writes made inside share one transaction and one fsync.

        All of them are durable when the block ends, or none is (StoreError). The journal's
        writer uses it to commit everything queued at once. A batch inside a batch joins it.
        ``counted=False``: its writes do not count for the fault seam (the journal applying
        records that its file already counted).
        """
        if self._batch_writes is not None:
            yield
            return
        with self._transaction(counted=counted) as con:
            self._batch_writes = 0
            try:
                yield
                writes = self._batch_writes
            finally:
                self._batch_writes = None
            del con
        if counted:
            for _ in range(writes - 1):  # the transaction itself counted one
                self._committed()

    @contextlib.contextmanager
    def _transaction(self, *, counted: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction; StoreError if it cannot be committed (nothing is then)."""
        if self.readonly:
            raise InternalError(f"state store {self.path} was opened read-only")
        if self._batch_writes is not None:  # inside batch(): its transaction commits
            with self._lock:
                self._batch_writes += 1
                yield self._connection()
            return
        with self._lock:
            con = self._connection()
            try:
                con.execute("BEGIN IMMEDIATE")
                try:
                    yield con
                    con.execute("COMMIT")
                except BaseException:
                    if con.in_transaction:
                        with contextlib.suppress(sqlite3.Error):
                            con.execute("ROLLBACK")
                    raise
            except sqlite3.IntegrityError as e:
                raise InternalError(f"state store rejected a write: {e}") from e
            except sqlite3.Error as e:
                raise StoreError(
                    self.path,
                    f"journal write failed: {e}",
                    "nothing after this point was recorded; free disk space or fix the"
                    " folder's permissions, then run apply again to resume",
                ) from e
        if counted:
            self._committed()

    def _committed(self) -> None:
        """The fault seam (tests only): SIGKILL after the k-th committed write."""
        count_write(self._fault_at)

    def _query(self, sql: str, params: Sequence[Any]) -> list[sqlite3.Row]:
        with self._lock:
            con = self._connection()
            try:
                return con.execute(sql, params).fetchall()
            except sqlite3.DatabaseError as e:
                raise read_error(self.path, e, immutable=self.immutable) from e


# ---------------------------------------------------------------- opening helpers


def _create(path: Path) -> None:
    """Build a complete new store beside ``path`` and hard-link it into place.

    If another process created ``path`` meanwhile, its file is kept and ours discarded.
    """
    try:
        ensure_private_dir(path.parent)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".new")
        os.close(fd)
    except OSError as e:
        raise StoreError(str(path), f"cannot create it ({e.strerror or e})", _PERMISSIONS) from e
    tmp = Path(tmp_name)
    try:
        con = sqlite3.connect(tmp, isolation_level=None)
        try:
            create_schema(con)
            con.execute("PRAGMA journal_mode = WAL")  # persistent: stored in the header
        finally:
            con.close()
        _fsync_file(tmp)
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
        fsync_dir(path.parent)
    except (OSError, sqlite3.Error) as e:
        raise StoreError(str(path), f"cannot create it ({e})", _PERMISSIONS) from e
    finally:
        tmp.unlink(missing_ok=True)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_header(path: Path) -> None:
    """Refuse, from the raw header bytes, a file that is not planrun's SQLite store."""
    try:
        with path.open("rb") as f:
            header = f.read(_HEADER_SIZE)
    except IsADirectoryError as e:
        raise StoreError(str(path), "is a folder, not a state store", _MOVE_ASIDE) from e
    except OSError as e:
        raise StoreError(str(path), f"cannot read it ({e.strerror or e})", _PERMISSIONS) from e
    if len(header) < _HEADER_SIZE or not header.startswith(_MAGIC):
        what = "is empty" if not header else "is not an SQLite database"
        raise StoreError(str(path), f"{what}, so not a planrun state store", _MOVE_ASIDE)
    app_id = int.from_bytes(header[_APP_ID_OFFSET : _APP_ID_OFFSET + 4], "big")
    if app_id != APPLICATION_ID:
        raise StoreError(
            str(path),
            f"is an SQLite database of another application (application_id {app_id:#x},"
            f" planrun's is {APPLICATION_ID:#x})",
            _MOVE_ASIDE,
        )


def _connect_checked(path: Path, *, quick_check: bool) -> tuple[sqlite3.Connection, bool]:
    """A read-only connection to a store whose version this planrun reads (and, with
    ``quick_check``, whose pages are sound), and whether it is immutable. Leaves the main
    file untouched."""
    con, immutable = connect_reader(path)
    try:
        _validate(con, path, quick_check=quick_check, immutable=immutable)
    except BaseException:
        con.close()
        raise
    return con, immutable


def _validate(con: sqlite3.Connection, path: Path, *, quick_check: bool, immutable: bool) -> None:
    try:
        con.execute("PRAGMA query_only = 1")
        version = int(con.execute("PRAGMA user_version").fetchone()[0])
        problems = ["ok"]
        if quick_check:
            problems = [row[0] for row in con.execute("PRAGMA quick_check(5)").fetchall()]
    except sqlite3.DatabaseError as e:
        raise read_error(path, e, immutable=immutable) from e
    _check_version(path, version)
    if problems != ["ok"]:
        raise StoreError(str(path), f"is corrupt ({'; '.join(problems)})", _MOVE_ASIDE)


def _check_version(path: Path, version: int) -> None:
    if version > SCHEMA_VERSION:
        raise StoreError(
            str(path),
            f"was written by a newer planrun (schema {version}; this planrun reads"
            f" up to {SCHEMA_VERSION})",
            "upgrade planrun, or " + _MOVE_ASIDE,
        )
    if version < 1:
        raise StoreError(str(path), "has planrun's id but no schema version", _MOVE_ASIDE)


#: Each schema change since version 1: the statements that bring a store from the version
#: before it, run by writers only (readers of an older store never need the new columns).
_MIGRATIONS: dict[int, str] = {
    2: "ALTER TABLE runs ADD COLUMN journal_seq INTEGER NOT NULL DEFAULT 0;",
}


def _migrate(con: sqlite3.Connection) -> None:
    """Bring a writable store to SCHEMA_VERSION, one version per transaction."""
    version = int(con.execute("PRAGMA user_version").fetchone()[0])
    for target in range(version + 1, SCHEMA_VERSION + 1):
        con.executescript(
            f"BEGIN IMMEDIATE;{_MIGRATIONS[target]}PRAGMA user_version = {target:d};COMMIT;"
        )


def _configure_writer(con: sqlite3.Connection, path: Path, synchronous: Synchronous) -> None:
    if synchronous not in ("FULL", "NORMAL"):
        raise InternalError(f"unknown synchronous level {synchronous!r}")
    try:
        mode = con.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        con.execute(f"PRAGMA synchronous = {synchronous}")
        con.execute("PRAGMA foreign_keys = ON")
        _migrate(con)
    except sqlite3.Error as e:
        raise StoreError(str(path), f"cannot open it for writing ({e})", _PERMISSIONS) from e
    if str(mode).lower() != "wal":
        raise StoreError(
            str(path),
            f"cannot use write-ahead logging (journal_mode is {mode})",
            "put the state folder on a local file system",
        )


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


# ---------------------------------------------------------------- row decoding


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
