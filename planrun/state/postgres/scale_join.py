"""Joining a shared run (:mod:`planrun.state.postgres.scale`'s tables): which run, its
tasks, this machine's row; and convergence across shared runs.

A new shared run of a plan starts with what the last shared run of that plan did (a CI job
re-run gets a new run id, and the plan may have changed since): a task the last run
recorded done is done in the new one too, with its landed commit, when its fingerprint is
the same (fingerprints are portable across clones: :mod:`planrun.core.fingerprint`) and
every work task it waits for was carried over too (a need that runs again makes its
dependents run again, as on one machine). A row recorded without a fingerprint (by a
planrun before them) is carried when the plan file's content is the same.
"""

from __future__ import annotations

from collections.abc import Sequence

from planrun.state.postgres.scale import PgCon, PlanMismatch, TaskSpec


def join_run(
    con: PgCon,
    run_id: str | None,
    plan_name: str,
    sha256: str,
    new_id: str,
    tasks: Sequence[TaskSpec] = (),
) -> str:
    """The id of the run this machine joins: ``run_id`` (opened if new), else the open run
    of the same plan and content, else a new one named ``new_id``. ``tasks``: the plan's
    work tasks, every one after the tasks it waits for."""
    with con.transaction():
        con.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (plan_name,))
        if run_id is None:
            row = con.execute(
                "SELECT id FROM scale_runs WHERE plan_name = %s AND plan_sha256 = %s"
                " AND closed_at IS NULL ORDER BY opened_at DESC LIMIT 1",
                (plan_name, sha256),
            ).fetchone()
            if row is not None:
                return str(row["id"])
            run_id = new_id
        row = con.execute(
            "SELECT plan_name, plan_sha256 FROM scale_runs WHERE id = %s", (run_id,)
        ).fetchone()
        if row is None:
            con.execute(
                "INSERT INTO scale_runs (id, plan_name, plan_sha256) VALUES (%s, %s, %s)",
                (run_id, plan_name, sha256),
            )
            _carry_done(con, run_id, plan_name, sha256, tasks)
        elif (row["plan_name"], row["plan_sha256"]) != (plan_name, sha256):
            raise PlanMismatch(run_id, row["plan_name"], row["plan_sha256"])
        return run_id


def _carry_done(
    con: PgCon, run_id: str, plan_name: str, sha256: str, tasks: Sequence[TaskSpec]
) -> None:
    """What the last shared run of the plan did, carried over (see the module doc)."""
    last = con.execute(
        "SELECT id, plan_sha256 FROM scale_runs WHERE plan_name = %s AND id <> %s"
        " ORDER BY opened_at DESC LIMIT 1",
        (plan_name, run_id),
    ).fetchone()
    if last is None:
        return
    rows = {
        str(r["key"]): r
        for r in con.execute(
            "SELECT key, fingerprint, landed_commit FROM scale_tasks"
            " WHERE run_id = %s AND status = 'done'",
            (last["id"],),
        ).fetchall()
    }
    same_file = last["plan_sha256"] == sha256
    carried: list[tuple[object, ...]] = []
    keys: set[str] = set()
    for task in tasks:
        row = rows.get(task.key)
        if row is None or not all(need in keys for need in task.needs):
            continue
        if row["fingerprint"] is None and not same_file:
            continue
        if row["fingerprint"] is not None and row["fingerprint"] != task.fingerprint:
            continue
        keys.add(task.key)
        why = f"done in shared run {last['id']}"
        carried.append(
            (
                run_id,
                task.key,
                task.provider,
                task.project,
                task.fingerprint,
                why,
                row["landed_commit"],
            )
        )
    with con.cursor() as cur:
        cur.executemany(
            "INSERT INTO scale_tasks (run_id, key, provider, project, fingerprint, status,"
            " reason, landed_commit) VALUES (%s,%s,%s,%s,%s,'done',%s,%s)",
            carried,
        )


def add_machine(
    con: PgCon, run_id: str, machine: str, host: str, pid: int, where: str, local_run_id: str
) -> None:
    """This machine joins ``run_id``; ``local_run_id`` is its own run (its state folder's),
    which its landing trailers name."""
    con.execute(
        "INSERT INTO scale_machines (id, run_id, host, pid, state_dir, local_run_id)"
        " VALUES (%s,%s,%s,%s,%s,%s)",
        (machine, run_id, host, pid, where, local_run_id),
    )


def seed_tasks(con: PgCon, run_id: str, tasks: Sequence[TaskSpec]) -> None:
    """The run's tasks, ``open`` unless a machine recorded them already."""
    rows = [(run_id, t.key, t.provider, t.project, t.fingerprint) for t in tasks]
    with con.transaction(), con.cursor() as cur:
        cur.executemany(
            "INSERT INTO scale_tasks (run_id, key, provider, project, fingerprint)"
            " VALUES (%s,%s,%s,%s,%s) ON CONFLICT DO NOTHING",
            rows,
        )
