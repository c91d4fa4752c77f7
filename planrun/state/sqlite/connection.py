"""Connections to the SQLite store: opening one, its transactions and reads, and what a
failed read means.

A store is one SQLite connection behind a lock (:class:`StoreConnection`, the SQLite
dialect of :class:`planrun.state.sql.base.SQLConnection`). Every write transaction is one
``BEGIN IMMEDIATE … COMMIT`` (:meth:`StoreConnection._write_transaction`), and every read
goes through :meth:`~StoreConnection._query`; both turn SQLite's errors into planrun's
(StoreError for the disk and the file, InternalError for a write the schema rejects: a
bug).

A read-only connection (``mode=ro``) to a WAL store still needs the ``-wal`` and ``-shm``
files beside it, and creates them when they are missing (SQLite 3.22+). In a folder the
reader cannot write (another user's store, a read-only mount) they cannot be created:
SQLite then refuses with SQLITE_READONLY_DIRECTORY (or SQLITE_CANTOPEN). When no ``-wal``
file is there, every committed change is in ``state.db`` itself (the last writer
checkpointed and removed it), so the store is read with ``immutable=1``: no locks and no
``-shm``, only the main file, left untouched. When a ``-wal`` file is there (a run is going
on, or one died), the store cannot be read safely without it and the reader is told so.

Only SQLite's own verdict (SQLITE_CORRUPT, SQLITE_NOTADB) makes a store "corrupt"; a store
that cannot be opened, locked or written is "cannot read it", with advice about
permissions. planrun never advises moving aside a store that is merely unwritable.
"""

from __future__ import annotations

import contextlib
import sqlite3
import urllib.parse
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from planrun.errors import InternalError, StoreError
from planrun.state.sql.base import SQLConnection, Tx

BUSY_TIMEOUT = 5.0  # seconds a statement waits for another connection's lock
MOVE_ASIDE = (
    "move it aside (for example `mv state.db state.db.bad`) and run again to start a fresh"
    " state store; planrun never deletes it"
)
PERMISSIONS = (
    "check that the state folder exists, is yours and is writable, and that the disk has room"
)
READ_ONLY_LIVE = (
    "its folder is not writable by you and holds a write-ahead log (a run is going on, or"
    " one died): run the command as the store's owner, or once its run has ended"
)
_CORRUPT = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})
_CANNOT_WRITE_BESIDE = frozenset({sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN})


def connect(path: Path, *, readonly: bool, immutable: bool = False) -> sqlite3.Connection:
    """A connection with no implicit transactions; ``mode=ro`` never creates or writes."""
    query = "mode=ro&immutable=1" if immutable else f"mode={'ro' if readonly else 'rw'}"
    uri = f"file:{urllib.parse.quote(str(path.absolute()))}?{query}"
    try:
        return sqlite3.connect(
            uri, uri=True, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT
        )
    except sqlite3.Error as e:
        raise StoreError(str(path), f"cannot open it ({e})", PERMISSIONS) from e


def connect_reader(path: Path) -> tuple[sqlite3.Connection, bool]:
    """A read-only connection to ``path`` and whether it is ``immutable`` (a store in a
    folder this process cannot write, with no write-ahead log). StoreError if it cannot be
    read at all."""
    con = connect(path, readonly=True)
    try:
        con.execute("PRAGMA user_version").fetchone()  # SQLite opens the files lazily
    except sqlite3.Error as e:
        con.close()
        if _errorcode(e) & 0xFF not in _CANNOT_WRITE_BESIDE:
            raise read_error(path, e) from e
        if Path(f"{path}-wal").exists():
            raise StoreError(str(path), f"cannot read it ({e})", READ_ONLY_LIVE) from e
        return connect(path, readonly=True, immutable=True), True
    return con, False


