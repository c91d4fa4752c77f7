"""The state folder as ``apply`` uses it: open, recover from a dead run, remember, journal.

Recovery after a crash (kill -9 included): runs left "running" are ended as interrupted;
attempts left open are checked process by process: a group still alive whose leader is the
very process recorded (pid *and* start time, so a reused pid is never hit) is killed before
its task can run again; then each attempt is marked interrupted. Attempt counts survive.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from planrun import __version__
from planrun.convergence import Decision, Known
from planrun.errors import UsageError
from planrun.outcomes import Status
from planrun.plan.compile import CompiledPlan
from planrun.scheduler import Journal, NullJournal
from planrun.sessions.process import group_alive, is_same_process, kill_group_now
from planrun.store.base import RunRow, StoreProtocol, utc_now

STATE_FILE = "state.db"


@dataclass
class State:
    store: StoreProtocol | None
    plan: CompiledPlan
    readonly: bool
    known: dict[str, Known] = field(default_factory=dict)
    recovered: list[str] = field(default_factory=list)  # what recovery did, for the user

    def begin(
        self,
        run_id: str,
        plan: CompiledPlan,
        decisions: Mapping[str, Decision],
        fingerprints: Mapping[str, tuple[str, Mapping[str, str]]],
    ) -> Journal:
        if self.store is None or self.readonly:
            return NullJournal()
        from planrun.journal import StoreJournal

        self.store.begin_run(
            RunRow(
                id=run_id,
                plan_name=plan.name,
                plan_path=str(plan.path),
                plan_sha256=plan.sha256,
                planrun_version=__version__,
                started_at=utc_now(),
                status="running",
                pid=os.getpid(),
                host=socket.gethostname(),
                args=tuple(sys.argv),
            )
        )
        fresh = [
            k
            for k, d in decisions.items()
            if d.run and d.prior_attempts == 0 and k in self.known and self.known[k].attempts
        ]
        if fresh:
            self.store.reset_attempts(run_id, fresh)
        return StoreJournal(self.store, run_id, plan.name, fingerprints)

    def end(self, run_id: str, status: str) -> None:
        if self.store is not None and not self.readonly:
            self.store.end_run(run_id, status, utc_now())


@contextmanager
def open_state(plan: CompiledPlan, state_dir: Path, *, readonly: bool = False) -> Iterator[State]:
    from planrun.store.sqlite import Store

    path = state_dir / STATE_FILE
    if readonly and not path.exists():
        yield State(None, plan, readonly)
        return
    store = Store.open(path, readonly=readonly)
    try:
        check_plan_owner(store, plan, path)
        state = State(store, plan, readonly)
        if not readonly:
            state.recovered = recover(store, plan.name)
        state.known = known_tasks(store, plan.name)
        yield state
    finally:
        store.close()


def check_plan_owner(store: StoreProtocol, plan: CompiledPlan, path: Path) -> None:
    """Refuse a second plan file that would share this plan's name (and so its state)."""
    last = store.last_run(plan.name)
    if last is None or last.plan_path == str(plan.path):
        return
    if Path(last.plan_path).exists():
        raise UsageError(
            f"{path} already holds the state of plan {plan.name!r} from {last.plan_path}; "
            f"give {plan.path.name} another `name:` or its own settings.state_dir"
        )


def recover(store: StoreProtocol, plan_name: str) -> list[str]:
    notes: list[str] = []
    now = utc_now()
    for run in store.runs(plan_name):
        if run.ended_at is None:
            store.end_run(run.id, "interrupted", now)
            notes.append(f"run {run.id} had not ended (planrun died): marked interrupted")
    for attempt in store.open_attempts(plan_name):
        if (
            attempt.pgid
            and attempt.pid
            and attempt.proc_start_time
            and is_same_process(attempt.pid, attempt.proc_start_time)
        ):
            kill_group_now(attempt.pgid)
            _wait_gone(attempt.pgid)
            notes.append(f"killed the leftover processes of {attempt.key} (group {attempt.pgid})")
        elif attempt.pgid and group_alive(attempt.pgid) and not attempt.proc_start_time:
            notes.append(f"group {attempt.pgid} of {attempt.key} may still run (unverified)")
        store.mark_interrupted(attempt.run_id, attempt.key, attempt.n, now)
    return notes


def _wait_gone(pgid: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.01)


def known_tasks(store: StoreProtocol, plan_name: str) -> dict[str, Known]:
    states = store.task_states(plan_name)
    fields_by_run: dict[str, dict[str, Mapping[str, str]]] = {}
    known: dict[str, Known] = {}
    for key, row in states.items():
        fields = None
        if row.status is Status.DONE and row.done_run_id:
            if row.done_run_id not in fields_by_run:
                fields_by_run[row.done_run_id] = {
                    t.key: t.data.get("fields") or {} for t in store.tasks(row.done_run_id)
                }
            fields = fields_by_run[row.done_run_id].get(key)
        known[key] = Known(row.fingerprint, row.status, row.attempts_total, row.done_run_id, fields)
    return known
