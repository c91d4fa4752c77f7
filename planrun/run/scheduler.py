"""The trio driver around :class:`RunState` (SPEC §4).

One trio task (whoever calls :meth:`Scheduler.run`) owns the state; workers run one task
each, from the moment it gets a slot to its final status. Everything that changes the state
happens synchronously between checkpoints, so no lock is needed and every change is
followed at once by :meth:`_dispatch`: a task starts the moment its last need finishes and
a slot frees, with no polling interval.

A worker runs attempts (:mod:`planrun.run.attempt`) under a tenacity policy; while it backs off
or waits for an answer it gives its slot back and queues for a new one by priority like any
ready task. Each worker has a cancel scope: ``on_failure: cancel``, a signal or a second
signal cancel them, and the session backend kills the attempt's process group before the
worker records the cancellation. On success the work lands (or waits for review).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import trio

from planrun.core import events as ev
from planrun.core.events import Observers
from planrun.core.outcomes import Outcome, Status
from planrun.core.redact import Redactor
from planrun.core.runstate import Caps, Change, RunState
from planrun.core.waves import Waves
from planrun.errors import GitError, MergeConflict, StoreError
from planrun.plan.resolved import CompiledPlan, Task
from planrun.report.model import AttemptReport, TaskReport, total_usage
from planrun.run.attempt import AttemptRunner
from planrun.run.claims import Claims, Held, LocalClaims
from planrun.run.context import RunContext, RunSettings
from planrun.run.environment import secret_values
from planrun.run.guarded import Guarded
from planrun.run.hooks import HookRunner
from planrun.run.ledger import Ledger
from planrun.run.partial import keep_failed
from planrun.sessions.base import Session, SessionResult
from planrun.sessions.escapees import kill_escapees_now
from planrun.sessions.process import kill_group_now
from planrun.state.recording import Journal, NullJournal
from planrun.workspace.base import PlainWorkspace, Prepared, Workspace

__all__ = ["Scheduler"]


@dataclass
class _Attempt:
    report: AttemptReport
    result: SessionResult
    prepared: Prepared | None


class Scheduler:
    def __init__(
        self,
        plan: CompiledPlan,
        settings: RunSettings,
        *,
        sessions: Mapping[str, Session],
        workspace: Workspace | None = None,
        journal: Journal | None = None,
        observers: Observers | None = None,
        claims: Claims | None = None,
    ) -> None:
        self.plan = plan
        self.claims: Claims = claims or LocalClaims()  # may this machine run a ready task?
        self.settings = settings
        secrets = secret_values(plan, settings.environ)
        redact = Redactor(secrets).redact  # one redactor for every text of the run
        self.run_context = RunContext(
            plan=plan,
            settings=settings,
            sessions=sessions,
            workspace=workspace or PlainWorkspace(plan),
            journal=Guarded(journal or NullJournal(), self._journal_failed),
            emit=Observers([observers or Observers()], redact=redact if secrets else None),
            secrets=secrets,
            started_at=time.time(),
            ledger=Ledger(plan),
            redact=redact,
        )
        self.emit = self.run_context.emit
        self.journal = self.run_context.journal
        self.workspace = self.run_context.workspace
        self.ledger = self.run_context.ledger
        self.started_at = self.run_context.started_at
        self.state = _run_state(plan, settings)
        self.on_failure = settings.on_failure or plan.settings.on_failure
        self.hooks = HookRunner(self.run_context)
        self.attempts = AttemptRunner(self.run_context, self.hooks, self)
        self.interrupted = False
        #: The journal write that failed: the run then stops (nothing unrecorded may run).
        self.journal_error: StoreError | None = None
        self._nursery: trio.Nursery | None = None
        self._scopes: dict[str, trio.CancelScope] = {}
        self._slot_waiters: dict[str, trio.Event] = {}
        self._active = 0
        self._idle = trio.Event()
        # planrun serve (run/serve.py): runs that share their caps wait for a slot another
        # run frees instead of ending, and one task can be cancelled with its reason
        self.waits_for_slots = False
        self._cancelled: dict[str, str] = {}

    # --- the run ------------------------------------------------------------------------

    async def run(self) -> None:
        """Run every selected task to a final status (or until stopped)."""
        self.emit(
            ev.RunStarted(
                plan=self.plan.name, run_id=self.settings.run_id, tasks=len(self.state.work_keys())
            )
        )
        for key in self.state.keys:
            self.ledger.open(key)
        ok = await self.hooks.for_run("on_run_start", "running")
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            if not ok:
                self.state.stop()
                self._apply(self.state.begin(self.settings.done, self.settings.in_review))
                self._apply(self.state.cancel_unstarted("on_run_start hook failed"))
            else:
                self._apply(self.state.begin(self.settings.done, self.settings.in_review))
                self._dispatch()
            self._check_idle()
            await self._idle.wait()
        if self.state.stopping:
            self._apply(
                self.state.cancel_unstarted(
                    "the run was interrupted" if self.interrupted else "the run stopped first"
                )
            )
        with trio.CancelScope(shield=True):
            await self.hooks.for_run("on_run_end", self.status)
        usage = total_usage(a.usage for t in self.ledger.tasks.values() for a in t.attempts)
        self.emit(
            ev.RunFinished(
                status=self.status,
                counts=self.state.counts(),
                tokens=usage.tokens if usage else None,
                cost_usd=usage.cost_usd if usage else None,
            )
        )

    @property
    def reports(self) -> Mapping[str, TaskReport]:
        """The report record of each task of the run, as the ledger keeps it."""
        return self.ledger.tasks

    @property
    def status(self) -> Literal["succeeded", "failed", "interrupted"]:
        if self.interrupted:
            return "interrupted"
        if self.journal_error is not None:
            return "failed"
        return "succeeded" if self.state.succeeded else "failed"

    def interrupt(self) -> None:
        """First signal: start nothing new, cancel running tasks (they record why)."""
        if self.interrupted:
            return
        self.interrupted = True
        self.emit(ev.RunStopping(reason="interrupted"))
        self._stop(cancel=True)

    def drain(self) -> None:
        """Start nothing new; running tasks finish (planrun serve's first signal)."""
        self._stop(cancel=False)

    def wake(self) -> None:
        """A slot of the caps this run shares may have freed (planrun serve)."""
        if self._nursery is not None and not self._idle.is_set():
            self._dispatch()
            self._check_idle()

    def cancel_task(self, key: str, reason: str) -> bool:
        """Cancel one running or queued task, recording ``reason`` (its worktree is kept,
        as for any cancelled task); False if it neither runs nor waits here."""
        scope = self._scopes.get(key)
        if scope is not None:
            self._cancelled[key] = reason
            scope.cancel()
        elif key in self.state.tasks and self.state.status(key) is Status.READY:
            self._apply(self.state.finish(key, Status.CANCELLED, reason))  # queued, not begun
            self._check_idle()
        else:
            return False
        return True

    def _journal_failed(self, error: StoreError) -> None:
        """A journal write failed (disk full, ...): start nothing new, cancel what runs."""
        if self.journal_error is not None:
            return
        self.journal_error = error
        self.emit(ev.RunStopping(reason=f"the journal failed: {error.problem}"))
        self._stop(cancel=True)

    def kill_now(self) -> None:
        """Second signal: SIGKILL every process group at once (tasks' and hooks'), and the
        sessions' escapees; no hook starts after this."""
        self.run_context.control.killed = True
        for info in list(self.run_context.groups.values()):
            kill_group_now(info.pgid)  # never planrun's own group
        kill_escapees_now()

    def _stop(self, *, cancel: bool) -> None:
        self.state.stop()
        for key, scope in list(self._scopes.items()):
            if cancel or self.state.status(key) in (Status.RETRYING, Status.NEEDS_INPUT):
                scope.cancel()
        self._check_idle()

    def _check_idle(self) -> None:
        """The run is over when no worker is active: after a dispatch, nothing else can
        start (tasks in review or waiting on them stay as they are)."""
        tasks = self.state.tasks.values()  # serve: a ready task may wait for a shared slot
        waits = self.waits_for_slots and not self.state.stopping
        if self._active == 0 and not (waits and any(t.status is Status.READY for t in tasks)):
            self._idle.set()

    def _apply(self, changes: list[Change]) -> None:
        finals = []
        for c in changes:
            report = self.ledger.status(c.key, c.status, c.reason, self.state[c.key].cause)
            if report is not None and c.status.is_final:
                finals.append((c.key, report))
        self.journal.tasks_finished(finals)  # at once: a re-apply ends thousands up to date
        for change in changes:
            if change.status is Status.READY:
                self.emit(ev.TaskQueued(key=change.key))
            elif change.status is Status.IN_REVIEW:  # still waiting from an earlier run
                self.emit(ev.TaskPaused(key=change.key, status="in_review", reason=change.reason))
            elif change.status.is_final:
                self.emit(
                    ev.TaskFinished(
                        key=change.key,
                        status=change.status.value,
                        reason=change.reason,
                        task_kind=self.plan.tasks[change.key].kind,
                    )
                )

    def _dispatch(self) -> None:
        assert self._nursery is not None
        for key in self.state.take():
            waiter = self._slot_waiters.pop(key, None)
            if waiter is not None:
                waiter.set()
            else:
                self._active += 1
                self._nursery.start_soon(self._worker, key, name=f"task {key}")

    # --- one task -----------------------------------------------------------------------

    async def _worker(self, key: str) -> None:
        task = self.plan.tasks[key]
        self.ledger.task_started(key)
        status, reason, here = Status.FAILED, "", True
        last: _Attempt | None = None
        try:
            with trio.CancelScope() as scope:
                self._scopes[key] = scope
                held = await self.claims.run(task, self, lambda: self._work(task))
                status, reason, last, here = held
                if status is Status.IN_REVIEW:
                    self._park_for_review(task, reason)
                    return
            if scope.cancelled_caught:
                status = Status.CANCELLED
                reason = "interrupted" if self.interrupted else "cancelled: the run stopped"
                if self.journal_error is not None:
                    reason = "cancelled: the journal failed"
                reason = self._cancelled.pop(key, reason)
        finally:
            self._scopes.pop(key, None)
            self._slot_waiters.pop(key, None)
        reason = self.run_context.redact(reason)  # the task's outcome: hooks, report, journal
        moment = "on_task_success" if status is Status.DONE else "on_task_failure"
        if here:  # a task that ran on another machine had its hooks run there
            with trio.CancelScope(shield=True):
                await self.hooks.for_task(
                    task,
                    moment,
                    attempt=last.report.number if last else 0,
                    prepared=last.prepared if last else None,
                    status=status.value,
                    reason=reason,
                )
        self.ledger.task_ended(key)
        self._finish(key, status, reason)
        self._active -= 1
        if status is Status.FAILED and self.on_failure != "continue" and not self.state.stopping:
            self.emit(ev.RunStopping(reason=f"{key} failed (on_failure: {self.on_failure})"))
            self._stop(cancel=self.on_failure == "cancel")
        self._dispatch()
        self._check_idle()

    async def _work(self, task: Task) -> Held:  # the attempts and their conclusion, here
        try:
            last = await self._attempts(task)
        except _NotStarted as exc:
            return Held(Status.FAILED, str(exc))
        return Held(*await self._conclude(task, last), last)

    def _park_for_review(self, task: Task, reason: str) -> None:
        """The work is committed on its branch; the task waits for `planrun approve`."""
        self._scopes.pop(task.key, None)
        report = self.ledger.status(task.key, Status.IN_REVIEW, reason)
        assert report is not None
        self.state.release(task.key, Status.IN_REVIEW)
        self.journal.task_finished(task.key, report)
        self.emit(ev.TaskPaused(key=task.key, status=Status.IN_REVIEW.value, reason=reason))
        self._active -= 1
        self._dispatch()
        self._check_idle()

    def _finish(self, key: str, status: Status, reason: str) -> None:
        self._apply(self.state.finish(key, status, reason))

    async def _attempts(self, task: Task) -> _Attempt:
        charged = self.state[task.key].attempts - self.settings.attempt_credit.get(task.key, 0)
        left = task.retry.attempts - charged
        if left <= 0:
            why = self.settings.exhausted.get(task.key)
            raise _NotStarted(why) if why else _NoAttemptsLeft(task.retry.attempts)

        async def backoff(seconds: float) -> None:
            self.state.release(task.key, Status.RETRYING)
            self.ledger.status(task.key, Status.RETRYING)
            self._dispatch()
            await trio.sleep(seconds)
            await self._wait_for_slot(task.key)

        async def before_sleep(retry_state: Any) -> None:
            attempt: _Attempt = retry_state.outcome.result()
            delay = retry_state.next_action.sleep if retry_state.next_action else 0.0
            self.emit(
                ev.RetryScheduled(
                    key=task.key,
                    attempt=attempt.report.number,
                    outcome=attempt.result.outcome.value,
                    delay_s=round(delay, 3),
                )
            )
            await self.hooks.for_task(
                task,
                "on_task_retry",
                attempt=attempt.report.number,
                prepared=attempt.prepared,
                status="retrying",
                reason=attempt.report.reason,
            )

        if left == 1:  # nothing could be retried: no policy to build (profiles showed its cost)
            return await self._attempt(task)
        from planrun.run.retry import retrying  # tenacity: only a task that may retry needs it

        policy = retrying(
            task.retry,
            attempts_left=left,
            outcome_of=lambda a: a.result.outcome,
            sleep=backoff,
            before_sleep=before_sleep,
            keep_going=lambda: not self.state.stopping,
        )
        result: _Attempt = await policy(self._attempt, task)
        return result

    # --- slots (for the attempt runner) --------------------------------------------------

    def park(self, key: str, status: Status) -> None:
        """``key`` gives its slot back while it waits (for an answer, say)."""
        self.state.release(key, status)
        self._dispatch()

    async def resume(self, key: str) -> None:
        await self._wait_for_slot(key)

    def uncharge(self, key: str) -> None:
        """An attempt stopped because another machine took the task over is not charged."""
        self.settings.attempt_credit[key] = self.settings.attempt_credit.get(key, 0) + 1

    async def _wait_for_slot(self, key: str) -> None:
        event = trio.Event()
        self._slot_waiters[key] = event
        self.state.requeue(key)
        self._dispatch()
        await event.wait()
        self.ledger.status(key, Status.RUNNING)

    async def _attempt(self, task: Task) -> _Attempt:
        problem = self.attempts.budget_problem(task)
        if problem is not None:  # checked first: an attempt is only recorded if it runs
            raise _NotStarted(f"{Outcome.BUDGET_EXCEEDED.value}: {problem}")
        number = self.state.count_attempt(task.key)
        started = time.time()
        log_path = self.run_context.log_path(task.key, number)
        report = self.ledger.attempt_started(task.key, number, str(log_path))
        self.journal.attempt_started(task.key, number, log_path)  # before the process starts
        if self.journal_error is not None:  # not recorded, so it must not run: cancelled
            result = SessionResult(Outcome.CANCELLED, "not started: the journal failed")
            self._record(task, report, result, started)
            await trio.lowlevel.checkpoint()  # the run's stop cancelled this task's scope
            return _Attempt(report, result, None)  # never started, whatever happens
        self.emit(ev.AttemptStarted(key=task.key, attempt=number, log_path=str(log_path)))
        prepared: Prepared | None = None
        try:
            result, prepared = await self.attempts.attempt(task, number, log_path)
        except trio.Cancelled:
            self._record(task, report, SessionResult(Outcome.CANCELLED, "cancelled"), started)
            raise
        return _Attempt(report, self._record(task, report, result, started), prepared)

    def _record(
        self, task: Task, report: AttemptReport, result: SessionResult, started: float
    ) -> SessionResult:
        result = self.run_context.redacted(result)  # recorded, and returned, redacted
        self.ledger.attempt_ended(report, result, started)
        self.journal.attempt_finished(task.key, report)
        self.emit(
            ev.AttemptFinished(
                key=task.key,
                attempt=report.number,
                outcome=report.outcome,
                reason=report.reason,
                exit_code=report.exit_code,
                duration_s=report.duration_s,
                tail=tuple(report.tail),
            )
        )
        return result

    async def _conclude(self, task: Task, last: _Attempt) -> tuple[Status, str]:
        """The final status after the last attempt; lands the work on success."""
        outcome = last.result.outcome
        if outcome is not Outcome.SUCCEEDED:
            reason = last.result.reason or outcome.value
            if outcome is not Outcome.FAILED:
                reason = f"{outcome.value}: {reason}" if reason != outcome.value else reason
            if last.prepared is not None:
                reason += await keep_failed(self.workspace, task, last.prepared, outcome)
            return Status.FAILED, reason
        if last.prepared is None:
            return Status.DONE, ""
        if task.review:
            try:
                commit = await self.workspace.commit(task, last.prepared)
            except GitError as exc:  # e.g. a nested repository: the task fails, not the run
                await self.workspace.keep(task, last.prepared, Status.FAILED)
                return Status.FAILED, f"committing for review failed: {exc}"
            self.ledger.committed_for_review(task.key)
            return (
                Status.IN_REVIEW,
                f"waiting for review{f' (commit {commit[:12]})' if commit else ''}",
            )
        try:
            landed = await self.workspace.land(task, last.prepared)
        except MergeConflict as exc:
            what = f"conflict landing {task.key}: {', '.join(exc.paths) or exc}"
            self.ledger.conflict(last.report, self.run_context.redact(what))
            await self.workspace.keep(task, last.prepared, Status.FAILED)
            return Status.FAILED, f"conflict: {', '.join(exc.paths) or 'the merge failed'}"
        except GitError as exc:
            await self.workspace.keep(task, last.prepared, Status.FAILED)
            return Status.FAILED, f"landing failed: {exc}"
        self.ledger.landed(task.key, landed.commit, landed.diffstat)
        if landed.commit:
            self.emit(ev.Landed(key=task.key, commit=landed.commit))
        return Status.DONE, ""


def _run_state(plan: CompiledPlan, settings: RunSettings) -> RunState:
    """The pure run state: the caps, the selection, and the attempts spent in earlier runs."""
    caps = Caps(
        total=settings.max_concurrent or plan.settings.max_concurrent,
        providers={n: p.max_concurrent for n, p in plan.providers.items() if p.max_concurrent},
        projects={n: p.max_concurrent for n, p in plan.projects.items() if p.max_concurrent},
    )
    state = RunState(plan.graph, caps, selected=settings.only, waves=Waves.of(plan))
    for key, count in settings.prior_attempts.items():
        if key in state.tasks:
            state[key].attempts = count
    return state


class _NotStarted(Exception):
    """No (further) attempt may start; the message is the task's reason."""


class _NoAttemptsLeft(_NotStarted):
    def __init__(self, attempts: int) -> None:
        super().__init__(
            f"no attempts left ({attempts} of {attempts} started in earlier runs); "
            "`apply --rerun-failed` gives it new ones"
        )
