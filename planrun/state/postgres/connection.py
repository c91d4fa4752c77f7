"""The connection to a PostgreSQL store: psycopg 3's sync API, from whichever thread calls.

A store is one connection behind a lock (:class:`PgConnection`, the PostgreSQL dialect of
:class:`planrun.state.sql.base.SQLConnection`). The connection is in autocommit mode:
a read is one statement that sees every committed write; a write is one ``BEGIN …
COMMIT`` (psycopg's ``Connection.transaction()``) with ``synchronous_commit`` as the server
has it (on by default: the commit is on the server's disk when the write returns).
psycopg's async API needs asyncio; planrun is trio, so its writes run in worker threads,
as SQLite's do (docs/state.md).

The shared statements use SQLite's placeholders (``:name``, ``?``); :func:`translate`
turns them into psycopg's once per statement. Errors become planrun's: IntegrityError (a
write the schema rejects) and DataError (a value it cannot hold) are InternalError, a
bug; anything else (the server is down, the network, permissions) is StoreError naming
the store by its URL without the password (:func:`planrun.state.open.redacted`).
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

from planrun.errors import InternalError, StoreError
from planrun.state.open import redacted
from planrun.state.sql.base import Cursor, SQLConnection, Tx

#: what to do when the server cannot be reached or refuses
REACH = (
    "check that the PostgreSQL server is running and reachable at that address, and that"
    " the user may connect to that database and write to it"
)
_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


@functools.lru_cache(maxsize=512)
def translate(sql: str) -> str:
    """A statement with SQLite's placeholders, with psycopg's (``%(name)s``, ``%s``)."""
    return _NAMED.sub(r"%(\1)s", sql.replace("%", "%%")).replace("?", "%s")


class PgTx:
    """A psycopg connection as :class:`~planrun.state.sql.base.Tx`: SQLite's placeholders."""

    def __init__(self, con: psycopg.Connection[dict[str, Any]]) -> None:
        self.con = con

    def execute(self, sql: str, parameters: Any = None, /) -> Cursor:
        return self.con.execute(translate(sql), parameters)

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> object:
        with self.con.cursor() as cur:
            cur.executemany(translate(sql), parameters)
        return None


class PgConnection(SQLConnection):
    """The connection a PostgreSQL store's reads and writes share. See the module
    docstring."""

    def __init__(
        self,
        con: psycopg.Connection[dict[str, Any]],
        url: str,
        *,
        readonly: bool,
        fault_at: int | None,
    ) -> None:
        """Wrap a checked connection; use :meth:`planrun.state.postgres.PostgresStore.open`."""
        super().__init__(redacted(url), readonly=readonly, fault_at=fault_at)
        self._tx: PgTx | None = PgTx(con)

    def close(self) -> None:
        """Close the connection. Calling it again does nothing."""
        with self._lock:
            if self._tx is not None:
                self._tx.con.close()
                self._tx = None

    def _connection(self) -> PgTx:
        if self._tx is None:
            raise InternalError(f"state store {self.path} used after close()")
        return self._tx

    @contextlib.contextmanager
    def _write_transaction(self) -> Iterator[PgTx]:
        tx = self._connection()
        with self._translated_write_errors(), tx.con.transaction():
            yield tx

    def _insert_event(
        self, con: Tx, run_id: str, kind: str, key: str | None, payload: str, at: str
    ) -> int:
        """The event's seq is taken under a lock on its run's row (held to the commit), so
        that within a run seq order is commit order. ``NO KEY UPDATE`` does not wait for
        the key-share locks of the transaction's own foreign keys, nor deadlock on
        another writer's."""
        row = con.execute(
            "INSERT INTO events (run_id, at, kind, key, data_json)"
            " SELECT id, CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT)"
            " FROM runs WHERE id = ? FOR NO KEY UPDATE RETURNING seq",
            (at, kind, key, payload, run_id),
        ).fetchone()
        if row is None:
            raise InternalError(f"unknown run {run_id!r}")
        return int(row["seq"])

    def _insert_events(
        self, con: Tx, run_id: str, events: Sequence[tuple[str, str | None, str, str]]
    ) -> None:
        """As :meth:`_insert_event` for each, under the same lock on the run's row."""
        if not events:
            return
        if (
            con.execute("SELECT id FROM runs WHERE id = ? FOR NO KEY UPDATE", (run_id,)).fetchone()
            is None
        ):
            raise InternalError(f"unknown run {run_id!r}")
        con.executemany(
            "INSERT INTO events (run_id, at, kind, key, data_json) VALUES (?, ?, ?, ?, ?)",
            [(run_id, at, kind, key, payload) for kind, key, payload, at in events],
        )

    @contextlib.contextmanager
    def _translated_write_errors(self) -> Iterator[None]:
        try:
            yield
        except (psycopg.IntegrityError, psycopg.DataError) as e:
            raise InternalError(f"state store rejected a write: {e}") from e
        except psycopg.Error as e:
            raise StoreError(
                self.path,
                f"journal write failed: {e}",
                "nothing after this point was recorded; " + REACH + ", then run apply again"
                " to resume",
            ) from e

    def _query(self, sql: str, params: Sequence[Any]) -> list[Any]:
        """The rows of one read; StoreError if it fails."""
        with self._lock:
            tx = self._connection()
            try:
                return tx.execute(sql, params).fetchall()
            except psycopg.Error as e:
                raise read_error(self.path, e) from e

    @contextlib.contextmanager
    def _read_transaction(self) -> Iterator[PgTx]:
        """One ``REPEATABLE READ`` transaction: every statement sees the same moment (or
        the write transaction already open)."""
        with self._lock:
            tx = self._connection()
            if tx.con.info.transaction_status != TransactionStatus.IDLE:
                yield tx
                return
            try:
                with tx.con.transaction():
                    tx.con.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                    yield tx
            except psycopg.Error as e:
                raise read_error(self.path, e) from e


def read_error(where: str, error: psycopg.Error) -> StoreError:
    """What a failed read means."""
    return StoreError(where, f"cannot read it ({error})", REACH)
