"""``planrun serve PLAN``: a long-running dispatcher over the machinery of ``apply``.

The design: **successive passes, running concurrently, under one state lock and shared
caps.** Every ``interval`` serve compiles the plan again (which reads its trackers; a
plan that reads a tracker is never taken from the compiled-plan cache), reads what the
store knows, and makes apply's one decision (:func:`planrun.run.prepare.decide_for`).
The work tasks the decision runs that no open pass is running, and that wait for no task
an open pass is running, become a new *pass*: a run in the store of its own (its run id,
journal, report, outbox), exactly ``apply --only THOSE`` would be, started at once
beside the passes already running. All passes share one :class:`Caps`, so the plan's
``max_concurrent`` and provider and project caps hold over all of them; a pass whose
ready tasks find the caps full waits for a slot (``Scheduler.waits_for_slots``), and a
slot freed in one pass wakes the others (``Scheduler.wake``).

Why passes and not one scheduler whose task set grows: a pass *is* an apply, so
convergence, journal replay, recovery, landing, reports, status and the board need no
second code path: nothing in the store is new. A growing scheduler would have to grow
the compiled plan, its graph, the run's ledger, its journal's fingerprints and its
``run_plan`` record while they are in use.

Reconciling at each poll: a task still running whose item the trackers no longer select
(closed, unlabelled) is cancelled with that reason (its worktree is kept, as for every
cancelled task). A task whose item was edited while it runs is left to finish; the next
poll after it ends sees a fingerprint that differs from the one it was done with and runs
it again (the decision's ordinary "changed" re-run): cancelling it would throw away work
that the re-run may well keep, and an agent edited mid-run is a race either way.

Signals: the first SIGINT/SIGTERM drains (nothing new starts, running tasks finish), the
second cancels running tasks (as apply's first does), the third kills them at once.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from planrun.changes.clones import load_prepared
from planrun.core import events as ev
from planrun.core.decision import RunDecision
from planrun.core.events import Observers
from planrun.core.frozen import frozen
from planrun.core.outcomes import Status
from planrun.core.redact import Redactor
from planrun.core.runstate import Caps
from planrun.errors import PlanrunError, StoreError
from planrun.plan.resolved import CompiledPlan
from planrun.report.outputs import Outputs, write_reports
from planrun.run.apply import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_WAITING,
    ApplyOptions,
    build_report,
    new_run_id,
    run_exit_code,
    scheduler_for,
)
from planrun.run.context import RunSettings
from planrun.run.environment import secret_values
from planrun.run.prepare import decide_for, fingerprints_of
from planrun.run.scheduler import Scheduler
from planrun.run.serve_file import ServeStatus, paused, remove_status, write_status
from planrun.run.tracking import FLUSH_TIME, outbox_for
from planrun.state.folder import State, open_state
from planrun.state.known import known_tasks
from planrun.state.store import iso

if TYPE_CHECKING:
    from planrun.run.agent_desk import Desk

#: How often, at most, serve looks at its pause switch between two polls (seconds).
PAUSE_CHECK = 1.0
#: Why a task is cancelled when its item leaves the selection.
DESELECTED = "cancelled: its tracker item is no longer selected (closed, or its labels changed)"


@frozen
class ServeOptions:
    state_dir: Path
    interval: float = 60.0
    once: bool = False
    max_concurrent: int | None = None
    on_failure: str | None = None


@dataclass
class _Pass:
    """One run that serve started: an ``apply --only`` of the tasks that were new."""

    plan: CompiledPlan
    scheduler: Scheduler
    fingerprints: Mapping[str, tuple[str, Any]]
    journal: Any
    outbox: Any

    def unfinished(self) -> set[str]:
        """The work tasks this pass has not brought to a final status (or review)."""
        state = self.scheduler.state
        return {
            k
            for k, t in state.tasks.items()
            if state.graph.tasks[k].kind == "work"
            and not t.status.is_final
            and t.status is not Status.IN_REVIEW
        }


@dataclass
class _Waker:
    """An observer: a task that gave back its slot wakes the other passes."""

    server: Server

    def event(self, event: ev.Event) -> None:
        if isinstance(event, ev.TaskFinished | ev.TaskPaused | ev.RetryScheduled):
            self.server.wake_soon()


@dataclass
class Server:
    path: Path
    state: State
    options: ServeOptions
    observers: Observers
    caps: Caps
    passes: list[_Pass] = field(default_factory=list)
    codes: list[int] = field(default_factory=list)
    signals: int = 0
    #: what each task was last started for, (fingerprint, why): the same again is not
    #: started again by this process (a failed task would otherwise fail at every poll)
    tried: dict[str, tuple[str, str]] = field(default_factory=dict)
    status: ServeStatus | None = None
    redact: Callable[[str], str] = str
    desks: list[Desk] = field(default_factory=list)  # the plan's Plane agents
    _poke: trio.Event = field(default_factory=trio.Event)
    _nursery: trio.Nursery | None = None  # the passes'

    # ------------------------------------------------------------ the loop

    async def serve(self) -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as received:
            async with trio.open_nursery() as outer:
                outer.start_soon(self._watch, received)
                for desk in self.desks:
                    outer.start_soon(desk.run)
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    await self._loop(nursery)
                with trio.move_on_after(FLUSH_TIME if self.signals < 2 else 0):
                    for desk in self.desks:  # what the last tasks said, while serve lives
                        await desk.outbox.drained()
                outer.cancel_scope.cancel()

    async def _loop(self, nursery: trio.Nursery) -> None:
        interval = self.options.interval
        while not self.signals:
            await self.poll(nursery)
            if self.options.once:
                return
            self._write_status(next_poll=time.time() + interval)
            await self._until_next_poll(interval)
            self._poke = trio.Event()

    async def _until_next_poll(self, interval: float) -> None:
        """Wait ``interval``, or less: a signal, or ``--resume`` (or ``--pause``) from
        another shell, seen within :data:`PAUSE_CHECK` seconds, ends the wait."""
        deadline = trio.current_time() + interval
        was = paused(self.options.state_dir)
        while trio.current_time() < deadline:
            with trio.move_on_at(min(deadline, trio.current_time() + PAUSE_CHECK)):
                await self._poke.wait()
            if self._poke.is_set() or paused(self.options.state_dir) != was:
                return

    async def poll(self, nursery: trio.Nursery) -> None:
        """Read the trackers, reconcile what runs, start what is new or changed."""
        problem = None
        try:
            plan = await trio.to_thread.run_sync(self._load)
            self._reconcile(plan)
            if not self.signals and not paused(self.options.state_dir):
                await self._start_new(plan, nursery)
        except (PlanrunError, OSError) as error:  # a tracker down: tried again next time
            problem = self.redact(str(error))  # shown and kept in serve.json: no secret
            print(
                f"planrun: serve: this poll failed, the next one tries again: {problem}",
                file=sys.stderr,
            )
        if self.status is not None:
            self.status.last_poll = iso(time.time())
            self.status.last_problem = problem

    def _load(self) -> CompiledPlan:
        """The plan, compiled again with each agent's open conversations as its items."""
        if not self.desks:
            return load_prepared(self.path)
        plan = load_prepared(self.path, {d.name: d.mentions() for d in self.desks})
        for desk in self.desks:
            desk.plan = plan
        return plan

    def poke(self) -> None:
        """Poll now (an agent took a mention or a reply)."""
        self._poke.set()

    def cancel(self, key: str, why: str) -> None:
        """Cancel task ``key`` wherever it runs (an agent's stop request)."""
        for running in self.passes:
            if key in running.unfinished():
                running.scheduler.cancel_task(key, why)

    def _reconcile(self, plan: CompiledPlan) -> None:
        for key in [k for k in self.tried if k not in plan.tasks]:
            del self.tried[key]  # deselected: selected again, it runs again
        for running in self.passes:
            for key in running.unfinished():
                if key not in plan.tasks:
                    running.scheduler.cancel_task(key, DESELECTED)

    async def _start_new(self, plan: CompiledPlan, nursery: trio.Nursery) -> None:
        # busy first, then flush: a task not busy now finished before the flush, so what
        # it recorded is in the store when it is read (else it could run twice)
        busy = set().union(*(p.unfinished() for p in self.passes))
        for running in list(self.passes):
            await trio.to_thread.run_sync(_flush, running.journal)
        store = self.state.store
        assert store is not None  # serve never runs read-only
        known = await trio.to_thread.run_sync(known_tasks, store, plan.name)
        fingerprints = fingerprints_of(plan)
        decision: RunDecision = await trio.to_thread.run_sync(
            lambda: decide_for(plan, known, fingerprints=fingerprints)
        )
        graph = plan.graph
        keys = [
            k
            for k in plan.work
            if decision.steps[k].decision.run
            and k not in busy
            and not (graph.upstream([k]) & busy)
            and self.tried.get(k) != _attempted(decision, fingerprints, k)
        ]
        if keys and not self.signals and not paused(self.options.state_dir):
            self.tried.update({k: _attempted(decision, fingerprints, k) for k in keys})
            self.state.known = known
            nursery.start_soon(self._run_pass, self._begin(plan, keys, decision, fingerprints))

    def _begin(
        self,
        plan: CompiledPlan,
        keys: list[str],
        decision: RunDecision,
        fingerprints: Mapping[str, tuple[str, Any]],
    ) -> _Pass:
        """Record a pass as a run (as ``apply --only KEYS``) and wire its scheduler."""
        options = self.options
        settings = RunSettings(
            run_id=new_run_id(),
            state_dir=options.state_dir,
            max_concurrent=options.max_concurrent,
            on_failure=options.on_failure,
            only=keys,
        )
        observers = Observers([self.observers, _Waker(self), *self.desks])
        apply_options = ApplyOptions(state_dir=options.state_dir, only=keys)
        scheduler = scheduler_for(
            plan, self.state, settings, apply_options, observers, (decision, fingerprints)
        )
        self.state.recovered = []  # said once, by the first pass
        self.state.reattach = set()  # tmux sessions left running belong to the first pass
        outbox = outbox_for(plan, self.state, scheduler, observers)
        if outbox is not None:  # an update pending in an open pass is that pass's to deliver
            held = {i for p in self.passes if p.outbox is not None for i in p.outbox.pending}
            outbox.pending = {i: p for i, p in outbox.pending.items() if i not in held}
        journal, self.state.journal = self.state.journal, None
        scheduler.state.caps = self.caps  # every pass counts against the same caps
        scheduler.waits_for_slots = not options.once
        started = _Pass(plan, scheduler, fingerprints, journal, outbox)
        self.passes.append(started)
        return started

    async def _run_pass(self, running: _Pass) -> None:
        scheduler = running.scheduler
        try:
            await _run_with_outbox(scheduler, running.outbox)
        finally:
            self.passes.remove(running)
            report = build_report(running.plan, scheduler, running.fingerprints)
            self.state.journal = running.journal  # State.end closes it, then ends the run
            try:
                self.state.end(scheduler.settings.run_id, report.status)
            except StoreError as error:
                print(f"planrun: serve: {error}", file=sys.stderr)
            written = write_reports(
                running.plan, report, self.options.state_dir, Outputs(), default=True
            )
            for problem in written.errors:  # the run is recorded all the same
                print(f"planrun: serve: {problem}", file=sys.stderr)
            self.codes.append(run_exit_code(scheduler))
            self.wake_all()

    def wake_soon(self) -> None:
        """Wake the passes once the scheduler that emitted the event is done with it."""
        if self._nursery is not None:
            self._nursery.start_soon(self._wake)

    async def _wake(self) -> None:
        self.wake_all()

    def wake_all(self) -> None:
        for running in self.passes:
            running.scheduler.wake()

    # ------------------------------------------------------------ signals and status

    async def _watch(self, received: Any) -> None:
        async for signum in received:
            self.signals += 1
            name = signal.Signals(signum).name
            if self.signals == 1:
                print(
                    f"planrun: {name}: draining: nothing new starts, running tasks finish "
                    "(again to cancel them)",
                    file=sys.stderr,
                )
                for running in list(self.passes):
                    running.scheduler.drain()
                self._poke.set()
                self._write_status(next_poll=None)
            elif self.signals == 2:
                print(f"planrun: {name} again: cancelling running tasks", file=sys.stderr)
                for running in list(self.passes):
                    running.scheduler.interrupt()
            else:
                print(f"planrun: {name} again: killing every task now", file=sys.stderr)
                for running in list(self.passes):
                    running.scheduler.kill_now()

    def _write_status(self, *, next_poll: float | None) -> None:
        status = self.status
        if status is None:
            return
        status.next_poll = iso(next_poll) if next_poll is not None else None
        status.draining = self.signals > 0
        status.runs = [p.scheduler.settings.run_id for p in self.passes]
        status.webhooks = {d.name: d.listening for d in self.desks if d.listening}
        try:
            write_status(self.options.state_dir, status)
        except OSError as error:
            print(f"planrun: serve: cannot write its status: {error}", file=sys.stderr)

    def exit_code(self) -> int:
        """``--once``: apply's exit code for its pass (0 when nothing was new). Serving
        until a signal: 0 when drained, 130 when a second signal cancelled tasks."""
        if self.signals >= 2:
            return EXIT_INTERRUPTED
        if not self.options.once:
            return EXIT_OK
        for code in (EXIT_INTERRUPTED, EXIT_FAILED, EXIT_WAITING):
            if code in self.codes:
                return code
        return EXIT_OK


