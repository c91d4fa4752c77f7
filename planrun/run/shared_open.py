"""Joining a run shared through PostgreSQL: which run, this machine's row, the claims.

:func:`join` is called by apply after the plan compiled and before anything runs: a bad
URL, a server that cannot be reached, psycopg missing or ``--run-id`` naming a run of
another plan all stop the apply with exit 2 and a message that never shows the URL's
password. Each machine keeps its own state folder (its logs, worktrees and its own record
of the attempts it ran); the shared store holds the run, its tasks' claims, leases,
outcomes and recorded tails, and the machines (docs/scale-out.md).
"""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from planrun.errors import StoreError
from planrun.plan.resolved import CompiledPlan
from planrun.state.open import open_store, redacted

if TYPE_CHECKING:  # psycopg is imported once open_store found it installed
    from planrun.run.shared import SharedClaims, Timing

#: environment variables that tune the lease and the safety poll (seconds)
LEASE_ENV = "PLANRUN_LEASE"
POLL_ENV = "PLANRUN_POLL"


def timing_from_env(environ: dict[str, str] | None = None) -> Timing:
    from planrun.run.shared import Timing

    env = dict(os.environ) if environ is None else environ
    try:
        lease = float(env.get(LEASE_ENV, Timing.lease_s))
        poll = float(env.get(POLL_ENV, Timing.poll_s))
    except ValueError as e:
        raise StoreError(LEASE_ENV, f"is not a number of seconds ({e})", "write e.g. 60") from e
    if lease <= 0 or poll <= 0:
        raise StoreError(LEASE_ENV, "must be more than 0 seconds", "write e.g. 60")
    return Timing(lease, poll)


def join(
    url: str,
    plan: CompiledPlan,
    run_id: str | None,
    state_dir: Path,
    new_id: str,
    local_run_id: str,
) -> SharedClaims:
    """Open (or join) the shared run of ``plan`` at ``url`` for this machine, whose own
    run (in its state folder) is ``local_run_id``."""
    where = redacted(url)
    open_store(url).close()  # the database is planrun's: its tables made, its version read
    from planrun.run.shared import SharedClaims
    from planrun.state.postgres import scale, scale_join
    from planrun.state.postgres.opening import connect

    tasks = _specs(plan)
    con = connect(url, where)
    try:
        scale.create_tables(con)
        try:
            shared_id = scale_join.join_run(con, run_id, plan.name, plan.sha256, new_id, tasks)
        except scale.PlanMismatch as e:
            raise StoreError(where, str(e), "give this plan another --run-id") from e
        machine = f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:6]}"
        host, pid = socket.gethostname(), os.getpid()
        scale_join.add_machine(con, shared_id, machine, host, pid, str(state_dir), local_run_id)
        scale_join.seed_tasks(con, shared_id, tasks)
        spent = scale.run_spent(con, shared_id)  # the run's wall time counts from its start
    finally:
        con.close()
    caps = scale.Caps(
        providers={n: p.max_concurrent for n, p in plan.providers.items() if p.max_concurrent},
        projects={n: p.max_concurrent for n, p in plan.projects.items() if p.max_concurrent},
    )
    claims = SharedClaims(url, where, shared_id, machine, caps, timing_from_env())
    claims.state_dir = state_dir
    claims.spending.seen(spent)
    return claims


def _specs(plan: CompiledPlan) -> list[Any]:
    """The plan's work tasks for the shared store, each after the work tasks it waits for,
    with its fingerprint (what a later shared run compares to carry it over)."""
    from planrun.core.decision import work_needs
    from planrun.run.prepare import fingerprints_of
    from planrun.state.postgres.scale import TaskSpec

    fingerprints = fingerprints_of(plan)
    work = set(plan.work)
    return [
        TaskSpec(
            key,
            plan.tasks[key].provider,
            plan.tasks[key].project,
            fingerprints[key][0],
            tuple(work_needs(plan, key)),
        )
        for key in plan.graph.topological()
        if key in work
    ]
