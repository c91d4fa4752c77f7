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
from planrun.state.sql.tables import tables
from planrun.state.sqlite.connection import MOVE_ASIDE

APPLICATION_ID = 0x506C526E  # "PlRn": marks a file as a planrun state store
SCHEMA_VERSION = 2

_SCHEMA = tables(
    big="INTEGER", seq="INTEGER PRIMARY KEY AUTOINCREMENT", rowid="", keyed=" WITHOUT ROWID"
)

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
