"""The trio driver around :class:`RunState` (SPEC §4).

One trio task (whoever calls :meth:`Scheduler.run`) owns the state; workers run one task
each, from the moment it gets a slot to its final status. Everything that changes the state
happens synchronously between checkpoints, so no lock is needed and every change is
followed at once by :meth:`_dispatch`: a task starts the moment its last need finishes and
a slot frees, with no polling interval.

A worker runs attempts under a tenacity policy; while it backs off it gives its slot back
and queues for a new one by priority like any ready task. Each worker has a cancel scope:
``on_failure: cancel``, a signal or a second signal cancel them, and the session backend
kills the attempt's process group before the worker records the cancellation.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import trio

from planrun.budget import Spent, exceeded
from planrun.environment import secret_values, task_env
from planrun.errors import GitError, MergeConflict, SessionStartError
from planrun.events import EventKind, Observers
from planrun.hooks import run_hooks
from planrun.inbox import wait_for_answer
from planrun.launch import build_followup, build_launch, command_argv, verify_prompt
from planrun.outcomes import Outcome, Status
from planrun.plan import templates
from planrun.plan.compile import CompiledPlan
from planrun.plan.resolved import BudgetSpec, Task
from planrun.report.model import AttemptReport, TaskReport, Usage
from planrun.retry import retrying
from planrun.sessions.base import Answer, ProcessInfo, Session, SessionResult, SessionSpec
from planrun.state import Caps, Change, RunState
from planrun.usage import Usage as ParsedUsage
from planrun.usage import parse_usage
from planrun.workspace.names import sanitize_component


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Prepared:
    """Where an attempt runs."""

    cwd: Path
    branch: str | None = None
    worktree: Path | None = None
    base_commit: str | None = None


@dataclass(frozen=True)
class Landed:
    commit: str | None = None
    diffstat: str | None = None


class Workspace(Protocol):
    """Where tasks run and how finished work lands (plain folders, or git worktrees)."""

    async def prepare(self, task: Task, attempt: int) -> Prepared: ...

    async def land(self, task: Task, prepared: Prepared) -> Landed: ...

    async def commit(self, task: Task, prepared: Prepared) -> str | None: ...

    async def keep(self, task: Task, prepared: Prepared, status: Status) -> None: ...


class PlainWorkspace:
    """Tasks run in their project's folder (or the plan's folder); nothing lands."""

    def __init__(self, plan: CompiledPlan) -> None:
        self.plan = plan

    async def prepare(self, task: Task, attempt: int) -> Prepared:
        if task.project is None:
            return Prepared(self.plan.directory)
        path = Path(self.plan.projects[task.project].path)
        if not await trio.Path(path).is_dir():
            raise SessionStartError((), f"project folder {path} does not exist")
        return Prepared(path)

    async def land(self, task: Task, prepared: Prepared) -> Landed:
        return Landed()

    async def commit(self, task: Task, prepared: Prepared) -> str | None:
        return None

    async def keep(self, task: Task, prepared: Prepared, status: Status) -> None:
        return None


class Journal(Protocol):
    """Durable record of a run (the store); the no-op one keeps nothing."""

    def attempt_started(self, key: str, number: int, log_path: Path) -> None: ...

    def attempt_process(self, key: str, number: int, info: ProcessInfo) -> None: ...

    def attempt_finished(self, key: str, attempt: AttemptReport) -> None: ...

    def task_finished(self, key: str, report: TaskReport) -> None: ...


class NullJournal:
    def attempt_started(self, key: str, number: int, log_path: Path) -> None:
        return None

    def attempt_process(self, key: str, number: int, info: ProcessInfo) -> None:
        return None

    def attempt_finished(self, key: str, attempt: AttemptReport) -> None:
        return None

    def task_finished(self, key: str, report: TaskReport) -> None:
        return None


@dataclass
class RunSettings:
    """What the command line adds to the plan's settings for one run."""

    run_id: str
    state_dir: Path
    max_concurrent: int | None = None
    on_failure: str | None = None
    only: list[str] | None = None
    done: dict[str, str] = field(default_factory=dict)  # up-to-date keys → reason
    in_review: dict[str, str] = field(default_factory=dict)  # keys waiting for approve
    prior_attempts: dict[str, int] = field(default_factory=dict)
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))


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
    ) -> None:
        self.plan = plan
        self.settings = settings
        self.sessions = sessions
        self.workspace = workspace or PlainWorkspace(plan)
        self.journal = journal or NullJournal()
        self.emit = observers or Observers()
        caps = Caps(
            total=settings.max_concurrent or plan.settings.max_concurrent,
            providers={n: p.max_concurrent for n, p in plan.providers.items() if p.max_concurrent},
            projects={n: p.max_concurrent for n, p in plan.projects.items() if p.max_concurrent},
        )
        self.state = RunState(plan.graph, caps, selected=settings.only)
        for key, count in settings.prior_attempts.items():
            if key in self.state.tasks:
                self.state[key].attempts = count
        self.on_failure = settings.on_failure or plan.settings.on_failure
        self.secrets = secret_values(plan, settings.environ)
        self.reports: dict[str, TaskReport] = {}
        self.run_log = settings.state_dir / "logs" / settings.run_id / "run.log"
        self.started_at = time.time()
        self.interrupted = False
        self._nursery: trio.Nursery | None = None
        self._scopes: dict[str, trio.CancelScope] = {}
        self._slot_waiters: dict[str, trio.Event] = {}
        self._groups: dict[str, ProcessInfo] = {}
        self._active = 0
        self._idle = trio.Event()
        self._hooks_running = 0
        self._spent: dict[str, Spent] = {}
        self._run_spent = Spent()
        run_budget = plan.settings.budget
        self._run_budget = (
            None
            if run_budget is None
            else BudgetSpec(run_budget.wall_time, run_budget.cost_usd, run_budget.tokens)
        )

    # --- the run ------------------------------------------------------------------------

    async def run(self) -> None:
        """Run every selected task to a final status (or until stopped)."""
        self.emit(
            EventKind.RUN_STARTED,
            plan=self.plan.name,
            run_id=self.settings.run_id,
            tasks=len(self.state.work_keys()),
        )
        for key in self.state.keys:
            self.reports[key] = self._task_report(key)
        ok = await self._run_hooks_top("on_run_start")
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
        await self._run_hooks_top("on_run_end")
        self.emit(EventKind.RUN_FINISHED, status=self.status, counts=self.state.counts())

    @property
    def status(self) -> Literal["succeeded", "failed", "interrupted"]:
        if self.interrupted:
            return "interrupted"
        return "succeeded" if self.state.succeeded else "failed"

    def interrupt(self) -> None:
        """First signal: start nothing new, cancel running tasks (they record why)."""
        if self.interrupted:
            return
        self.interrupted = True
        self.emit(EventKind.RUN_STOPPING, reason="interrupted")
        self._stop(cancel=True)

    def kill_now(self) -> None:
        """Second signal: SIGKILL every process group at once."""
        for info in list(self._groups.values()):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(info.pgid, signal.SIGKILL)

    def _stop(self, *, cancel: bool) -> None:
        self.state.stop()
        for key, scope in list(self._scopes.items()):
            if cancel or self.state.status(key) in (Status.RETRYING, Status.NEEDS_INPUT):
                scope.cancel()
        self._check_idle()

    def _check_idle(self) -> None:
        """The run is over when no worker is active: after a dispatch, nothing else can
        start (tasks in review or waiting on them stay as they are)."""
        if self._active == 0:
            self._idle.set()

    def _apply(self, changes: list[Change]) -> None:
        for change in changes:
            report = self.reports.get(change.key)
            if report is not None:
                report.status = change.status.value
                report.reason = change.reason
                report.cause = self.state[change.key].cause
            if change.status is Status.READY:
                self.emit(EventKind.TASK_QUEUED, change.key)
            elif change.status.is_final:
                if report is not None:
                    self.journal.task_finished(change.key, report)
                self.emit(
                    EventKind.TASK_FINISHED,
                    change.key,
                    status=change.status.value,
                    reason=change.reason,
                    task_kind=self.plan.tasks[change.key].kind,
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
        report = self.reports[key]
        report.started_at = iso(time.time())
        status, reason = Status.FAILED, ""
        last: _Attempt | None = None
        try:
            with trio.CancelScope() as scope:
                self._scopes[key] = scope
                try:
                    last = await self._attempts(task)
                except _NoAttemptsLeft as exc:
                    status, reason = Status.FAILED, str(exc)
                else:
                    status, reason = await self._conclude(task, last)
                    if status is Status.IN_REVIEW:
                        self._park_for_review(task, reason)
                        return
            if scope.cancelled_caught:
                status = Status.CANCELLED
                reason = "interrupted" if self.interrupted else "cancelled: the run stopped"
        finally:
            self._scopes.pop(key, None)
            self._slot_waiters.pop(key, None)
        await self._task_hooks(task, status, reason, last)
        ended = time.time()
        report.ended_at = iso(ended)
        report.duration_s = round(ended - _parse(report.started_at), 3)
        self._finish(key, status, reason)
        self._active -= 1
        if status is Status.FAILED and self.on_failure != "continue" and not self.state.stopping:
            self.emit(
                EventKind.RUN_STOPPING, reason=f"{key} failed (on_failure: {self.on_failure})"
            )
            self._stop(cancel=self.on_failure == "cancel")
        self._dispatch()
        self._check_idle()

    def _park_for_review(self, task: Task, reason: str) -> None:
        """The work is committed on its branch; the task waits for `planrun approve`."""
        self._scopes.pop(task.key, None)
        report = self.reports[task.key]
        report.status, report.reason = Status.IN_REVIEW.value, reason
        self.state.release(task.key, Status.IN_REVIEW)
        self.journal.task_finished(task.key, report)
        self.emit(EventKind.TASK_PAUSED, task.key, status=Status.IN_REVIEW.value, reason=reason)
        self._active -= 1
        self._dispatch()
        self._check_idle()

    def _finish(self, key: str, status: Status, reason: str) -> None:
        self._apply(self.state.finish(key, status, reason))

    async def _attempts(self, task: Task) -> _Attempt:
        left = task.retry.attempts - self.state[task.key].attempts
        if left <= 0:
            raise _NoAttemptsLeft(task.retry.attempts)

        async def backoff(seconds: float) -> None:
            self.state.release(task.key, Status.RETRYING)
            self.reports[task.key].status = Status.RETRYING.value
            self._dispatch()
            await trio.sleep(seconds)
            await self._wait_for_slot(task.key)

        async def before_sleep(retry_state: Any) -> None:
            attempt: _Attempt = retry_state.outcome.result()
            delay = retry_state.next_action.sleep if retry_state.next_action else 0.0
            self.emit(
                EventKind.RETRY_SCHEDULED,
                task.key,
                attempt=attempt.report.number,
                outcome=attempt.result.outcome.value,
                delay_s=round(delay, 3),
            )
            await self._hooks(
                task, "on_task_retry", attempt, status="retrying", reason=attempt.report.reason
            )

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

    async def _wait_for_slot(self, key: str) -> None:
        event = trio.Event()
        self._slot_waiters[key] = event
        self.state.requeue(key)
        self._dispatch()
        await event.wait()
        self.reports[key].status = Status.RUNNING.value

    async def _attempt(self, task: Task) -> _Attempt:
        number = self.state.count_attempt(task.key)
        started = time.time()
        log_path = self._log_path(task.key, number)
        report = AttemptReport(
            number=number, started_at=iso(started), outcome="running", log_path=str(log_path)
        )
        self.reports[task.key].attempts.append(report)
        self.reports[task.key].status = Status.RUNNING.value
        self.journal.attempt_started(task.key, number, log_path)
        self.emit(EventKind.ATTEMPT_STARTED, task.key, attempt=number, log_path=str(log_path))
        prepared: Prepared | None = None
        problem = self._budget_problem(task)
        if problem is not None:
            result = SessionResult(Outcome.BUDGET_EXCEEDED, problem)
            self._record(task, report, result, started)
            return _Attempt(report, result, prepared)
        try:
            result, prepared = await self._run_attempt(task, number, log_path)
        except trio.Cancelled:
            self._record(task, report, SessionResult(Outcome.CANCELLED, "cancelled"), started)
            raise
        self._record(task, report, result, started)
        return _Attempt(report, result, prepared)

    async def _run_attempt(
        self, task: Task, number: int, log_path: Path
    ) -> tuple[SessionResult, Prepared | None]:
        try:
            prepared = await self.workspace.prepare(task, number)
        except (SessionStartError, GitError, OSError) as exc:
            return SessionResult(Outcome.STARTUP_FAILED, f"workspace: {exc}"), None
        if prepared.branch:
            self.reports[task.key].branch = prepared.branch
            self.reports[task.key].base_commit = prepared.base_commit
        provider = self.plan.providers[task.provider]
        context = self._context(task, number, prepared, log_path)
        env = task_env(self.plan, task, provider, context, self.settings.environ)
        hooks = task.hook_commands("on_task_start") or self.plan.hooks["on_task_start"]
        if hooks:
            results = await self._run_hook_list(
                "on_task_start", hooks, context, env, prepared.cwd, log_path
            )
            failed = [r for r in results if not r.ok]
            if failed:
                return SessionResult(Outcome.FAILED, failed[0].reason), prepared
        try:
            launch = build_launch(task, provider, context, self._prompt_dir(task.key))
        except templates.TemplateProblem as exc:
            return SessionResult(Outcome.STARTUP_FAILED, exc.message), prepared
        backend = self.sessions.get(task.backend)
        if backend is None:
            return SessionResult(
                Outcome.STARTUP_FAILED, f"backend {task.backend} is not available"
            ), prepared
        spec = SessionSpec(
            name=session_name(self.plan.name, task, number),
            argv=launch.argv,
            cwd=prepared.cwd,
            env=env,
            log_path=log_path,
            stdin_text=launch.stdin_text,
            type_text=launch.type_text,
            timeout=task.timeout,
            idle_timeout=task.idle_timeout,
            success_exit_codes=provider.success_exit_codes,
            success_pattern=_compile(provider.success_pattern),
            failure_pattern=_compile(provider.failure_pattern),
            input_pattern=_compile(provider.input_pattern),
            answers=tuple(Answer(re.compile(a.expect), a.send) for a in provider.answers),
            secrets=self.secrets,
            kill_grace=self.plan.settings.kill_grace,
        )
        result = await self._turn(backend, spec, task, number)
        result = await self._follow_through(backend, spec, task, number, context, result)
        return result, prepared

    async def _turn(
        self, backend: Session, spec: SessionSpec, task: Task, number: int
    ) -> SessionResult:
        """One session of an attempt (the first prompt, or a follow-up turn)."""

        async def on_start(info: ProcessInfo) -> None:
            self._groups[task.key] = info
            self.journal.attempt_process(task.key, number, info)
            self.emit(EventKind.PROCESS_STARTED, task.key, attempt=number, pid=info.pid)

        def on_line(line: str) -> None:
            self.emit(EventKind.OUTPUT, task.key, line=line)

        async def on_question(question: str) -> str | None:
            return await self._ask(task, question)

        offset = spec.log_path.stat().st_size if spec.log_path.exists() else 0
        try:
            result = await backend.run(
                spec, on_start=on_start, on_line=on_line, on_question=on_question
            )
        finally:
            self._groups.pop(task.key, None)
        return self._account(task, spec.log_path, offset, result)

    async def _follow_through(
        self,
        backend: Session,
        spec: SessionSpec,
        task: Task,
        number: int,
        context: dict[str, Any],
        result: SessionResult,
    ) -> SessionResult:
        """Answers through prompt_command, verify with follow-up turns, budgets (SPEC §2)."""
        provider = self.plan.providers[task.provider]
        turn = 1
        while True:
            if result.outcome is Outcome.NEEDS_INPUT and provider.prompt_command:
                answer = await self._ask(task, result.question or result.reason)
                if answer is None:
                    return replace(
                        result, reason=f"no answer within input_timeout: {result.question}"
                    )
                prompt = answer
            elif result.outcome is Outcome.SUCCEEDED and task.verify is not None:
                check = await self._verify(task, spec, context)
                if check is None:
                    return result
                if not provider.is_agent or turn >= task.max_turns:
                    return SessionResult(
                        Outcome.FAILED,
                        f"verify failed after {turn} turn{'s' if turn != 1 else ''}: {check[0]}",
                        tail=check[1],
                    )
                prompt = verify_prompt(task.verify.describe(), check[0], check[1])
            else:
                return result
            problem = self._budget_problem(task)
            if problem is not None:
                return SessionResult(Outcome.BUDGET_EXCEEDED, problem, tail=result.tail)
            turn += 1
            self.reports[task.key].attempts[-1].turns = turn
            launch = build_followup(task, provider, context, prompt)
            spec = replace(
                spec,
                name=f"{spec.name}.t{turn}",
                argv=launch.argv,
                stdin_text=launch.stdin_text,
                type_text=launch.type_text,
            )
            result = await self._turn(backend, spec, task, number)

    async def _verify(
        self, task: Task, spec: SessionSpec, context: dict[str, Any]
    ) -> tuple[str, list[str]] | None:
        """Run the task's verify command; None when it passes, else (what failed, tail)."""
        assert task.verify is not None
        try:
            argv = command_argv(task.verify, context)
        except templates.TemplateProblem as exc:
            return exc.message, []
        check = replace(
            spec,
            name=f"{spec.name}.verify",
            argv=argv,
            stdin_text=None,
            type_text=None,
            success_pattern=None,
            failure_pattern=None,
            input_pattern=None,
            answers=(),
            tail_lines=60,
        )
        result = await self.sessions["subprocess"].run(check)
        self.emit(
            EventKind.HOOK_RAN,
            task.key,
            moment="verify",
            command=task.verify.describe(),
            ok=result.outcome is Outcome.SUCCEEDED,
            reason=result.reason,
        )
        if result.outcome is Outcome.SUCCEEDED:
            return None
        return result.reason or result.outcome.value, result.tail

    async def _ask(self, task: Task, question: str) -> str | None:
        """Park the task (slot freed) until `planrun answer` or input_timeout; None if none."""
        report = self.reports[task.key]
        report.status, report.reason = Status.NEEDS_INPUT.value, f"asks: {question}"
        self.state.release(task.key, Status.NEEDS_INPUT)
        self.journal.task_finished(task.key, report)
        self.emit(
            EventKind.INPUT_REQUESTED, task.key, question=question, timeout_s=task.input_timeout
        )
        self._dispatch()
        answer = await wait_for_answer(self.settings.state_dir, task.key, task.input_timeout)
        if answer is not None:
            self.emit(EventKind.ANSWER_SENT, task.key, length=len(answer))
        await self._wait_for_slot(task.key)
        report.reason = ""
        return answer

    def _account(
        self, task: Task, log_path: Path, offset: int, result: SessionResult
    ) -> SessionResult:
        """Read the turn's usage from its output; an agent's error result fails the turn."""
        provider = self.plan.providers[task.provider]
        if provider.usage == "none" or not log_path.exists():
            return result
        with open(log_path, "rb") as handle:
            handle.seek(max(offset, log_path.stat().st_size - MAX_USAGE_BYTES))
            parsed = parse_usage(provider.usage, handle.read().decode("utf-8", "replace"))
        if parsed.usage is not None:
            attempt = self.reports[task.key].attempts[-1]
            attempt.usage = _add_usage(attempt.usage, parsed.usage)
            self._spent.setdefault(task.key, Spent()).add(
                parsed.usage.input_tokens + parsed.usage.output_tokens, parsed.usage.cost_usd
            )
            self._run_spent.add(
                parsed.usage.input_tokens + parsed.usage.output_tokens, parsed.usage.cost_usd
            )
        if parsed.error and result.outcome is Outcome.SUCCEEDED:
            return replace(
                result,
                outcome=Outcome.FAILED,
                reason=f"the agent reported an error: {parsed.error}",
            )
        return result

    def _budget_problem(self, task: Task) -> str | None:
        """Why no new attempt or turn may start (a task or run budget is used up), if so."""
        report = self.reports[task.key]
        started = _parse(report.started_at) if report.started_at else time.time()
        now = time.time()
        spent = self._spent.get(task.key, Spent())
        return exceeded(task.budget, spent, now - started, "task") or exceeded(
            self._run_budget, self._run_spent, now - self.started_at, "run"
        )

    def _record(
        self, task: Task, report: AttemptReport, result: SessionResult, started: float
    ) -> None:
        ended = time.time()
        report.ended_at = iso(ended)
        report.duration_s = round(ended - started, 3)
        report.outcome = result.outcome.value
        report.reason = result.reason
        report.exit_code = result.exit_code
        report.signal = result.signal
        report.tail = list(result.tail)
        self.journal.attempt_finished(task.key, report)
        self.emit(
            EventKind.ATTEMPT_FINISHED,
            task.key,
            attempt=report.number,
            outcome=report.outcome,
            reason=report.reason,
            exit_code=report.exit_code,
            duration_s=report.duration_s,
        )

    async def _conclude(self, task: Task, last: _Attempt) -> tuple[Status, str]:
        """The final status after the last attempt; lands the work on success."""
        outcome = last.result.outcome
        if outcome is not Outcome.SUCCEEDED:
            reason = last.result.reason or outcome.value
            if outcome is not Outcome.FAILED:
                reason = f"{outcome.value}: {reason}" if reason != outcome.value else reason
            if last.prepared is not None:
                await self.workspace.keep(task, last.prepared, Status.FAILED)
            return Status.FAILED, reason
        if last.prepared is None:
            return Status.DONE, ""
        if task.review:
            commit = await self.workspace.commit(task, last.prepared)
            self.reports[task.key].landed_commit = None
            return (
                Status.IN_REVIEW,
                f"waiting for review{f' (commit {commit[:12]})' if commit else ''}",
            )
        try:
            landed = await self.workspace.land(task, last.prepared)
        except MergeConflict as exc:
            last.report.outcome = Outcome.CONFLICT.value
            last.report.reason = f"conflict landing {task.key}: {', '.join(exc.paths) or exc}"
            await self.workspace.keep(task, last.prepared, Status.FAILED)
            return Status.FAILED, f"conflict: {', '.join(exc.paths) or 'the merge failed'}"
        except GitError as exc:
            await self.workspace.keep(task, last.prepared, Status.FAILED)
            return Status.FAILED, f"landing failed: {exc}"
        report = self.reports[task.key]
        report.landed_commit = landed.commit
        report.diffstat = landed.diffstat
        if landed.commit:
            self.emit(EventKind.LANDED, task.key, commit=landed.commit)
        return Status.DONE, ""

    # --- hooks --------------------------------------------------------------------------

    async def _task_hooks(
        self, task: Task, status: Status, reason: str, last: _Attempt | None
    ) -> None:
        moment = "on_task_success" if status is Status.DONE else "on_task_failure"
        with trio.CancelScope(shield=True):
            await self._hooks(task, moment, last, status=status.value, reason=reason)

    async def _hooks(
        self, task: Task, moment: str, last: _Attempt | None, *, status: str, reason: str
    ) -> None:
        commands = task.hook_commands(moment) or self.plan.hooks.get(moment, ())
        if not commands:
            return
        number = last.report.number if last else 0
        prepared = last.prepared if last else None
        log_path = self._log_path(task.key, max(number, 1))
        context = self._context(task, number, prepared, log_path)
        context["task"] = {**context["task"], "status": status, "reason": reason}
        env = task_env(
            self.plan, task, self.plan.providers.get(task.provider), context, self.settings.environ
        )
        cwd = prepared.cwd if prepared and prepared.cwd.is_dir() else self.plan.directory
        await self._run_hook_list(moment, commands, context, env, cwd, log_path, task.key)

    async def _run_hook_list(
        self,
        moment: str,
        commands: Any,
        context: dict[str, Any],
        env: dict[str, str],
        cwd: Path,
        log_path: Path,
        key: str | None = None,
    ) -> list[Any]:
        results = await run_hooks(
            moment,
            commands,
            session=self.sessions["subprocess"],
            context=context,
            env=env,
            cwd=cwd,
            log_path=log_path,
            timeout=self.plan.settings.hook_timeout,
            secrets=self.secrets,
            kill_grace=self.plan.settings.kill_grace,
        )
        for r in results:
            self.emit(
                EventKind.HOOK_RAN,
                key or context["task"].get("key"),
                moment=moment,
                command=r.command,
                ok=r.ok,
                reason=r.reason,
            )
        return results

    async def _run_hooks_top(self, moment: str) -> bool:
        commands = self.plan.hooks.get(moment, ())
        if not commands:
            return True
        context = {
            "plan": self.plan.plan_context(),
            "run": {
                "id": self.settings.run_id,
                "started_at": iso(self.started_at),
                "status": self.status if moment == "on_run_end" else "running",
            },
            "task": {},
            "attempt": 0,
            "log_path": str(self.run_log),
        }
        from planrun.environment import base_env, context_vars

        env = {**base_env(self.plan, self.settings.environ), **context_vars(context)}
        with trio.CancelScope(shield=moment == "on_run_end"):
            results = await run_hooks(
                moment,
                commands,
                session=self.sessions["subprocess"],
                context=context,
                env=env,
                cwd=self.plan.directory,
                log_path=self.run_log,
                timeout=self.plan.settings.hook_timeout,
                secrets=self.secrets,
                kill_grace=self.plan.settings.kill_grace,
            )
        for r in results:
            self.emit(
                EventKind.HOOK_RAN, None, moment=moment, command=r.command, ok=r.ok, reason=r.reason
            )
        return all(r.ok for r in results)

    # --- helpers ------------------------------------------------------------------------

    def _context(
        self, task: Task, attempt: int, prepared: Prepared | None, log_path: Path
    ) -> dict[str, Any]:
        return {
            "task": task.template_context(),
            "item": task.item,
            "project": self.plan.project_context(task.project),
            "plan": self.plan.plan_context(),
            "run": {"id": self.settings.run_id, "started_at": iso(self.started_at)},
            "attempt": attempt,
            "turn": 1,
            "prompt": "",
            "worktree": str(prepared.worktree)
            if prepared and prepared.worktree
            else (str(prepared.cwd) if prepared else ""),
            "branch": prepared.branch if prepared and prepared.branch else "",
            "log_path": str(log_path),
        }

    def _log_path(self, key: str, number: int) -> Path:
        return (
            self.settings.state_dir
            / "logs"
            / self.settings.run_id
            / sanitize_component(key)
            / f"attempt-{number}.log"
        )

    def _prompt_dir(self, key: str) -> Path:
        return self.settings.state_dir / "prompts" / self.settings.run_id / sanitize_component(key)

    def _task_report(self, key: str) -> TaskReport:
        task = self.plan.tasks[key]
        return TaskReport(
            key=key,
            title=task.title,
            kind=task.kind,
            status=Status.PENDING.value,
            priority=task.priority,
            needs=self.plan.graph.waits_for(key) if task.kind == "work" else [],
            parent=task.parent,
            provider=task.provider if task.kind == "work" else None,
            project=task.project,
        )


class _NoAttemptsLeft(Exception):
    def __init__(self, attempts: int) -> None:
        super().__init__(
            f"no attempts left ({attempts} of {attempts} started in earlier runs); "
            "`apply --rerun-failed` gives it new ones"
        )


MAX_USAGE_BYTES = 16 * 1024 * 1024  # usage is read from at most the last 16 MiB of a turn


def _add_usage(total: Usage | None, more: ParsedUsage) -> Usage:
    cost = (
        None
        if more.cost_usd is None and (total is None or total.cost_usd is None)
        else ((total.cost_usd or 0.0 if total else 0.0) + (more.cost_usd or 0.0))
    )
    return Usage(
        input_tokens=(total.input_tokens or 0 if total else 0) + more.input_tokens,
        output_tokens=(total.output_tokens or 0 if total else 0) + more.output_tokens,
        cost_usd=cost,
    )


def session_name(plan: str, task: Task, attempt: int) -> str:
    """A session's name. A tmux session is named by plan and task alone, so that an apply
    after a crash finds the one still running and re-attaches instead of starting a copy."""
    base = f"{plan}.{sanitize_component(task.key)}"
    return base if task.backend == "tmux" else f"{base}.a{attempt}"


def _compile(pattern: str | None) -> re.Pattern[str] | None:
    return re.compile(pattern) if pattern else None


def _parse(stamp: str | None) -> float:
    if not stamp:
        return time.time()
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()
