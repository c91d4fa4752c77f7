"""One run shared by several machines (SPEC §5, issue 17): the claims, leases and fencing
tokens in PostgreSQL, as blocking calls (the run layer calls them through
``trio.to_thread``).

Three tables beside the store's, created on first use (``IF NOT EXISTS``, under the
schema's advisory lock):

- ``scale_runs``: one row per shared run (its id, the plan's name and content hash); its
  row lock is the critical section of every claim, so provider and project caps hold
  run-wide;
- ``scale_machines``: one row per ``planrun apply`` that joined a run, with its heartbeat;
- ``scale_tasks``: one row per task of the run: ``open`` (nobody holds it), ``running``
  (held by ``owner`` under ``lease_token`` until ``lease_expires_at``, in the server's
  clock), or final (``done``, ``failed``, ``skipped``, ``cancelled``, ``in_review``).

Joining a run and seeding its tasks are :mod:`~planrun.state.postgres.scale_join`'s; what
``status``/``logs``/``report --store`` read is :mod:`~planrun.state.postgres.scale_read`'s.

Every write about a held task names its token (``AND lease_token = …``): a write that
matches no row means another machine took the task over, and raises :class:`LeaseLost`.
Each change that may let another machine go on sends ``NOTIFY planrun_scale`` with the
run's id.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import psycopg

from planrun.core.frozen import frozen
from planrun.errors import InternalError

CHANNEL = "planrun_scale"
FINAL = ("done", "failed", "skipped", "cancelled", "in_review")

TABLES = """
CREATE TABLE IF NOT EXISTS scale_runs (
    id TEXT PRIMARY KEY,
    plan_name TEXT NOT NULL,
    plan_sha256 TEXT NOT NULL,
    opened_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    closed_at TIMESTAMPTZ
);
CREATE TABLE IF NOT EXISTS scale_machines (
    id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES scale_runs(id),
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    state_dir TEXT NOT NULL,
    local_run_id TEXT NOT NULL DEFAULT '',
    started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    ended_at TIMESTAMPTZ
);
CREATE SEQUENCE IF NOT EXISTS scale_lease_token;
CREATE TABLE IF NOT EXISTS scale_tasks (
    run_id TEXT NOT NULL REFERENCES scale_runs(id),
    key TEXT NOT NULL,
    provider TEXT,
    project TEXT,
    status TEXT NOT NULL DEFAULT 'open',
    owner TEXT,
    lease_token BIGINT,
    lease_expires_at TIMESTAMPTZ,
    claims INTEGER NOT NULL DEFAULT 0,
    reason TEXT NOT NULL DEFAULT '',
    landed_commit TEXT,
    log_path TEXT,
    tail_json TEXT NOT NULL DEFAULT '[]',
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, key)
);
CREATE TABLE IF NOT EXISTS scale_answers (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES scale_runs(id),
    key TEXT NOT NULL,
    text TEXT NOT NULL,
    posted_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    delivered_at TIMESTAMPTZ
);
"""
#: columns added since the tables were first made (a store made by an older planrun gets
#: them when a machine joins; an ALTER only when one is missing: it locks the table)
ADDED = {
    ("scale_tasks", "tokens"): "BIGINT NOT NULL DEFAULT 0",
    ("scale_tasks", "cost_usd"): "DOUBLE PRECISION NOT NULL DEFAULT 0",
    ("scale_tasks", "fingerprint"): "TEXT",
}
#: the schema's lock (planrun.state.postgres.schema.SCHEMA_LOCK), so that two machines
#: creating the tables at once create them once
_SCHEMA_LOCK = 0x506C526E

PgCon = psycopg.Connection[dict[str, Any]]


class LeaseLost(Exception):
    """A write about a held task matched no row: another machine holds it now."""

    def __init__(self, run_id: str, key: str, token: int) -> None:
        super().__init__(f"{key}: lease {token} of run {run_id} was taken over")
        self.run_id = run_id
        self.key = key
        self.token = token


class PlanMismatch(Exception):
    """``--run-id`` names a run of another plan, or of another version of this plan."""

    def __init__(self, run_id: str, plan_name: str, sha256: str) -> None:
        super().__init__(
            f"run {run_id} is a run of plan {plan_name!r} (sha256 {sha256[:12]}), not of this"
            " plan file as it is now"
        )
        self.run_id = run_id
        self.plan_name = plan_name
        self.sha256 = sha256


@frozen
class Caps:
    """Run-wide caps: how many tasks of a provider (or project) may run at once."""

    providers: Mapping[str, int]
    projects: Mapping[str, int]


@frozen
class TaskSpec:
    key: str
    provider: str | None
    project: str | None
    #: what a new run of the plan compares to carry a task done by the last run over
    #: (:mod:`planrun.state.postgres.scale_join`); the work tasks it waits for
    fingerprint: str | None = None
    needs: tuple[str, ...] = ()


@frozen
class Verdict:
    """What a claim got: ``token`` when this machine now holds the task; else the task's
    final ``status`` elsewhere, or neither (busy: retry in ``wait_s`` at the latest)."""

    token: int | None = None
    status: str | None = None
    reason: str = ""
    landed_commit: str | None = None
    wait_s: float | None = None
    took_over: bool = False
    spent: RunSpent | None = None


@frozen
class RunSpent:
    """What every machine of a run recorded spending (the sum over its tasks' finished
    holds), and the seconds since the run opened (in the server's clock)."""

    tokens: int
    cost_usd: float
    elapsed_s: float


_SPENT = (
    "SELECT COALESCE(sum(t.tokens), 0) AS tokens, COALESCE(sum(t.cost_usd), 0) AS cost_usd,"
    " EXTRACT(EPOCH FROM now() - r.opened_at) AS elapsed_s FROM scale_runs r"
    " LEFT JOIN scale_tasks t ON t.run_id = r.id WHERE r.id = %s GROUP BY r.opened_at"
)


def run_spent(con: PgCon, run_id: str) -> RunSpent:
    """What the run spent so far, every machine's finished holds counted."""
    row = con.execute(_SPENT, (run_id,)).fetchone()
    if row is None:
        return RunSpent(0, 0.0, 0.0)
    return RunSpent(int(row["tokens"]), float(row["cost_usd"]), float(row["elapsed_s"]))


def create_tables(con: PgCon) -> None:
    with con.transaction():
        con.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
        con.execute(TABLES)
        have = {
            (r["table_name"], r["column_name"])
            for r in con.execute(
                "SELECT table_name, column_name FROM information_schema.columns"
                " WHERE table_schema = current_schema() AND table_name LIKE 'scale_%'"
            ).fetchall()
        }
        for (table, column), kind in ADDED.items():
            if (table, column) not in have:
                con.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {kind}")


def local_runs(con: PgCon, run_id: str) -> set[str]:
    """The machines' own run ids in the shared run (what their landing trailers name)."""
    rows = con.execute(
        "SELECT local_run_id FROM scale_machines WHERE run_id = %s", (run_id,)
    ).fetchall()
    return {str(r["local_run_id"]) for r in rows}


def claim(
    con: PgCon, run_id: str, machine: str, task: TaskSpec, caps: Caps, lease_s: float
) -> Verdict:
    """Claim ``task`` for ``machine``: one transaction under the run row's lock (see the
    module doc). An open task, or a running one whose lease expired, is taken (with a new
    token) unless a run-wide cap is reached."""
    with con.transaction():
        con.execute("SELECT 1 FROM scale_runs WHERE id = %s FOR UPDATE", (run_id,))
        con.execute(
            "INSERT INTO scale_tasks (run_id, key, provider, project) VALUES (%s,%s,%s,%s)"
            " ON CONFLICT DO NOTHING",
            (run_id, task.key, task.provider, task.project),
        )
        row = con.execute(
            "SELECT status, reason, landed_commit, lease_expires_at < now() AS expired,"
            " EXTRACT(EPOCH FROM lease_expires_at - now()) AS left_s"
            " FROM scale_tasks WHERE run_id = %s AND key = %s FOR UPDATE SKIP LOCKED",
            (run_id, task.key),
        ).fetchone()
        if row is None:  # a heartbeat or a finish holds the row this instant
            return Verdict(wait_s=0.05)
        if row["status"] in FINAL:
            return Verdict(
                status=row["status"], reason=row["reason"], landed_commit=row["landed_commit"]
            )
        if row["status"] == "running" and not row["expired"]:
            return Verdict(wait_s=max(0.0, float(row["left_s"])) + 0.05)
        if _capped(con, run_id, task, caps):
            return Verdict()
        took = con.execute(
            "UPDATE scale_tasks SET status = 'running', owner = %s,"
            " lease_token = nextval('scale_lease_token'),"
            " lease_expires_at = now() + make_interval(secs => %s), claims = claims + 1,"
            " updated_at = now() WHERE run_id = %s AND key = %s RETURNING lease_token",
            (machine, lease_s, run_id, task.key),
        ).fetchone()
        assert took is not None
        return Verdict(
            token=int(took["lease_token"]),
            took_over=row["status"] == "running",
            spent=run_spent(con, run_id),
        )


def peek(con: PgCon, run_id: str, key: str) -> Verdict:
    """What a claim of ``key`` would find, read without a lock: a final status, a lease
    not expired (busy until ``wait_s``), or neither (worth claiming)."""
    row = con.execute(
        "SELECT status, reason, landed_commit, lease_expires_at < now() AS expired,"
        " EXTRACT(EPOCH FROM lease_expires_at - now()) AS left_s"
        " FROM scale_tasks WHERE run_id = %s AND key = %s",
        (run_id, key),
    ).fetchone()
    if row is None:
        return Verdict()
    if row["status"] in FINAL:
        return Verdict(
            status=row["status"], reason=row["reason"], landed_commit=row["landed_commit"]
        )
    if row["status"] == "running" and not row["expired"]:
        return Verdict(wait_s=max(0.0, float(row["left_s"])) + 0.05)
    return Verdict()


def _capped(con: PgCon, run_id: str, task: TaskSpec, caps: Caps) -> bool:
    checks = [
        ("provider", task.provider, caps.providers),
        ("project", task.project, caps.projects),
    ]
    for column, name, limits in checks:
        if name is None or name not in limits:
            continue
        row = con.execute(
            f"SELECT count(*) AS n FROM scale_tasks WHERE run_id = %s AND {column} = %s"
            " AND status = 'running' AND lease_expires_at >= now()",
            (run_id, name),
        ).fetchone()
        if row is not None and int(row["n"]) >= limits[name]:
            return True
    return False


def renew(con: PgCon, run_id: str, machine: str, tokens: Iterable[int], lease_s: float) -> set[int]:
    """Extend this machine's leases; returns the tokens still held (the others are lost)."""
    wanted = list(tokens)
    with con.transaction():
        con.execute("UPDATE scale_machines SET heartbeat_at = now() WHERE id = %s", (machine,))
        if not wanted:
            return set()
        rows = con.execute(
            "UPDATE scale_tasks SET lease_expires_at = now() + make_interval(secs => %s)"
            " WHERE run_id = %s AND owner = %s AND status = 'running'"
            " AND lease_token = ANY(%s) RETURNING lease_token",
            (lease_s, run_id, machine, wanted),
        ).fetchall()
    return {int(r["lease_token"]) for r in rows}


def check(con: PgCon, run_id: str, key: str, token: int) -> None:
    """Raise LeaseLost unless ``token`` still holds ``key`` (a fenced no-op write)."""
    row = con.execute(
        "UPDATE scale_tasks SET updated_at = now() WHERE run_id = %s AND key = %s"
        " AND status = 'running' AND lease_token = %s RETURNING key",
        (run_id, key, token),
    ).fetchone()
    if row is None:
        raise LeaseLost(run_id, key, token)


@frozen
class Finish:
    """A held task's end: a final status (or ``open``: given back for another machine)."""

    status: str
    reason: str = ""
    landed_commit: str | None = None
    log_path: str | None = None
    tail_json: str = "[]"
    #: what the hold spent (added to the task's and so to the run's totals)
    tokens: int = 0
    cost_usd: float = 0.0


def finish(con: PgCon, run_id: str, key: str, token: int, end: Finish) -> RunSpent:
    """Record the end of a held task and what it spent, fenced by ``token``, and wake the
    other machines; returns what the run spent, this hold included."""
    if end.status not in (*FINAL, "open"):
        raise InternalError(f"finish({key!r}) with status {end.status!r}")
    with con.transaction():
        row = con.execute(
            "UPDATE scale_tasks SET status = %s, reason = %s, landed_commit = %s,"
            " log_path = COALESCE(%s, log_path), tail_json = %s, updated_at = now(),"
            " lease_expires_at = NULL, tokens = tokens + %s, cost_usd = cost_usd + %s,"
            " owner = CASE WHEN %s = 'open' THEN NULL ELSE owner END"
            " WHERE run_id = %s AND key = %s AND status = 'running' AND lease_token = %s"
            " RETURNING key",
            (
                end.status,
                end.reason,
                end.landed_commit,
                end.log_path,
                end.tail_json,
                end.tokens,
                end.cost_usd,
                end.status,
                run_id,
                key,
                token,
            ),
        ).fetchone()
        if row is None:
            raise LeaseLost(run_id, key, token)
        con.execute("SELECT pg_notify(%s, %s)", (CHANNEL, run_id))
        return run_spent(con, run_id)


def leave(con: PgCon, run_id: str, machine: str) -> None:
    """This machine is done with the run; the run closes when no task is left to do."""
    with con.transaction():
        con.execute("UPDATE scale_machines SET ended_at = now() WHERE id = %s", (machine,))
        con.execute(
            "UPDATE scale_runs SET closed_at = now() WHERE id = %s AND closed_at IS NULL"
            " AND NOT EXISTS (SELECT 1 FROM scale_tasks WHERE run_id = %s"
            " AND status IN ('open', 'running'))",
            (run_id, run_id),
        )
        con.execute("SELECT pg_notify(%s, %s)", (CHANNEL, run_id))


def post_answer(con: PgCon, run_id: str, key: str, text: str) -> str | None:
    """Queue ``planrun answer``'s text for the machine that holds ``key`` (woken by a
    notification); that machine's id, or None (and nothing queued) when none holds it."""
    with con.transaction():
        row = con.execute(
            "SELECT owner FROM scale_tasks WHERE run_id = %s AND key = %s"
            " AND status = 'running' AND lease_expires_at >= now()",
            (run_id, key),
        ).fetchone()
        if row is None:
            return None
        con.execute(
            "INSERT INTO scale_answers (run_id, key, text) VALUES (%s, %s, %s)",
            (run_id, key, text),
        )
        con.execute("SELECT pg_notify(%s, %s)", (CHANNEL, run_id))
        return str(row["owner"])


def take_answers(con: PgCon, run_id: str, machine: str) -> list[tuple[str, str]]:
    """The answers queued for the tasks ``machine`` holds, as (key, text), oldest first;
    each is handed out once."""
    rows = con.execute(
        "UPDATE scale_answers a SET delivered_at = now() FROM scale_tasks t"
        " WHERE a.run_id = %s AND a.delivered_at IS NULL AND t.run_id = a.run_id"
        " AND t.key = a.key AND t.owner = %s AND t.status = 'running'"
        " RETURNING a.id, a.key, a.text",
        (run_id, machine),
    ).fetchall()
    return [(str(r["key"]), str(r["text"])) for r in sorted(rows, key=lambda r: r["id"])]


def lock_landing(con: PgCon, name: str) -> None:
    """Wait for the advisory lock that serialises landings on one remote target."""
    con.execute("SELECT pg_advisory_lock(hashtext(%s))", (name,))


def unlock_landing(con: PgCon, name: str) -> None:
    con.execute("SELECT pg_advisory_unlock(hashtext(%s))", (name,))


def reviewed(con: PgCon, run_id: str, key: str) -> tuple[str, str | None] | None:
    """``key``'s status in the run and the run id of the machine that ran it (what its
    landing trailer names), or None when the run has no such task."""
    row = con.execute(
        "SELECT t.status, m.local_run_id FROM scale_tasks t LEFT JOIN scale_machines m"
        " ON m.id = t.owner WHERE t.run_id = %s AND t.key = %s",
        (run_id, key),
    ).fetchone()
    return None if row is None else (str(row["status"]), row["local_run_id"])


def approved(con: PgCon, run_id: str, key: str, landed_commit: str | None) -> bool:
    """Record ``planrun approve``: the task in review is done (False: it was not in review
    any more: approved meanwhile elsewhere), and wake the machines."""
    with con.transaction():
        row = con.execute(
            "UPDATE scale_tasks SET status = 'done', reason = 'approved', landed_commit = %s,"
            " updated_at = now() WHERE run_id = %s AND key = %s AND status = 'in_review'"
            " RETURNING key",
            (landed_commit, run_id, key),
        ).fetchone()
        con.execute("SELECT pg_notify(%s, %s)", (CHANNEL, run_id))
    return row is not None