def read_error(path: Path | str, error: sqlite3.Error, *, immutable: bool = False) -> StoreError:
    """What a failed read of the store means: corrupt only when SQLite says so."""
    if _errorcode(error) & 0xFF in _CORRUPT:
        if immutable:  # read without locks: the owner may have been changing it
            return StoreError(
                str(path),
                f"changed while it was read without locks ({error})",
                "run the command again, or as the store's owner",
            )
        return StoreError(str(path), f"is corrupt ({error})", MOVE_ASIDE)
    return StoreError(str(path), f"cannot read it ({error})", PERMISSIONS)


def _errorcode(error: sqlite3.Error) -> int:
    code = getattr(error, "sqlite_errorcode", None)
    return code if isinstance(code, int) else 0


class StoreConnection(SQLConnection):
    """The connection a store's reads and writes share. See the module docstring."""

    def __init__(
        self, con: sqlite3.Connection, path: str, *, readonly: bool, fault_at: int | None
    ) -> None:
        """Wrap a configured connection; use :meth:`planrun.state.sqlite.Store.open`."""
        super().__init__(path, readonly=readonly, fault_at=fault_at)
        con.row_factory = sqlite3.Row
        #: read without locks (planrun.state.sqlite.connection): a folder this process cannot write
        self.immutable = False
        self._con: sqlite3.Connection | None = con

    def close(self) -> None:
        """Close the connection (checkpointing the WAL). Calling it again does nothing."""
        with self._lock:
            if self._con is not None:
                self._con.close()
                self._con = None

    @contextlib.contextmanager
    def _write_transaction(self) -> Iterator[sqlite3.Connection]:
        with self._translated_write_errors():
            con = self._connection()
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
                con.execute("COMMIT")
            except BaseException:
                if con.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        con.execute("ROLLBACK")
                raise

    def _insert_event(
        self, con: Tx, run_id: str, kind: str, key: str | None, payload: str, at: str
    ) -> int:
        """Within ``BEGIN IMMEDIATE`` one writer at a time: rowid order is commit order."""
        cur = con.execute(
            "INSERT INTO events (run_id, at, kind, key, data_json) VALUES (?, ?, ?, ?, ?)",
            (run_id, at, kind, key, payload),
        )
        seq = getattr(cur, "lastrowid", None)
        if not isinstance(seq, int):
            raise InternalError("the events table returned no seq")
        return seq

    def _insert_events(
        self, con: Tx, run_id: str, events: Sequence[tuple[str, str | None, str, str]]
    ) -> None:
        con.executemany(
            "INSERT INTO events (run_id, at, kind, key, data_json) VALUES (?, ?, ?, ?, ?)",
            [(run_id, at, kind, key, payload) for kind, key, payload, at in events],
        )

    @contextlib.contextmanager
    def _translated_write_errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.IntegrityError as e:
            raise InternalError(f"state store rejected a write: {e}") from e
        except sqlite3.Error as e:
            raise StoreError(
                self.path,
                f"journal write failed: {e}",
                "nothing after this point was recorded; free disk space or fix the"
                " folder's permissions, then run apply again to resume",
            ) from e

    def _query(self, sql: str, params: Sequence[Any]) -> list[sqlite3.Row]:
        """The rows of one read; StoreError (corrupt only if SQLite says so) if it fails."""
        with self._lock:
            con = self._connection()
            try:
                return con.execute(sql, params).fetchall()
            except sqlite3.DatabaseError as e:
                raise read_error(self.path, e, immutable=self.immutable) from e

    @contextlib.contextmanager
    def _read_transaction(self) -> Iterator[sqlite3.Connection]:
        """Reads that see one moment of the store (one read transaction, or the write
        transaction already open); failures as :meth:`_query`'s."""
        with self._lock:
            con = self._connection()
            own = not con.in_transaction
            try:
                if own:
                    con.execute("BEGIN")
                yield con
            except sqlite3.DatabaseError as e:
                raise read_error(self.path, e, immutable=self.immutable) from e
            finally:
                if own and con.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        con.execute("ROLLBACK")  # it only read

    def _connection(self) -> sqlite3.Connection:
        if self._con is None:
            raise InternalError(f"state store {self.path} used after close()")
        return self._con