def _attempted(
    decision: RunDecision, fingerprints: Mapping[str, tuple[str, Any]], key: str
) -> tuple[str, str]:
    return fingerprints[key][0], decision.steps[key].decision.why


def _flush(journal: Any) -> None:
    flush = getattr(journal, "flush", None)
    if flush is not None:
        flush()


async def _run_with_outbox(scheduler: Scheduler, outbox: Any) -> None:
    """A pass's scheduler, with its outbox delivering beside it (as apply's run_tracked,
    without a signal watcher of its own: serve watches the signals of every pass)."""
    if outbox is None:
        await scheduler.run()
        return
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(outbox.deliver)
            await scheduler.run()
            outbox.stop()
            nursery.cancel_scope.deadline = trio.current_time() + FLUSH_TIME
        with trio.move_on_after(FLUSH_TIME):
            await outbox.flush()
    finally:
        outbox.clients.close()


def serve_plan(plan: CompiledPlan, options: ServeOptions, observers: Observers) -> int:
    """Serve ``plan`` (compiled once here, to check it before anything starts) until a
    signal, or for one pass with ``once``; returns the exit code."""
    from planrun.sessions.process import become_subreaper
    from planrun.state.lock import StateLock

    with StateLock.acquire(options.state_dir), open_state(plan, options.state_dir) as state:
        server = Server(plan.path, state, options, observers, _caps(plan, options))
        server.redact = Redactor(secret_values(plan, os.environ)).redact
        if plan.agents and not options.once:  # an agent answers while serve lives
            from planrun.run.agent_desk import Desk

            server.desks = [
                Desk(
                    name,
                    agent,
                    options.state_dir,
                    os.environ,
                    redact=server.redact,
                    poke=server.poke,
                    cancel=server.cancel,
                )
                for name, agent in plan.agents.items()
            ]
        if not options.once:
            server.status = ServeStatus(os.getpid(), iso(time.time()), options.interval)
        become_subreaper()
        try:
            trio.run(server.serve)
        finally:
            remove_status(options.state_dir)
    return server.exit_code()


def _caps(plan: CompiledPlan, options: ServeOptions) -> Caps:
    return Caps(
        total=options.max_concurrent or plan.settings.max_concurrent,
        providers={n: p.max_concurrent for n, p in plan.providers.items() if p.max_concurrent},
        projects={n: p.max_concurrent for n, p in plan.projects.items() if p.max_concurrent},
    )
