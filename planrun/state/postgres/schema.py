"""The PostgreSQL store's tables, how a database is marked as planrun's, and how an older
one is brought up to date.

The tables are SQLite's (:mod:`planrun.state.sql.tables`, documented in
:mod:`planrun.state.sqlite.schema`), column for column, so that the shared statements of
:mod:`planrun.state.sql` run on both; the dialect's words:

- ``runs.rowid``: an identity column, the order runs began in (SQLite's implicit rowid);
- ``events.seq``: an identity column; each write takes it under a lock on its run's row,
  so that within a run ``seq`` grows in commit order (a sequence alone does not:
  concurrent transactions commit in any order);
- integers that may outgrow 32 bits (``proc_start_time``, ``seq``, ``journal_seq``) are
  ``bigint``; times stay ISO-8601 text and JSON stays text (:mod:`planrun.state.sql.rows`).

A database is planrun's when it has the table ``planrun_store`` with one row naming the
application and the schema version (SQLite's ``application_id`` and ``user_version``).
"""

from __future__ import annotations

from planrun.errors import StoreError
from planrun.state.sql.tables import tables

APPLICATION = "planrun"
SCHEMA_VERSION = 1
MARK_TABLE = "planrun_store"
#: a lock key that only schema creation and migration take (pg_advisory_xact_lock)
SCHEMA_LOCK = 0x506C526E  # "PlRn", as SQLite's application_id

OWN_DATABASE = (
    "give planrun a database of its own (for example `CREATE DATABASE planrun`) and point"
    " the URL at it; planrun never deletes or changes tables it did not create"
)

MARK = """
CREATE TABLE planrun_store (
    application TEXT PRIMARY KEY CHECK (application = 'planrun'),
    schema_version INTEGER NOT NULL,
    created_at TEXT NOT NULL
);
COMMENT ON TABLE planrun_store IS 'marks this database as a planrun state store';
"""
SCHEMA = MARK + tables(
    big="BIGINT",
    seq="BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
    rowid="    rowid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,\n",
    keyed="",
)

#: Each schema change since version 1: the statements that bring a store from the version
#: before it (none yet; the shape is SQLite's ``_MIGRATIONS``).
MIGRATIONS: dict[int, str] = {}


def check_version(where: str, version: int) -> None:
    """Refuse a store this planrun cannot read: written by a newer one, or unversioned."""
    if version > SCHEMA_VERSION:
        raise StoreError(
            where,
            f"was written by a newer planrun (schema {version}; this planrun reads"
            f" up to {SCHEMA_VERSION})",
            "upgrade planrun, or " + OWN_DATABASE,
        )
    if version < 1:
        raise StoreError(where, "has planrun's mark but no schema version", OWN_DATABASE)
