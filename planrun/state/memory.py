"""A state store that lives and dies with the process: ``--dry-run`` and benchmarks.

It is the SQLite store over ``:memory:``, so it behaves exactly like the durable one
(same schema, same events, same errors for misuse) except that nothing reaches a disk and
the ``PLANRUN_FAULT_AT`` seam never fires.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from planrun.state.sqlite import Store, create_schema

if TYPE_CHECKING:
    from planrun.state.store import StoreProtocol

MEMORY_PATH = ":memory:"


class MemoryStore(Store):
    """An empty, private, in-memory store. ``close()`` discards everything."""

    def __init__(self) -> None:
        con = sqlite3.connect(MEMORY_PATH, isolation_level=None, check_same_thread=False)
        create_schema(con)
        con.execute("PRAGMA foreign_keys = ON")
        super().__init__(con, MEMORY_PATH, readonly=False, fault_at=None)


if TYPE_CHECKING:  # mypy proves that both stores honour the protocol

    def _both_are_stores(durable: Store, memory: MemoryStore) -> tuple[StoreProtocol, ...]:
        return (durable, memory)
