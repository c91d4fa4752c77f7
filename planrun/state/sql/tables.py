"""The tables of the SQL stores, written once; each dialect fills in its few words.

Both stores hold the same tables, column for column (docs in
:mod:`planrun.state.sqlite.schema`), so that the statements of :mod:`planrun.state.sql`
run on both. A dialect says: its 64-bit integer type (``$big``), how ``events.seq`` grows
(``$seq``), the column that orders runs (``$rowid``: SQLite has an implicit one), and what
ends a table keyed by its primary key (``$keyed``: SQLite's ``WITHOUT ROWID``).
"""

from __future__ import annotations

from string import Template

_TABLES = Template("""
CREATE TABLE runs (
$rowid    id TEXT PRIMARY KEY,
    plan_name TEXT NOT NULL,
    plan_path TEXT NOT NULL,
    plan_sha256 TEXT NOT NULL,
    planrun_version TEXT NOT NULL,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    status TEXT NOT NULL,
    pid INTEGER,
    host TEXT,
    args_json TEXT NOT NULL DEFAULT '[]',
    journal_seq $big NOT NULL DEFAULT 0
);
CREATE INDEX runs_by_plan ON runs(plan_name);
CREATE TABLE tasks (
    run_id TEXT NOT NULL REFERENCES runs(id),
    key TEXT NOT NULL,
    fingerprint TEXT,
    status TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    attempts INTEGER NOT NULL DEFAULT 0,
    branch TEXT,
    base_commit TEXT,
    landed_commit TEXT,
    diffstat TEXT,
    data_json TEXT NOT NULL DEFAULT '{}',
    updated_at TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
)$keyed;
CREATE TABLE attempts (
    run_id TEXT NOT NULL,
    key TEXT NOT NULL,
    n INTEGER NOT NULL CHECK (n >= 1),
    fingerprint TEXT NOT NULL,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    outcome TEXT,
    exit_code INTEGER,
    signal INTEGER,
    reason TEXT NOT NULL DEFAULT '',
    pid INTEGER,
    pgid INTEGER,
    proc_start_time $big,
    log_path TEXT NOT NULL,
    tail_json TEXT NOT NULL DEFAULT '[]',
    usage_json TEXT,
    PRIMARY KEY (run_id, key, n),
    FOREIGN KEY (run_id, key) REFERENCES tasks(run_id, key)
)$keyed;
CREATE INDEX attempts_open ON attempts(run_id) WHERE ended_at IS NULL;
CREATE TABLE events (
    seq $seq,
    run_id TEXT NOT NULL REFERENCES runs(id),
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    key TEXT,
    data_json TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX events_by_run ON events(run_id, seq);
CREATE TABLE task_state (
    plan_name TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status TEXT NOT NULL,
    done_run_id TEXT REFERENCES runs(id),
    attempts_total INTEGER NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (plan_name, key)
)$keyed;
""")


def tables(*, big: str, seq: str, rowid: str, keyed: str) -> str:
    """The statements that create the tables and indexes, in the dialect's words."""
    return _TABLES.substitute(big=big, seq=seq, rowid=rowid, keyed=keyed)
