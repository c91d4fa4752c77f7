"""Recovery after a crash (kill -9 included), before any task can run again.

0. the dead runs' journal files are replayed into the store
   (:func:`planrun.state.journal.replay`, called by :func:`planrun.state.folder.open_state`):
   what they recorded but had not committed yet, open attempts included;
1. processes of the dead runs are killed with SIGKILL: each open attempt's process group
   when its leader is the very process recorded (pid *and* start time, so a reused pid is
   never hit), and every process whose environment carries the dead run's
   ``PLANRUN_RUN_ID`` (with its process group): this also finds processes that left the
   group (``setsid``), hooks, and attempts whose pid was not recorded yet;
   Spared: a tmux task's session, which outlives planrun on purpose (the scheduler
   re-attaches to it) as long as the task's definition is unchanged;
2. each open attempt is closed as ``interrupted`` (its attempt still counts);
3. each run that never ended is ended as ``interrupted``; a run that stopped because its
   journal could not be written (a full disk) left a mark (:mod:`planrun.state.stops`):
   it is ended ``failed``, as its apply reported it, and the notes say so rather than
   that planrun died;
4. the temporary files of a report the dead run was writing when it died (``.NAME.*.tmp``
   in its ``runs/<id>/`` folder; :func:`planrun.report.write.write_atomic` leaves the old
   file or the new one, and at worst such a file) are removed.

Each step is idempotent, so a crash during recovery is recovered by the next apply.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from planrun.core.frozen import frozen
from planrun.sessions.procfs import PGRP, PPID, STATE, stat_field, stat_fields
from planrun.state.store import AttemptRow, RunRow, StoreProtocol, StoreReader, StoreWriter, utc_now

if TYPE_CHECKING:
    from planrun.plan.resolved import CompiledPlan

_RECOVERY_WAIT = 5.0  # seconds to wait for SIGKILLed processes to disappear


def recover(
    store: StoreProtocol,
    plan_name: str,
    spare: Collection[tuple[str, str]] = (),
    stopped: Mapping[str, str] | None = None,
) -> list[str]:
    """Clean up after planruns of ``plan_name`` that died; returns what was done, for humans.

    See the module docstring for the steps. ``spare`` names open attempts, as (run id,
    key), whose processes are left running for the scheduler to re-attach to (see
    :func:`reattachable`); they are still closed as interrupted. ``stopped`` maps the runs
    that stopped because their journal failed (:mod:`planrun.state.stops`) to the problem:
    planrun did not die there, so the notes say what happened, and such a run not ended
    yet is ended ``failed``, as its apply reported it. Must run under the state lock,
    before any task of the plan starts.
    """
    stopped = stopped or {}
    notes: list[str] = []
    dead = [run for run in store.runs(plan_name) if run.ended_at is None]
    attempts = store.open_attempts(plan_name)
    run_ids = {run.id for run in dead} | {a.run_id for a in attempts}
    spared = {(a.run_id, a.key) for a in attempts} & set(spare)
    if run_ids:
        killable = [a for a in attempts if (a.run_id, a.key) not in spared]
        notes += _kill_leftovers(run_ids, killable, spared)
    notes += [f"left {key}'s tmux session running, to re-attach to it" for _, key in spared]
    now = utc_now()
    for attempt in attempts:
        store.attempt_interrupted(attempt, now)
        notes.append(_interrupted_note(attempt, stopped))
    for run in dead:
        notes.append(_end_dead_run(store, run, stopped, now))
    return notes


def _interrupted_note(attempt: AttemptRow, stopped: Mapping[str, str]) -> str:
    what = f"attempt {attempt.n} of {attempt.key} (run {attempt.run_id})"
    if attempt.run_id in stopped:
        return f"{what} ended unrecorded: the run's journal failed; marked interrupted"
    return f"{what} was interrupted"


def _end_dead_run(store: StoreWriter, run: RunRow, stopped: Mapping[str, str], now: str) -> str:
    """End a run that never ended; returns the note saying how."""
    if run.id not in stopped:
        store.run_ended(run.id, "interrupted", now)
        return f"run {run.id} had not ended (planrun died): marked interrupted"
    store.run_ended(run.id, "failed", now)  # as its apply reported it (exit 1)
    why = f" ({stopped[run.id]})" if stopped[run.id] else ""
    return f"run {run.id} stopped because its journal could not be written{why}: marked failed"


def remove_partial_reports(state_dir: Path, run_ids: Collection[str]) -> list[str]:
    """Remove the temporary report files the dead runs ``run_ids`` left in their folders
    (a planrun killed in the middle of writing its report); returns what was done."""
    notes = []
    for run_id in run_ids:
        for leftover in sorted((state_dir / "runs" / run_id).glob(".*.tmp")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
                notes.append(f"removed {leftover}, a report run {run_id} was writing when it died")
    return notes


@frozen
class _Proc:
    pid: int
    pgid: int
    run_id: str  # its PLANRUN_RUN_ID
    key: str | None  # its PLANRUN_TASK_KEY (None for run-level hooks)


def reattachable(plan: CompiledPlan, store: StoreReader) -> set[tuple[str, str]]:
    """Open attempts whose processes outlive planrun on purpose and are re-attached to:
    tmux tasks whose definition (fingerprint) is still the one that attempt ran."""
    from planrun.core.fingerprint import fingerprint

    found: set[tuple[str, str]] = set()
    for attempt in store.open_attempts(plan.name):
        task = plan.tasks.get(attempt.key)
        if task is None or task.kind != "work" or task.backend != "tmux":
            continue
        if fingerprint(plan, task)[0] == attempt.fingerprint:
            found.add((attempt.run_id, attempt.key))
    return found


def _kill_leftovers(
    run_ids: set[str], attempts: Collection[Any], spared_attempts: Collection[tuple[str, str]]
) -> list[str]:
    """SIGKILL what the dead runs left running, until it is gone or a deadline passes.

    Processes of ``spared_attempts`` (run id, key) are left alone.
    """
    from planrun.sessions.process import group_alive, is_same_process

    recorded = {
        a.pgid
        for a in attempts
        if a.pgid and a.pid and a.proc_start_time and is_same_process(a.pid, a.proc_start_time)
    }
    spared, spared_groups = _ancestors()
    killed: dict[int, str | None] = {}
    groups_killed: set[int] = set()
    deadline = time.monotonic() + _RECOVERY_WAIT
    while True:
        marked = [
            p
            for p in _marked_processes(run_ids)
            if p.pid not in spared and (p.run_id, p.key) not in spared_attempts
        ]
        groups = {p.pgid for p in marked} | {g for g in recorded if group_alive(g)}
        groups -= spared_groups
        if not marked and not groups:
            return _kill_notes(killed, groups_killed)
        if time.monotonic() > deadline:
            alive = sorted(p.pid for p in marked)
            return [f"processes of an earlier run would not die: pids {alive}, groups {groups}"]
        for pgid in groups:
            _signal_group(pgid)
        groups_killed |= groups
        for proc in marked:
            killed.setdefault(proc.pid, proc.key)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(proc.pid, signal.SIGKILL)
        time.sleep(0.01)  # polling /proc until the killed processes are gone


def _kill_notes(killed: Mapping[int, str | None], groups: set[int]) -> list[str]:
    if not killed and not groups:
        return []
    keys = sorted({k for k in killed.values() if k})
    what = f" (tasks {', '.join(keys)})" if keys else ""
    return [
        f"killed {len(killed)} leftover process(es) in {len(groups)} process group(s)"
        f" of a dead run{what}"
    ]


def _signal_group(pgid: int) -> None:
    """SIGKILL group ``pgid``, never planrun's own group nor groups 0 and 1."""
    if pgid <= 1 or pgid == os.getpgrp():
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _ancestors() -> tuple[set[int], set[int]]:
    """This process and its ancestors, and their process groups: never killed, whatever
    their environment says (planrun may itself run inside an earlier run's task)."""
    found = {os.getpid()}
    groups = {os.getpgrp()}
    pid = os.getppid()
    while pid > 1 and pid not in found:
        found.add(pid)
        fields = stat_fields(pid)
        if fields is None:
            break
        groups.add(int(stat_field(fields, PGRP)))
        pid = int(stat_field(fields, PPID))
    return found, groups


def _marked_processes(run_ids: Collection[str]) -> list[_Proc]:
    """Live processes whose environment has ``PLANRUN_RUN_ID`` set to one of ``run_ids``."""
    wanted = {f"PLANRUN_RUN_ID={r}".encode() for r in run_ids}
    found: list[_Proc] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if wanted.isdisjoint(environ):
            continue
        fields = stat_fields(pid)
        if fields is None or stat_field(fields, STATE) in ("Z", "X"):
            continue
        run_id = _env_value(environ, "PLANRUN_RUN_ID") or ""
        found.append(
            _Proc(
                pid, int(stat_field(fields, PGRP)), run_id, _env_value(environ, "PLANRUN_TASK_KEY")
            )
        )
    return found


def _env_value(environ: list[bytes], name: str) -> str | None:
    prefix = f"{name}=".encode()
    for item in environ:
        if item.startswith(prefix):
            return item[len(prefix) :].decode(errors="replace")
    return None
