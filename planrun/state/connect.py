"""Connections to the state store, and what a failed read means.

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

import sqlite3
import urllib.parse
from pathlib import Path

from planrun.errors import StoreError

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
