"""What the SQL stores share: the write and read sides of the store protocol, written once.

:mod:`planrun.state.sqlite` (a file) and :mod:`planrun.state.postgres` (a server) differ in
how they connect, open a transaction, append an event and say what a failure means; each
implements :class:`~planrun.state.sql.base.SQLConnection` for that. Every write and read
of :class:`planrun.state.store.StoreProtocol` is here, once, so that both stores record
exactly the same things (:mod:`~planrun.state.sql.writes`, :mod:`~planrun.state.sql.reads`,
rows in and out: :mod:`~planrun.state.sql.rows`).

The statements are written in SQLite's parameter style (``:name`` and ``?``) in the SQL
both dialects share (``INSERT … ON CONFLICT … DO UPDATE``, ``coalesce``, ``CASE``); the
PostgreSQL connection translates the placeholders once per statement.
"""
