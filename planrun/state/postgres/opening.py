"""Connecting to a PostgreSQL store, and checking (or creating) planrun's tables in it.

planrun never drops, truncates or changes tables it did not create. Opening refuses, with
StoreError and advice, a database that holds other tables but not planrun's mark
(:data:`~planrun.state.postgres.schema.MARK_TABLE`), a mark of another application, and a
schema written by a newer planrun. An empty database gets planrun's tables, all in one
transaction (PostgreSQL's DDL is transactional) under an advisory lock, so two planruns
opening it at once create them once. A read-only open creates nothing: its session's
transactions are ``READ ONLY``.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row

from planrun.errors import StoreError
from planrun.state.postgres.connection import REACH
from planrun.state.postgres.schema import (
    APPLICATION,
    MARK_TABLE,
    MIGRATIONS,
    OWN_DATABASE,
    SCHEMA,
    SCHEMA_LOCK,
    SCHEMA_VERSION,
    check_version,
)
from planrun.state.store import utc_now

CONNECT_TIMEOUT = 10  # seconds, unless the URL says otherwise (connect_timeout=...)
PgCon = psycopg.Connection[dict[str, Any]]


def connect(url: str, where: str) -> PgCon:
    """An autocommit connection whose rows are read by column name."""
    try:
        params: dict[str, Any] = conninfo_to_dict(url)
    except psycopg.Error as e:
        raise StoreError(
            where, f"is not a PostgreSQL URL ({e})", "write it as postgresql://USER@HOST:PORT/DB"
        ) from e
    params.setdefault("connect_timeout", CONNECT_TIMEOUT)
    params.setdefault("application_name", "planrun")
    try:
        return psycopg.connect(autocommit=True, row_factory=dict_row, **params)
    except psycopg.Error as e:
        raise StoreError(where, f"cannot connect ({_first_line(e)})", REACH) from e


def open_checked(url: str, where: str, *, readonly: bool) -> PgCon:
    """A connection to a database that holds planrun's tables at this version (created in
    an empty database unless ``readonly``)."""
    con = connect(url, where)
    try:
        if readonly:
            con.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
            _check_reader(con, where)
        else:
            _prepare_writer(con, where)
    except psycopg.Error as e:
        con.close()
        raise StoreError(where, f"cannot open it ({_first_line(e)})", _advice(e)) from e
    except BaseException:
        con.close()
        raise
    return con


def _check_reader(con: PgCon, where: str) -> None:
    version = _marked_version(con, where)
    if version is None:
        if _tables(con):
            raise _foreign(con, where)
        raise StoreError(
            where,
            "no state store here yet",
            "run `planrun apply` with this store first, or check the URL's database",
        )
    check_version(where, version)


def _prepare_writer(con: PgCon, where: str) -> None:
    """Create planrun's tables in an empty database, or bring older ones up to date; one
    transaction under the schema lock."""
    with con.transaction():
        con.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        version = _marked_version(con, where)
        if version is None:
            if _tables(con):
                raise _foreign(con, where)
            con.execute(SCHEMA)
            con.execute(
                "INSERT INTO planrun_store (application, schema_version, created_at)"
                " VALUES (%s, %s, %s)",
                (APPLICATION, SCHEMA_VERSION, utc_now()),
            )
            return
        check_version(where, version)
        for target in range(version + 1, SCHEMA_VERSION + 1):
            con.execute(MIGRATIONS[target])
            con.execute("UPDATE planrun_store SET schema_version = %s", (target,))


def _marked_version(con: PgCon, where: str) -> int | None:
    """The schema version of planrun's mark; None when the database has no mark."""
    found = con.execute("SELECT to_regclass(%s) IS NOT NULL AS marked", (MARK_TABLE,))
    row = found.fetchone()
    if row is None or not row["marked"]:
        return None
    marks = con.execute(f"SELECT application, schema_version FROM {MARK_TABLE}").fetchall()
    if [m["application"] for m in marks] != [APPLICATION]:
        raise StoreError(where, f"has a {MARK_TABLE} table that is not planrun's", OWN_DATABASE)
    return int(marks[0]["schema_version"])


def _tables(con: PgCon) -> list[str]:
    """Up to 5 tables (and views) of the schema planrun would create its tables in."""
    rows = con.execute(
        "SELECT table_name FROM information_schema.tables"
        " WHERE table_schema = current_schema() ORDER BY table_name LIMIT 5"
    ).fetchall()
    return [str(r["table_name"]) for r in rows]


def _foreign(con: PgCon, where: str) -> StoreError:
    return StoreError(
        where,
        f"is a database of another application (it has tables {', '.join(_tables(con))},"
        f" but not planrun's {MARK_TABLE})",
        OWN_DATABASE,
    )


def _advice(error: psycopg.Error) -> str:
    if isinstance(error, psycopg.errors.InsufficientPrivilege):
        return (
            "connect as the database's owner, or let this user create tables in it"
            " (`GRANT CREATE ON SCHEMA public TO <user>`)"
        )
    return REACH


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
