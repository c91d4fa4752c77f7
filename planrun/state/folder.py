"""The state folder as the commands use it: open, recover from a dead run, remember, journal.

``apply`` calls :func:`open_state` (holding the state lock): it refuses a second plan file
that would share this plan's state (:func:`check_plan_owner`), recovers what a planrun that
died left behind (:func:`recover`) and reads what is known of each task
(:func:`known_tasks`, the input of :func:`planrun.core.decision.decide`). :meth:`State.begin`
then records the run, and what apply decided for every task, before anything runs.

Recovery after a crash (kill -9 included), before any task can run again:

0. the dead runs' journal files are replayed into the store (:func:`planrun.state.journal.replay`):
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

The read-only commands (``status``, ``logs``, ``report``) use :func:`locate` to find the
state store of a plan without loading the whole plan (a 10,000-task plan takes far longer
to compile than ``status`` may take), and never take the lock.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from planrun import __version__
from planrun.core.outcomes import Outcome, Status
from planrun.errors import StoreError, UsageError
from planrun.sessions.procfs import PGRP, PPID, STATE, stat_field, stat_fields
from planrun.state.store import AttemptRow, EventRow, RunRow, StoreProtocol, TaskRow, utc_now

if TYPE_CHECKING:
    from planrun.core.decision import Known, RunDecision
    from planrun.plan.compile import CompiledPlan
    from planrun.run.context import Journal
    from planrun.state.journal import StoreJournal

STATE_FILE = "state.db"
#: The event that records, at the start of a run, its tasks and what apply decided.
RUN_PLAN_EVENT = "run_plan"
RUN_PLAN_FORMAT = 1
#: The event that lists what recovery did at the start of a run.
RECOVERED_EVENT = "recovered"
_RECOVERY_WAIT = 5.0  # seconds to wait for SIGKILLed processes to disappear


@dataclass
class State:
    """An open state store for one plan (``store`` is None for a dry run without one)."""

    store: StoreProtocol | None
    plan: CompiledPlan
    readonly: bool
    known: dict[str, Known] = field(default_factory=dict)
    recovered: list[str] = field(default_factory=list)  # what recovery did, for the user
    journal: StoreJournal | None = None  # the run's, once begun
    journal_dir: Path | None = None  # where runs' journal files go (writable states)
    reattach: set[str] = field(default_factory=set)  # tmux tasks left running to re-attach to

    def begin(
        self,
        run_id: str,
        plan: CompiledPlan,
        decision: RunDecision,
        fingerprints: Mapping[str, tuple[str, Mapping[str, str]]],
        *,
        only: Collection[str] | None = None,
    ) -> Journal:
        """Record a new run and return the journal the scheduler writes to.

        Writes, in order: the run, what recovery did (also printed on stderr), the tasks
        whose landing was found on their target (done: planrun died before recording
        them), fresh attempt budgets for tasks that get one, and the ``run_plan`` event
        (the run's tasks with their decisions, for ``status`` and ``report``). ``only``
        is apply's ``--only`` selection (the run then covers those tasks and what they
        wait for). A read-only or store-less state returns a journal that keeps nothing.
        """
        from planrun.run.context import NullJournal
        from planrun.state.journal import StoreJournal

        if self.store is None or self.readonly:
            return NullJournal()
        self.store.begin_run(_run_row(run_id, plan))
        if self.recovered:
            self.store.record_event(run_id, RECOVERED_EVENT, None, {"notes": self.recovered})
            for note in self.recovered:
                print(f"planrun: recovered: {note}", file=sys.stderr)
        self._adopt(run_id, plan, decision, fingerprints)
        decisions = decision.decisions
        fresh = [
            k
            for k, d in decisions.items()
            if d.run and d.prior_attempts == 0 and k in self.known and self.known[k].attempts
        ]
        if fresh:
            self.store.reset_attempts(run_id, fresh)
        self.store.record_event(run_id, RUN_PLAN_EVENT, None, run_plan(plan, decision, only))
        up_to_date = [k for k, d in decisions.items() if not d.run]
        self.journal = StoreJournal(
            self.store, run_id, plan.name, fingerprints, up_to_date, journal_dir=self.journal_dir
        )
        return self.journal

    def _adopt(
        self,
        run_id: str,
        plan: CompiledPlan,
        decision: RunDecision,
        fingerprints: Mapping[str, tuple[str, Mapping[str, str]]],
    ) -> None:
        """Record done the tasks whose landing is on their target though no run recorded
        it (planrun died in between): their work is never landed twice."""
        assert self.store is not None
        for key, commit in decision.adopted.items():
            fp, fields = fingerprints[key]
            why = decision.steps[key].why
            self.store.task_done(
                plan.name,
                run_id,
                key,
                fp,
                reason=why,
                landed_commit=commit,
                data={"fields": dict(fields), "title": plan.tasks[key].title},
            )
            print(f"planrun: recovered: {key}: {why}", file=sys.stderr)

    def end(self, run_id: str, status: str) -> None:
        """Record the run's final status once all the run's writes are durable (nothing
        for a read-only state). A journal write that failed and was not reported yet is
        raised (the run's end is still recorded first, if the store takes it). A run
        whose journal failed also leaves the mark of :mod:`planrun.state.stops`, so that
        recovery says why it stopped even if the store takes nothing more."""
        if self.store is None or self.readonly:
            return
        journal = self.journal
        try:
            self.close_journal()
        finally:
            failure = None if journal is None else journal.failure
            if failure is not None and self.journal_dir is not None:
                from planrun.state.stops import mark_stopped

                mark_stopped(self.journal_dir, run_id, getattr(failure, "problem", str(failure)))
            self.store.end_run(run_id, status, utc_now())

    def close_journal(self) -> None:
        """Make the journal's writes durable and stop its writer (idempotent)."""
        if self.journal is not None:
            journal, self.journal = self.journal, None
            journal.close()


def _run_row(run_id: str, plan: CompiledPlan) -> RunRow:
    return RunRow(
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


def run_plan(
    plan: CompiledPlan, decision: RunDecision, only: Collection[str] | None
) -> dict[str, Any]:
    """The ``run_plan`` event's data: the run's tasks in dependency order.

    Per task: key, kind, title, priority, waits_for (what it waits for, groups included),
    children (groups), parent, provider and project (work tasks), and for work tasks
    whether apply runs it, its action (planrun.core.decision.Action) and why. Defaults
    (None, 0, empty lists) are left out.
    """
    graph = plan.graph
    keys = _selected(plan, only)
    tasks = []
    for key in graph.topological():
        if key not in keys:
            continue
        task = plan.tasks[key]
        entry: dict[str, Any] = {"key": key, "kind": task.kind, "title": task.title}
        optional = {
            "priority": task.priority,
            "waits_for": [n for n in graph.waits_for(key) if n in keys],
            "children": [c for c in task.children if c in keys],
            "parent": task.parent,
            "provider": task.provider if task.kind == "work" else None,
            "project": task.project,
        }
        entry.update({name: value for name, value in optional.items() if value})
        step = decision.steps.get(key)
        if step is not None:
            entry["run"] = step.decision.run
            entry["action"] = step.action.value
            entry["why"] = step.decision.why
        tasks.append(entry)
    return {"format": RUN_PLAN_FORMAT, "tasks": tasks}


def _selected(plan: CompiledPlan, only: Collection[str] | None) -> set[str]:
    """The keys a run covers: everything, or ``only`` with what it waits for and the
    groups that contain any of those (as planrun.core.runstate.RunState selects them)."""
    if only is None:
        return set(plan.tasks)
    keys = plan.graph.upstream(only)
    groups = {
        k for k, t in plan.tasks.items() if t.kind == "group" and any(c in keys for c in t.children)
    }
    return keys | groups


@contextmanager
def open_state(plan: CompiledPlan, state_dir: Path, *, readonly: bool = False) -> Iterator[State]:
    """Open ``state_dir``'s store for ``plan``; recover a dead run unless ``readonly``.

    The caller holds the state lock when not ``readonly``. A read-only open of a folder
    without a store yields an empty state (nothing known). Raises StoreError for a store
    that is not planrun's or is damaged (the file is left as it is) and UsageError when
    another plan file owns this plan's name here.
    """
    from planrun.state.sqlite import Store

    path = state_dir / STATE_FILE
    if readonly and not path.exists():
        yield State(None, plan, readonly)
        return
    store = Store.open(path, readonly=readonly)
    try:
        check_plan_owner(store, plan, path)
        state = State(store, plan, readonly)
        if not readonly:
            from planrun.state.journal import JOURNAL_DIR, replay
            from planrun.state.stops import clear_stops, read_stops

            state.journal_dir = state_dir / JOURNAL_DIR
            replayed = replay(store, state.journal_dir)
            dead = [run.id for run in store.runs(plan.name) if run.ended_at is None]
            spare = reattachable(plan, store)
            state.reattach = {key for _, key in spare}
            stops = read_stops(state.journal_dir)
            notes = recover(store, plan.name, spare, stops)
            state.recovered = replayed + notes + remove_partial_reports(state_dir, dead)
            clear_stops(state.journal_dir, [r.id for r in store.runs(plan.name) if r.id in stops])
        state.known = known_tasks(store, plan.name)
        try:
            yield state
        finally:
            state.close_journal()
    finally:
        store.close()


def check_plan_owner(store: StoreProtocol, plan: CompiledPlan, path: Path) -> None:
    """Refuse a second plan file that would share this plan's state: one state folder
    holds one plan (another name is refused; so is another file of the same name).

    A plan file that moved (the recorded one no longer exists) takes the state over.
    """
    other = store.last_run(None)
    if other is not None and other.plan_name != plan.name:
        raise UsageError(
            f"{path} holds the state of plan {other.plan_name!r} ({other.plan_path}); "
            f"give plan {plan.name!r} its own settings.state_dir (or leave it unset: "
            "each plan then gets .planrun/<name>)"
        )
    last = store.last_run(plan.name)
    if last is None or last.plan_path == str(plan.path):
        return
    if Path(last.plan_path).exists():
        raise UsageError(
            f"{path} already holds the state of plan {plan.name!r} from {last.plan_path}; "
            f"give {plan.path.name} another `name:` or its own settings.state_dir"
        )


# ---------------------------------------------------------------- recovery


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
        store.mark_interrupted(attempt.run_id, attempt.key, attempt.n, now)
        notes.append(_interrupted_note(attempt, stopped))
    for run in dead:
        notes.append(_end_dead_run(store, run, stopped, now))
    return notes


def _interrupted_note(attempt: AttemptRow, stopped: Mapping[str, str]) -> str:
    what = f"attempt {attempt.n} of {attempt.key} (run {attempt.run_id})"
    if attempt.run_id in stopped:
        return f"{what} ended unrecorded: the run's journal failed; marked interrupted"
    return f"{what} was interrupted"


def _end_dead_run(store: StoreProtocol, run: RunRow, stopped: Mapping[str, str], now: str) -> str:
    """End a run that never ended; returns the note saying how."""
    if run.id not in stopped:
        store.end_run(run.id, "interrupted", now)
        return f"run {run.id} had not ended (planrun died): marked interrupted"
    store.end_run(run.id, "failed", now)  # as its apply reported it (exit 1)
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


@dataclass(frozen=True)
class _Proc:
    pid: int
    pgid: int
    run_id: str  # its PLANRUN_RUN_ID
    key: str | None  # its PLANRUN_TASK_KEY (None for run-level hooks)


def reattachable(plan: CompiledPlan, store: StoreProtocol) -> set[tuple[str, str]]:
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


# ---------------------------------------------------------------- what is known


def known_tasks(store: StoreProtocol, plan_name: str) -> dict[str, Known]:
    """What the store knows of each task of ``plan_name`` that ever started or finished.

    ``fields`` (per-field hashes, to name what changed) come from the task's row in the
    run that did it last: the done run for a done task, else the plan's last run.
    """
    from planrun.core.decision import INTERRUPT_CREDIT, Known

    runs = store.runs(plan_name)
    order = {run.id: n for n, run in enumerate(runs)}
    last = store.last_run(plan_name)
    rows = _RowsByRun(store)
    states = store.task_states(plan_name)
    unfinished = {key for key, row in states.items() if row.status is Status.RUNNING}
    interrupted = _trailing_interruptions(store, runs, unfinished)
    known: dict[str, Known] = {}
    for key, row in states.items():
        done = row.status is Status.DONE and row.done_run_id is not None
        source = row.done_run_id if done else (last.id if last else None)
        fields = rows.fields(source, key, row.fingerprint) if source else None
        streak, last_attempt = interrupted.get((key, row.fingerprint), (0, None))
        known[key] = Known(
            fingerprint=row.fingerprint,
            status=row.status,
            attempts=row.attempts_total,
            # attempts cut short by planrun's own death are not charged (a few in a row),
            # so resuming re-runs the task; one that kills planrun every time runs out
            credit=min(streak, INTERRUPT_CREDIT),
            done_run_id=row.done_run_id,
            fields=fields,
            done_order=order.get(row.done_run_id) if done and row.done_run_id else None,
            landed_commit=rows.landed(row.done_run_id, key) if done and row.done_run_id else None,
            last_attempt=last_attempt,
        )
    return known


def _trailing_interruptions(
    store: StoreProtocol, runs: list[RunRow], unfinished: Collection[str], depth: int = 5
) -> dict[tuple[str, str], tuple[int, str]]:
    """(key, fingerprint) → how many of its latest attempts in a row planrun's death ended,
    and the latest attempt's name (``run_id#n``, as landing trailers name it).

    An attempt ended by planrun's death is ``interrupted``; so is, in effect, the latest
    attempt of an ``unfinished`` task (still RUNNING in task_state: nothing final was
    recorded after it) that succeeded: planrun died after the work but before landing it
    or recording the task done. Looks at the last ``depth`` runs; a task with more
    interruptions than that in a row is charged for them all anyway.
    """
    latest_first: dict[str, list[AttemptRow]] = {}
    for run in reversed(runs[-depth:]):
        for attempt in sorted(store.attempts(run.id), key=lambda a: a.n, reverse=True):
            latest_first.setdefault(attempt.key, []).append(attempt)
    counts: dict[tuple[str, str], tuple[int, str]] = {}
    for key, attempts in latest_first.items():
        fingerprint = attempts[0].fingerprint
        streak = 0
        for n, attempt in enumerate(attempts):
            # an open attempt is one recovery has not closed yet (a read-only look, such as
            # ``planrun plan``, sees it before apply recovers it as interrupted)
            cut_short = attempt.outcome in (Outcome.INTERRUPTED, None) or (
                n == 0 and key in unfinished and attempt.outcome is Outcome.SUCCEEDED
            )
            if attempt.fingerprint != fingerprint or not cut_short:
                break
            streak += 1
        counts[(key, fingerprint)] = (streak, attempt_name(attempts[0].run_id, attempts[0].n))
    return counts


def attempt_name(run_id: str, n: int) -> str:
    """How a landing trailer names an attempt: ``<run id>#<n>``."""
    return f"{run_id}#{n}"


class _RowsByRun:
    """Task rows of a run, read once per run."""

    def __init__(self, store: StoreProtocol) -> None:
        self.store = store
        self._runs: dict[str, dict[str, TaskRow]] = {}

    def _row(self, run_id: str, key: str) -> TaskRow | None:
        if run_id not in self._runs:
            self._runs[run_id] = {t.key: t for t in self.store.tasks(run_id)}
        return self._runs[run_id].get(key)

    def landed(self, run_id: str, key: str) -> str | None:
        """The commit ``key`` landed in ``run_id``, if any."""
        row = self._row(run_id, key)
        return row.landed_commit if row is not None else None

    def fields(self, run_id: str, key: str, fingerprint: str) -> dict[str, str] | None:
        """The per-field hashes recorded with ``key`` in ``run_id`` for that fingerprint."""
        row = self._row(run_id, key)
        if row is None or row.fingerprint != fingerprint:
            return None
        value = row.data.get("fields")
        if not isinstance(value, dict):
            return None
        return {str(k): str(v) for k, v in value.items()}


# ---------------------------------------------------------------- read-only commands


@dataclass(frozen=True)
class Located:
    """Where a plan's state lives. ``plan_name`` is None when no plan was named."""

    state_dir: Path
    plan_name: str | None = None
    plan_path: Path | None = None

    @property
    def db_path(self) -> Path:
        return self.state_dir / STATE_FILE


def locate(plan: str | None, state_dir: Path | None) -> Located:
    """The state folder of ``plan`` (or of the current folder), as ``apply`` would use it.

    With a plan: its name and its state folder (:func:`planrun.workspace.names.state_folder`,
    relative to the plan's folder) unless ``state_dir`` overrides it. Without: ``state_dir``
    or ``./.planrun``, or the one plan's folder inside it (UsageError when it holds
    several: name the plan). Raises UsageError for a plan file that does not exist,
    PlanError for one that cannot be read.
    """
    from planrun.workspace.names import STATE_PARENT, state_folder

    if plan is None:
        return _only_state((state_dir or Path(STATE_PARENT)).resolve())
    path = Path(plan)
    if not path.is_file():
        raise UsageError(f"{plan}: no such plan file")
    name, configured = plan_identity(path)
    folder = state_dir or path.resolve().parent / state_folder(name, configured)
    return Located(folder.resolve(), name, path.resolve())


def _only_state(folder: Path) -> Located:
    """``folder`` if it holds a store, else the one plan state folder inside it."""
    if (folder / STATE_FILE).exists():
        return Located(folder)
    inside = sorted(p.parent for p in folder.glob(f"*/{STATE_FILE}"))
    if len(inside) > 1:
        names = ", ".join(p.name for p in inside)
        raise UsageError(f"{folder} holds the state of several plans ({names}): name the plan")
    return Located(inside[0] if inside else folder)


def plan_identity(path: Path) -> tuple[str, str | None]:
    """A plan's name and ``settings.state_dir`` (None when not set) without compiling it.

    Reads the YAML event stream only as far as needed, so that a read-only command on a
    10,000-task plan answers at once. Anything unusual at those two places (an alias, a
    merge key, a syntax error) falls back to loading the plan properly, which reports
    errors with their location.
    """
    try:
        found = _scan_identity(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        found = None
    if found is None:
        from planrun.plan.load import load_plan

        compiled = load_plan(path)
        return compiled.name, compiled.settings.state_dir
    name, state_dir = found
    return name or path.stem, state_dir


class _Unusual(Exception):
    """The cheap reading cannot be trusted here; load the plan properly."""


def _scan_identity(text: str) -> tuple[str | None, str | None] | None:
    """(name, state_dir) from the top-level mapping's events, or None when unsure."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    events = iter(YAML(typ="safe").parse(text))
    try:
        return _top_level(events, _wanted(text))
    except (_Unusual, YAMLError, StopIteration):
        return None


def _wanted(text: str) -> set[str]:
    """The top-level keys worth looking for: in a block mapping every top-level key starts
    a line, so a key that starts no line is absent and the scan can stop before the tasks.
    (A flow-style top level is noticed by :func:`_top_level`, which then wants both.)"""
    import re

    if re.search(r"(?m)^<<\s*:", text):
        raise _Unusual  # a merge key at the top: let the real loader expand it
    return {k for k in ("name", "settings") if re.search(rf"(?m)^[\"']?{k}[\"']?\s*:", text)}


def _top_level(events: Iterator[Any], wanted: set[str]) -> tuple[str | None, str | None]:
    from ruamel.yaml import events as ev

    while not isinstance(start := next(events), ev.MappingStartEvent):
        pass
    if start.flow_style:
        wanted = {"name", "settings"}
    name: str | None = None
    state_dir: str | None = None
    while wanted:
        event = next(events)
        if isinstance(event, ev.MappingEndEvent):
            break
        key = _scalar_key(event)
        value = next(events)
        if key == "name":
            name = _scalar_value(value)
        elif key == "settings":
            state_dir = _settings_state_dir(events, value)
        else:
            _skip(events, value)
        wanted.discard(key)
    return name, state_dir


def _scalar_key(event: Any) -> str:
    from ruamel.yaml import events as ev

    if not isinstance(event, ev.ScalarEvent) or event.value == "<<":
        raise _Unusual
    return str(event.value)


def _scalar_value(event: Any) -> str | None:
    from ruamel.yaml import events as ev

    if isinstance(event, ev.ScalarEvent):
        return None if event.value in ("", "~", "null") and event.style is None else event.value
    raise _Unusual


def _settings_state_dir(events: Iterator[Any], start: Any) -> str | None:
    from ruamel.yaml import events as ev

    if not isinstance(start, ev.MappingStartEvent):
        _skip(events, start)
        if isinstance(start, ev.AliasEvent):
            raise _Unusual
        return None
    state_dir = None
    while True:
        event = next(events)
        if isinstance(event, ev.MappingEndEvent):
            return state_dir
        key = _scalar_key(event)
        value = next(events)
        if key == "state_dir":
            state_dir = _scalar_value(value)
        else:
            _skip(events, value)


def _skip(events: Iterator[Any], start: Any) -> None:
    """Consume the rest of the node that ``start`` began."""
    from ruamel.yaml import events as ev

    depth = 1 if isinstance(start, ev.CollectionStartEvent) else 0
    while depth:
        event = next(events)
        if isinstance(event, ev.CollectionStartEvent):
            depth += 1
        elif isinstance(event, ev.CollectionEndEvent):
            depth -= 1


def catch_up(state_dir: Path) -> list[str]:
    """Replay what a killed apply journaled but did not get into the store yet (see
    :mod:`planrun.state.journal`), so that ``status``, ``logs`` and ``report`` show its last
    moments too; returns what was done.

    Only when no apply runs: the state lock is taken without waiting, and only when a
    journal file is there (after a crash). A live run's writer applies its own file within
    :data:`planrun.state.journal.WINDOW` seconds. Quietly does nothing when the lock or a writable
    store cannot be had (another apply, a folder this user may only read).
    """
    from planrun.errors import StateLockedError
    from planrun.state.journal import JOURNAL_DIR, replay
    from planrun.state.lock import REPLAYING, StateLock
    from planrun.state.sqlite import Store

    journal_dir = state_dir / JOURNAL_DIR
    db_path = state_dir / STATE_FILE
    try:
        if not db_path.exists() or not any(journal_dir.glob("*.jsonl")):
            return []
        lock = StateLock.acquire(state_dir, argv=[*sys.argv[:2], REPLAYING])
    except (OSError, StateLockedError, StoreError):
        return []
    with lock:
        try:
            with Store.open(db_path) as store:
                return replay(store, journal_dir)
        except (OSError, StoreError):
            return []


def open_readonly(located: Located) -> StoreProtocol:
    """The state store opened read-only (works while an apply writes), once a killed run's
    journal was caught up (:func:`catch_up`). StoreError if absent."""
    from planrun.state.sqlite import Store

    catch_up(located.db_path.parent)
    try:
        os.stat(located.db_path)
    except PermissionError as error:
        raise StoreError(
            str(located.db_path),
            f"cannot read it ({error.strerror})",
            "ask its owner for read access to the state folder and the folders above it",
        ) from error
    except OSError:
        pass
    if not located.db_path.exists():
        where = f"plan {located.plan_name!r} " if located.plan_name else ""
        raise StoreError(
            str(located.db_path),
            f"no state store here yet ({where}never applied here)",
            "run `planrun apply PLAN` first, or pass PLAN or --state-dir to point at it",
        )
    return Store.open(located.db_path, readonly=True)


def select_run(store: StoreProtocol, located: Located, run_id: str | None = None) -> RunRow:
    """The run asked for (``run_id``), else the plan's (or the store's) last run.

    UsageError when there is none, or when ``run_id`` belongs to another plan.
    """
    if run_id is not None:
        run = store.run(run_id)
        if run is None or (located.plan_name and run.plan_name != located.plan_name):
            known = [r.id for r in store.runs(located.plan_name)] if located.plan_name else []
            from planrun.plan.diagnose import suggest

            raise UsageError(f"--run {run_id}: no such run of this plan{suggest(run_id, known)}")
        return run
    run = store.last_run(located.plan_name)
    if run is None:
        what = f"plan {located.plan_name!r}" if located.plan_name else "any plan"
        raise UsageError(f"{located.db_path} holds no run of {what} yet")
    return run


def in_run(
    planned: list[dict[str, Any]], recorded: Collection[str], liveness: str
) -> list[dict[str, Any]]:
    """The planned tasks that belong to the run as it is shown.

    An apply that ended gave every task it covered a final row, so in an ended run a
    planned task without a row was not selected (``--only``) and is left out. (Until apply
    passes ``only`` to :meth:`State.begin`, a live or dead ``--only`` run lists them all.)
    """
    if liveness != "ended":
        return planned
    return [t for t in planned if t.get("key") in recorded]


def planned_tasks(events: list[EventRow]) -> list[dict[str, Any]]:
    """The tasks of a run as its ``run_plan`` event lists them ([] for older runs)."""
    for event in events:
        if event.kind == RUN_PLAN_EVENT:
            tasks = event.data.get("tasks")
            return [t for t in tasks if isinstance(t, dict)] if isinstance(tasks, list) else []
    return []


# ---------------------------------------------------------------- how a run looks now


def run_liveness(run: RunRow, holder: Mapping[str, Any] | None) -> str:
    """``ended``, ``live`` (its apply holds the state lock now) or ``dead`` (it died).

    ``holder`` is :func:`planrun.state.lock.read_holder`'s answer for the run's folder.
    """
    if run.ended_at is not None:
        return "ended"
    if holder is not None and holder.get("pid") == run.pid and holder.get("host") == run.host:
        return "live"
    return "dead"


def run_status(run: RunRow, liveness: str) -> str:
    """The run's status for humans and reports: running, interrupted, succeeded, failed."""
    if liveness == "live":
        return "running"
    if liveness == "dead":
        return "interrupted"
    return run.status if run.status in ("succeeded", "failed", "interrupted") else "failed"


def task_status(
    recorded: str | None,
    reason: str,
    *,
    liveness: str,
    attempt_open: bool,
    last_outcome: str | None,
    why: str = "",
    session_alive: bool = False,
) -> tuple[str, str]:
    """A task's (status, reason) as ``status`` and ``report`` show it.

    ``recorded`` is the run's task row status (None: no row yet), ``why`` apply's decision
    for a task without a row. A live run's task with no open attempt is landing when its
    last attempt succeeded, else backing off (``retrying``). In a run that died, what was
    running or waiting is ``cancelled``, as apply itself reports an interrupted run, but for
    an open attempt whose tmux session still runs (``session_alive``): that one is running,
    and the next apply re-attaches to it.
    """
    active = recorded is None or recorded == Status.RUNNING.value
    if active and liveness == "dead" and attempt_open and session_alive:
        return Status.RUNNING.value, "running (planrun exited; re-attached by the next apply)"
    if active and liveness != "live":
        if recorded is None:
            return Status.CANCELLED.value, "the run was interrupted"
        return Status.CANCELLED.value, "interrupted: planrun exited during the attempt"
    if recorded is None:
        return Status.PENDING.value, why
    if recorded == Status.RUNNING.value and not attempt_open:
        if last_outcome in (None, "succeeded"):
            return Status.RUNNING.value, reason or "landing"
        return Status.RETRYING.value, reason or f"last attempt {last_outcome}"
    return recorded, reason


def elapsed_s(started_at: str | None, ended_at: str | None, now: float) -> float | None:
    """Seconds from ``started_at`` to ``ended_at`` (or ``now``); None when not started."""
    if not started_at:
        return None
    end = parse_time(ended_at) if ended_at else now
    return round(max(end - parse_time(started_at), 0.0), 3)


def parse_time(stamp: str) -> float:
    """A store time (``2026-11-21T06:00:00.123456Z``) as a POSIX timestamp."""
    from datetime import UTC, datetime

    moment = datetime.fromisoformat(stamp)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
