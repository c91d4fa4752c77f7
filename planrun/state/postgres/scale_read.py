"""What ``status``, ``logs`` and ``report --store`` read of a shared run, from any machine
(read-only; the tables are :mod:`planrun.state.postgres.scale`'s)."""

from __future__ import annotations

from typing import Any

from planrun.state.postgres.scale import PgCon


def find_run(con: PgCon, plan_name: str, run_id: str | None) -> dict[str, Any] | None:
    """The run ``run_id`` of the plan, else the plan's most recently opened run."""
    if run_id is not None:
        sql = "SELECT * FROM scale_runs WHERE plan_name = %s AND id = %s"
        return con.execute(sql, (plan_name, run_id)).fetchone()
    return con.execute(
        "SELECT * FROM scale_runs WHERE plan_name = %s ORDER BY opened_at DESC LIMIT 1",
        (plan_name,),
    ).fetchone()


def task_rows(con: PgCon, run_id: str) -> list[dict[str, Any]]:
    """The run's tasks, with the host of their holder and what is left of its lease."""
    return con.execute(
        "SELECT t.*, m.host, EXTRACT(EPOCH FROM t.lease_expires_at - now()) AS lease_left_s"
        " FROM scale_tasks t LEFT JOIN scale_machines m ON m.id = t.owner"
        " WHERE t.run_id = %s ORDER BY t.key",
        (run_id,),
    ).fetchall()


def machine_rows(con: PgCon, run_id: str) -> list[dict[str, Any]]:
    """The machines that joined the run, with the age of their last heartbeat."""
    return con.execute(
        "SELECT id, host, pid, state_dir, ended_at IS NOT NULL AS ended,"
        " EXTRACT(EPOCH FROM now() - heartbeat_at) AS heartbeat_age_s"
        " FROM scale_machines WHERE run_id = %s ORDER BY started_at",
        (run_id,),
    ).fetchall()
