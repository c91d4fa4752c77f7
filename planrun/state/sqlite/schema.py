"""The SQLite store's tables, how a file is marked as planrun's, and how an older one is
brought up to date.

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
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from planrun.errors import StoreError
from planrun.state.sqlite.connection import MOVE_ASIDE

APPLICATION_ID = 0x506C526E  # "PlRn": marks a file as a planrun state store
SCHEMA_VERSION = 2

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

#: Each schema change since version 1: the statements that bring a store from the version
#: before it, run by writers only (readers of an older store never need the new columns).
_MIGRATIONS: dict[int, str] = {
    2: "ALTER TABLE runs ADD COLUMN journal_seq INTEGER NOT NULL DEFAULT 0;",
}


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


def check_version(path: Path, version: int) -> None:
    """Refuse a store this planrun cannot read: written by a newer one, or unversioned."""
    if version > SCHEMA_VERSION:
        raise StoreError(
            str(path),
            f"was written by a newer planrun (schema {version}; this planrun reads"
            f" up to {SCHEMA_VERSION})",
            "upgrade planrun, or " + MOVE_ASIDE,
        )
    if version < 1:
        raise StoreError(str(path), "has planrun's id but no schema version", MOVE_ASIDE)


def migrate(con: sqlite3.Connection) -> None:
    """Bring a writable store to SCHEMA_VERSION, one version per transaction."""
    version = int(con.execute("PRAGMA user_version").fetchone()[0])
    for target in range(version + 1, SCHEMA_VERSION + 1):
        con.executescript(
            f"BEGIN IMMEDIATE;{_MIGRATIONS[target]}PRAGMA user_version = {target:d};COMMIT;"
        )
