"""The state folder as ``apply`` uses it: open it, refuse a foreign plan, record a run.

``apply`` calls :func:`open_state` (holding the state lock): it refuses a second plan file
that would share this plan's state (:func:`check_plan_owner`), recovers what a planrun that
died left behind (:func:`planrun.state.recovery.recover`) and reads what is known of each
task (:func:`planrun.state.known.known_tasks`, the input of the one decision).
:meth:`State.begin` then records the run, and what apply decided for every task, before
anything runs.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from planrun import __version__
from planrun.errors import UsageError
from planrun.state.known import known_tasks
from planrun.state.open import STATE_FILE as STATE_FILE  # where it always was
from planrun.state.open import is_url, open_store, redacted
from planrun.state.records import TaskDone
from planrun.state.recovery import reattachable, recover, remove_partial_reports
from planrun.state.store import RUN_PLAN_EVENT, RunRow, StoreProtocol, StoreReader, utc_now

if TYPE_CHECKING:
    from planrun.core.decision import Known, RunDecision
    from planrun.plan.resolved import CompiledPlan
    from planrun.state.journal import StoreJournal
    from planrun.state.recording import Journal

#: The version of the run_plan event's data (:func:`run_plan`).
RUN_PLAN_FORMAT = 1
#: The event that lists what recovery did at the start of a run.
RECOVERED_EVENT = "recovered"


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
        from planrun.state.journal import StoreJournal
        from planrun.state.recording import NullJournal

        if self.store is None or self.readonly:
            return NullJournal()
        self.store.run_started(_run_row(run_id, plan))
        if self.recovered:
            self.store.happened(run_id, RECOVERED_EVENT, None, {"notes": self.recovered})
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
            self.store.attempts_reset(run_id, fresh)
        self.store.happened(run_id, RUN_PLAN_EVENT, None, run_plan(plan, decision, only))
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
            data = {"fields": dict(fields), "title": plan.tasks[key].title}
            done = TaskDone(
                plan_name=plan.name,
                key=key,
                fingerprint=fp,
                reason=why,
                landed_commit=commit,
                data=data,
            )
            self.store.task_done(run_id, done)
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
            self.store.run_ended(run_id, status, utc_now())

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
        args=tuple(redacted(a) if is_url(a) else a for a in sys.argv),  # --store URL
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
    path = state_dir / STATE_FILE
    if readonly and not path.exists():
        yield State(None, plan, readonly)
        return
    store = open_store(state_dir, readonly=readonly)
    try:
        check_plan_owner(store, plan, path)
        state = State(store, plan, readonly)
        if not readonly:
            from planrun.state.journal import replay
            from planrun.state.journalfile import JOURNAL_DIR
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


def check_plan_owner(store: StoreReader, plan: CompiledPlan, path: Path) -> None:
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
