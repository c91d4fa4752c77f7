"""The PostgreSQL state store: planrun's tables in a database of a PostgreSQL server.

The same store as :mod:`planrun.state.sqlite` (the writes and reads of
:mod:`planrun.state.sql`, the same tables and events), for the runs that several machines
will share (SPEC §5, issue 17). :func:`planrun.state.open.open_store` opens one for a
``postgresql://`` URL; ``apply --store`` does so to check the database is planrun's, then
coordinates the machines in the tables of :mod:`~planrun.state.postgres.scale` (claims,
leases, fencing tokens; docs/scale-out.md).

Durability. Each write is one transaction committed with the server's
``synchronous_commit`` (on unless the server's operator turned it off): when a write
returns, its commit is on the server's disk. Callers must hold the state folder's lock to
write, as with SQLite; nothing here serialises two planruns writing one run yet.

The package, by concern (as :mod:`planrun.state.sqlite`):

- :mod:`~planrun.state.postgres.schema`: the tables, the database's mark, migrations;
- :mod:`~planrun.state.postgres.opening`: connecting, checking and creating the tables;
- :mod:`~planrun.state.postgres.connection`: transactions, events, what an error means.

psycopg is an optional dependency (``pip install 'planrun[postgres]'``), imported by this
package only: :func:`planrun.state.open.open_store` says how to install it when missing.
The fault seam (:mod:`planrun.state.faults`) counts each write of a writable store.
"""

from __future__ import annotations

from planrun.state.faults import fault_at_from_env
from planrun.state.open import redacted
from planrun.state.postgres.connection import PgConnection
from planrun.state.postgres.opening import open_checked
from planrun.state.postgres.schema import SCHEMA_VERSION
from planrun.state.sql.reads import SQLReads
from planrun.state.sql.writes import SQLWrites

__all__ = ["SCHEMA_VERSION", "PostgresStore"]


class PostgresStore(SQLWrites, SQLReads, PgConnection):
    """planrun's state store in a PostgreSQL database. See the module docstring."""

    @classmethod
    def open(cls, url: str, *, readonly: bool = False) -> PostgresStore:
        """Open the store in the database of ``url`` (``postgresql://USER@HOST:PORT/DB``),
        creating planrun's tables in an empty database unless ``readonly``.

        Raises StoreError when the server cannot be reached, or the database is not
        planrun's (other tables, another mark), has no store yet (read-only) or was
        written by a newer planrun; errors show the URL without its password.
        """
        where = redacted(url)
        fault_at = None if readonly else fault_at_from_env()
        con = open_checked(url, where, readonly=readonly)
        return cls(con, url, readonly=readonly, fault_at=fault_at)
