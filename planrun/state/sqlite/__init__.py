"""The durable state store: one SQLite file, ``<state_dir>/state.db``, in WAL mode.

Durability. ``journal_mode=WAL`` with ``synchronous=FULL``: every commit fsyncs the WAL, so
a write method that returned survives SIGKILL *and* power loss (SPEC §5: "a task is done only
once its success is durable"; an attempt is recorded before its process starts). Each write
is one transaction that appends one event (:mod:`planrun.state.sql.writes`). WAL lets
``planrun status`` read (``Store.open(path, readonly=True)``) while an apply writes.
During a run the scheduler's records reach the store through :mod:`planrun.state.journal`
(a file per run, applied here in group commits), not one transaction each.

Callers must hold the state folder's :class:`planrun.state.lock.StateLock` to write.
Methods are synchronous and short (one indexed statement or a few).

The package, by concern:

- :mod:`~planrun.state.sqlite.schema`: the tables, the file's marks, migrations;
- :mod:`~planrun.state.sqlite.opening`: creating, checking and opening a file safely;
- :mod:`~planrun.state.sqlite.connection`: connections, transactions, and what a failed
  read means;
- :mod:`planrun.state.sql`: the two sides of :class:`planrun.state.store.StoreProtocol`,
  group commits and the fault seam, shared with the PostgreSQL store.

Fault seam, FOR TESTS ONLY (:mod:`planrun.state.faults`): when ``PLANRUN_FAULT_AT=k`` is
set as a store opens, the process sends itself SIGKILL right after its k-th write: every
write method of a file-backed Store counts once (creating the schema does not; MemoryStore
never counts), and so does every record appended to a run's journal file, whose later
application to the store (``batch(counted=False)``) does not count again. Each write
appends one event, so once the next apply has replayed the journal, a fresh store killed
this way holds exactly events 1..k.
"""

from __future__ import annotations

from pathlib import Path

from planrun.state.faults import fault_at_from_env
from planrun.state.sql.reads import SQLReads
from planrun.state.sql.writes import SQLWrites
from planrun.state.sqlite.connection import StoreConnection
from planrun.state.sqlite.opening import Synchronous, open_reader, open_writer
from planrun.state.sqlite.schema import APPLICATION_ID, SCHEMA_VERSION, create_schema

__all__ = [
    "APPLICATION_ID",
    "SCHEMA_VERSION",
    "Store",
    "Synchronous",
    "create_schema",
]


class Store(SQLWrites, SQLReads, StoreConnection):
    """planrun's state store over one SQLite connection. See the module docstring."""

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
        :mod:`planrun.state.sqlite.connection`). Raises StoreError when the file is missing
        (read-only), unreadable, not SQLite, corrupt, foreign or newer.
        ``synchronous="NORMAL"`` exists for benchmarks: commits then survive a crash of
        planrun but not of the machine.
        """
        path = Path(path)
        if readonly:
            con, immutable = open_reader(path)
            store = cls(con, str(path), readonly=True, fault_at=None)
            store.immutable = immutable
            return store
        fault_at = fault_at_from_env()
        return cls(open_writer(path, synchronous), str(path), readonly=False, fault_at=fault_at)
