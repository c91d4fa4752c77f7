"""Opening a state store by where it is: a state folder (SQLite, ``<folder>/state.db``) or
a ``postgresql://`` URL (a database of a PostgreSQL server).

Every command that opens a store goes through :func:`open_store`, so that a second kind of
store needs no change above ``planrun/state``. ``apply --store URL`` opens the PostgreSQL
store to check (or create) planrun's tables before a run shared by several machines joins
it (:mod:`planrun.state.postgres.scale`, docs/scale-out.md); each machine's own records
stay in its state folder.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING

from planrun.errors import StoreError

if TYPE_CHECKING:
    from planrun.state.store import StoreProtocol

#: the SQLite store's file in a state folder
STATE_FILE = "state.db"
#: what a PostgreSQL store's location starts with (libpq accepts both)
URL_SCHEMES = ("postgresql://", "postgres://")


def is_url(location: Path | str) -> bool:
    """Whether ``location`` names a PostgreSQL database rather than a state folder."""
    return isinstance(location, str) and location.startswith(URL_SCHEMES)


def redacted(url: str) -> str:
    """A store's URL as messages show it: without its password."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    user = urllib.parse.quote(parts.username or "", safe="")
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def open_store(location: Path | str, *, readonly: bool = False) -> StoreProtocol:
    """The store at ``location``: a ``postgresql://`` URL, else a state folder.

    With ``readonly=True`` nothing is created or written. Raises StoreError as the store's
    own ``open`` does (missing, unreachable, not planrun's, newer), and when a URL is given
    but psycopg is not installed.
    """
    if is_url(location):
        return _open_postgres(str(location), readonly=readonly)
    from planrun.state.sqlite import Store

    return Store.open(Path(location) / STATE_FILE, readonly=readonly)


def _open_postgres(url: str, *, readonly: bool) -> StoreProtocol:
    try:
        from planrun.state.postgres import PostgresStore
    except ImportError as e:
        if e.name is not None and not e.name.startswith("psycopg"):
            raise
        raise StoreError(
            redacted(url),
            f"needs the PostgreSQL driver psycopg, which cannot be imported ({e})",
            "install it with planrun: pip install 'planrun[postgres]'",
        ) from e
    return PostgresStore.open(url, readonly=readonly)
