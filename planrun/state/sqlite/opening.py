"""Creating, checking and opening a store file, never harming one that is not ours.

planrun never deletes, truncates or rebuilds a store it cannot read. Opening refuses,
with StoreError and advice, a file that is not SQLite, is corrupt (``PRAGMA
quick_check``), belongs to another application (``application_id``) or was written by a
newer planrun (``user_version``); those checks run on a read-only connection first so
that the file is left byte-for-byte as it was. A new store is built in a temporary file
and hard-linked into place, so ``state.db`` is either absent or complete.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from pathlib import Path
from typing import Literal

from planrun.atomic import ensure_private_dir, fsync_dir
from planrun.errors import InternalError, StoreError
from planrun.state.sqlite.connection import (
    MOVE_ASIDE,
    PERMISSIONS,
    connect,
    connect_reader,
    read_error,
)
from planrun.state.sqlite.schema import APPLICATION_ID, check_version, create_schema, migrate

#: ``FULL``: every commit survives power loss; ``NORMAL`` (benchmarks): a crash of planrun.
Synchronous = Literal["FULL", "NORMAL"]

_MAGIC = b"SQLite format 3\x00"
_HEADER_SIZE = 100
_APP_ID_OFFSET = 68  # big-endian u32 in the database header


def open_reader(path: Path) -> tuple[sqlite3.Connection, bool]:
    """A read-only connection to the store at ``path`` and whether it is ``immutable``
    (:mod:`planrun.state.sqlite.connection`). The file is never created or written."""
    if not path.exists():
        raise StoreError(
            str(path),
            "no state store here yet",
            "run `planrun apply` first, or pass the right --state-dir",
        )
    _check_header(path)
    return _connect_checked(path, quick_check=False)


def open_writer(path: Path, synchronous: Synchronous) -> sqlite3.Connection:
    """A connection that writes the store at ``path``, creating it (and its folder, 0700)
    when absent and migrating an older one, once it passed every check."""
    if not path.exists():
        _create(path)
    _check_header(path)
    _connect_checked(path, quick_check=True)[0].close()
    con = connect(path, readonly=False)
    try:
        _configure_writer(con, path, synchronous)
    except BaseException:
        con.close()
        raise
    return con


def _create(path: Path) -> None:
    """Build a complete new store beside ``path`` and hard-link it into place.

    If another process created ``path`` meanwhile, its file is kept and ours discarded.
    """
    try:
        ensure_private_dir(path.parent)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".new")
        os.close(fd)
    except OSError as e:
        raise StoreError(str(path), f"cannot create it ({e.strerror or e})", PERMISSIONS) from e
    tmp = Path(tmp_name)
    try:
        con = sqlite3.connect(tmp, isolation_level=None)
        try:
            # No rollback journal and no syncs while the file is private: it is fsynced
            # below before it is linked into place, and a crash before that leaves only a
            # stray temporary file (2 ms of a first apply's start-up, most of _create's).
            con.execute("PRAGMA journal_mode = OFF")
            con.execute("PRAGMA synchronous = OFF")
            create_schema(con)
            con.execute("PRAGMA journal_mode = WAL")  # persistent: stored in the header
        finally:
            con.close()
        _fsync_file(tmp)
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
        fsync_dir(path.parent)
    except (OSError, sqlite3.Error) as e:
        raise StoreError(str(path), f"cannot create it ({e})", PERMISSIONS) from e
    finally:
        tmp.unlink(missing_ok=True)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_header(path: Path) -> None:
    """Refuse, from the raw header bytes, a file that is not planrun's SQLite store."""
    try:
        with path.open("rb") as f:
            header = f.read(_HEADER_SIZE)
    except IsADirectoryError as e:
        raise StoreError(str(path), "is a folder, not a state store", MOVE_ASIDE) from e
    except OSError as e:
        raise StoreError(str(path), f"cannot read it ({e.strerror or e})", PERMISSIONS) from e
    if len(header) < _HEADER_SIZE or not header.startswith(_MAGIC):
        what = "is empty" if not header else "is not an SQLite database"
        raise StoreError(str(path), f"{what}, so not a planrun state store", MOVE_ASIDE)
    app_id = int.from_bytes(header[_APP_ID_OFFSET : _APP_ID_OFFSET + 4], "big")
    if app_id != APPLICATION_ID:
        raise StoreError(
            str(path),
            f"is an SQLite database of another application (application_id {app_id:#x},"
            f" planrun's is {APPLICATION_ID:#x})",
            MOVE_ASIDE,
        )


def _connect_checked(path: Path, *, quick_check: bool) -> tuple[sqlite3.Connection, bool]:
    """A read-only connection to a store whose version this planrun reads (and, with
    ``quick_check``, whose pages are sound), and whether it is immutable. Leaves the main
    file untouched."""
    con, immutable = connect_reader(path)
    try:
        _validate(con, path, quick_check=quick_check, immutable=immutable)
    except BaseException:
        con.close()
        raise
    return con, immutable


def _validate(con: sqlite3.Connection, path: Path, *, quick_check: bool, immutable: bool) -> None:
    try:
        con.execute("PRAGMA query_only = 1")
        version = int(con.execute("PRAGMA user_version").fetchone()[0])
        problems = ["ok"]
        if quick_check:
            problems = [row[0] for row in con.execute("PRAGMA quick_check(5)").fetchall()]
    except sqlite3.DatabaseError as e:
        raise read_error(path, e, immutable=immutable) from e
    check_version(path, version)
    if problems != ["ok"]:
        raise StoreError(str(path), f"is corrupt ({'; '.join(problems)})", MOVE_ASIDE)


def _configure_writer(con: sqlite3.Connection, path: Path, synchronous: Synchronous) -> None:
    if synchronous not in ("FULL", "NORMAL"):
        raise InternalError(f"unknown synchronous level {synchronous!r}")
    try:
        mode = con.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        con.execute(f"PRAGMA synchronous = {synchronous}")
        con.execute("PRAGMA foreign_keys = ON")
        migrate(con)
    except sqlite3.Error as e:
        raise StoreError(str(path), f"cannot open it for writing ({e})", PERMISSIONS) from e
    if str(mode).lower() != "wal":
        raise StoreError(
            str(path),
            f"cannot use write-ahead logging (journal_mode is {mode})",
            "put the state folder on a local file system",
        )
