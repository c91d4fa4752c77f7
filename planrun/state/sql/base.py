"""The connection an SQL store's reads and writes share, whatever its dialect.

A store is one connection behind a lock, safe to share between threads (the journal's
writer thread, ``trio.to_thread.run_sync``). Every write goes through
:meth:`SQLConnection._transaction`: one transaction of the dialect
(:meth:`~SQLConnection._write_transaction`), or a share of the enclosing
:meth:`~SQLConnection.batch`. The fault seam (:mod:`planrun.state.faults`) counts each
committed write here. What a dialect provides is abstract below.
"""

from __future__ import annotations

import contextlib
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol, Self

from planrun.errors import InternalError
from planrun.state.faults import count_write


class Cursor(Protocol):
    """What a statement returns (sqlite3's and psycopg's cursors both are this)."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Tx(Protocol):
    """A connection inside a transaction, with SQLite's placeholders (``:name``, ``?``).
    Rows can be read by column name."""

    def execute(self, sql: str, parameters: Any = ..., /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> object: ...


class SQLConnection(ABC):
    """A store's connection, its lock, its group commits. See the module docstring."""

    def __init__(self, path: str, *, readonly: bool, fault_at: int | None) -> None:
        self.path = path  # what errors name: a file, or a URL without its password
        self.readonly = readonly
        self._lock = threading.RLock()  # re-entered by writes inside batch()
        self._batch_writes: int | None = None  # writes waiting for the batch's commit
        self._fault_at = fault_at
        self._plans: dict[str, str] = {}  # run id -> plan name (never changes), for writes

    # ------------------------------------------------------------ what a dialect provides

    @abstractmethod
    def close(self) -> None:
        """Close the connection. Calling it again does nothing."""

    @abstractmethod
    def _connection(self) -> Tx:
        """The open connection; InternalError after close()."""

    @abstractmethod
    def _write_transaction(self) -> contextlib.AbstractContextManager[Tx]:
        """One write transaction of the dialect, committed when the block ends (nothing
        is, if it raises); its errors translated (InternalError for a write the schema
        rejects, StoreError for the disk, the server or the network). Called locked."""

    @abstractmethod
    def _query(self, sql: str, params: Sequence[Any]) -> list[Any]:
        """The rows of one read; StoreError if it fails."""

    @abstractmethod
    def _read_transaction(self) -> contextlib.AbstractContextManager[Tx]:
        """Reads that see one moment of the store (or the write transaction already
        open); failures as :meth:`_query`'s."""

    @abstractmethod
    def _insert_event(
        self, con: Tx, run_id: str, kind: str, key: str | None, payload: str, at: str
    ) -> int:
        """Append one event row and return its ``seq``, which grows in commit order within
        the run; InternalError for an unknown run."""

    @abstractmethod
    def _insert_events(
        self, con: Tx, run_id: str, events: Sequence[tuple[str, str | None, str, str]]
    ) -> None:
        """Append one event row per (kind, key, payload, at), in order, as
        :meth:`_insert_event` would one by one."""

    # ------------------------------------------------------------ shared

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def batch(self, *, counted: bool = True) -> Iterator[None]:
        """Group commit: the writes made inside share one transaction and one commit.

        All of them are durable when the block ends, or none is (StoreError). The journal's
        writer uses it to commit everything queued at once. A batch inside a batch joins it;
        another thread's writes wait for the batch to end. ``counted=False``: its writes do
        not count for the fault seam (the journal applying records that its file already
        counted).
        """
        with self._lock:
            if self._batch_writes is not None:
                yield
                return
            with self._transaction(counted=counted):
                self._batch_writes = 0
                try:
                    yield
                    writes = self._batch_writes
                finally:
                    self._batch_writes = None
        if counted:
            for _ in range(writes - 1):  # the transaction itself counted one
                count_write(self._fault_at)

    @contextlib.contextmanager
    def _transaction(self, *, counted: bool = True) -> Iterator[Tx]:
        """One write transaction; StoreError if it cannot be committed (nothing is then)."""
        if self.readonly:
            raise InternalError(f"state store {self.path} was opened read-only")
        with self._lock:
            if self._batch_writes is not None:  # inside batch(): its transaction commits
                self._batch_writes += 1
                yield self._connection()
                return
            with self._write_transaction() as con:
                yield con
        if counted:
            count_write(self._fault_at)  # the fault seam (tests only)
