"""One attempt of one task, from its workspace to its last turn (SPEC §2-§4).

An attempt prepares the workspace (a worktree, setup commands), runs ``on_task_start``
hooks, starts the session, and then follows through: a question waits for an answer (the
task gives its slot back meanwhile) and continues as a typed answer or a follow-up turn; a
passing agent whose ``verify`` fails gets a follow-up turn quoting the failure, up to
``max_turns``; each turn's usage is read from its output, and budgets are checked before
every attempt and turn.

The scheduler owns slots; the attempt reaches them through :class:`Slots` only.
"""

from __future__ import annotations

import contextlib
import re
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import trio

from planrun.core import events as ev
from planrun.core.budget import Spent, exceeded
from planrun.core.names import sanitize_component
from planrun.core.outcomes import Outcome, Status
from planrun.errors import GitError, SessionStartError
from planrun.plan import templates
from planrun.plan.resolved import ProviderSpec, Task
from planrun.run.claims import LocalSpending, RunSpending
from planrun.run.context import RunContext
from planrun.run.environment import task_env
from planrun.run.hooks import HookRunner
from planrun.run.inbox import wait_for_answer
from planrun.run.launch import build_followup, build_launch, command_argv, verify_prompt
from planrun.sessions.base import Answer, ProcessInfo, Session, SessionResult, SessionSpec
from planrun.sessions.output import read_log
from planrun.workspace.base import Prepared

MAX_USAGE_BYTES = 16 * 1024 * 1024  # usage is read from at most the last 16 MiB of a turn


if TYPE_CHECKING:
    from planrun.core.usage import RunningTotals


class Slots(Protocol):
    """The scheduler's side: a task gives its slot back while it waits, then queues again."""

    def park(self, key: str, status: Status) -> None: ...

    async def resume(self, key: str) -> None: ...


class AttemptRunner:
    def __init__(self, run: RunContext, hooks: HookRunner, slots: Slots) -> None:
        self.run = run
        self.hooks = hooks
        self.slots = slots
        self._spent: dict[str, Spent] = {}
        self._run_spent = Spent()
        self._totals: RunningTotals | None = None  # made by the first turn that reads usage
        self._run_budget = run.plan.settings.budget
        #: the run-wide spending the run budget is checked against (a shared run's: every
        #: machine's; set by apply)
        self.spending: RunSpending = LocalSpending()

    # --- an attempt ---------------------------------------------------------------------

    async def attempt(
        self, task: Task, number: int, log_path: Path
    ) -> tuple[SessionResult, Prepared | None]:
        """Run attempt ``number`` to its end; returns how it ended and where it ran."""
        try:
            prepared = await self.run.workspace.prepare(task, number)
        except (SessionStartError, GitError, OSError) as exc:
            return SessionResult(Outcome.STARTUP_FAILED, f"workspace: {exc}"), None
        self.run.ledger.workspace(task.key, prepared)
        if prepared.kept:
            self.run.emit(ev.WorkKept(key=task.key, branch=prepared.kept))
        provider = self.run.plan.providers[task.provider]
        context = self.run.template_context(task, number, prepared, log_path)
        env = task_env(self.run.plan, task, provider, context, self.run.settings.environ)
        problem = await self._start_hooks(task, context, env, prepared, log_path)
        if problem is not None:
            return SessionResult(Outcome.FAILED, problem), prepared
        try:
            launch = build_launch(task, provider, context, self.run.prompt_dir(task.key))
        except templates.TemplateProblem as exc:
            return SessionResult(Outcome.STARTUP_FAILED, exc.message), prepared
        backend = self.run.sessions.get(task.backend)
        if backend is None:
            reason = f"backend {task.backend} is not available"
            return SessionResult(Outcome.STARTUP_FAILED, reason), prepared
        spec = SessionSpec(
            name=session_name(self.run.plan.name, task, number),
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
            secrets=self.run.secrets,
            kill_grace=self.run.plan.settings.kill_grace,
            log_limit=self.run.plan.settings.log_limit,
        )
        result = await self._turn(backend, spec, task, number, first=True)
        result = await self._follow_through(backend, spec, task, number, provider, context, result)
        return result, prepared

    async def _start_hooks(
        self,
        task: Task,
        context: dict[str, Any],
        env: dict[str, str],
        prepared: Prepared,
        log_path: Path,
    ) -> str | None:
        """Run on_task_start; the first failure's reason fails the attempt."""
        commands = task.hook_commands("on_task_start") or self.run.plan.hooks["on_task_start"]
        if not commands:
            return None
        results = await self.hooks.commands(
            "on_task_start",
            commands,
            context=context,
            env=env,
            cwd=prepared.cwd,
            log_path=log_path,
            key=task.key,
        )
        failed = [r for r in results if not r.ok]
        return failed[0].reason if failed else None

    # --- turns --------------------------------------------------------------------------

    async def _turn(
        self, backend: Session, spec: SessionSpec, task: Task, number: int, *, first: bool = False
    ) -> SessionResult:
        """One session of an attempt (the first prompt, or a follow-up turn)."""

        async def on_start(info: ProcessInfo) -> None:
            self.run.groups[task.key] = info
            self.run.journal.attempt_process(task.key, number, info)
            self.run.emit(ev.ProcessStarted(key=task.key, attempt=number, pid=info.pid))

        def on_line(line: str) -> None:
            self.run.emit(ev.Output(key=task.key, line=line))

        async def on_question(question: str) -> str | None:
            return await self._ask(task, question)

        offset = 0  # an attempt's log is its own: its first turn starts it
        if not first:
            with contextlib.suppress(FileNotFoundError):
                offset = spec.log_path.stat().st_size
        left = self._wall_time_left(task)
        capped = left is not None and (spec.timeout is None or left < spec.timeout)
        if capped:  # a wall time budget ends the turn where it runs out
            spec = replace(spec, timeout=max(left or 0.0, 0.001))
        try:
            result = await backend.run(
                spec, on_start=on_start, on_line=on_line, on_question=on_question
            )
        finally:
            self.run.groups.pop(task.key, None)
        if capped and result.outcome is Outcome.TIMED_OUT:
            problem = self.budget_problem(task)
            if problem is not None:
                result = replace(result, outcome=Outcome.BUDGET_EXCEEDED, reason=problem)
        return self._account(task, spec.log_path, offset, result)

    async def _follow_through(
        self,
        backend: Session,
        spec: SessionSpec,
        task: Task,
        number: int,
        provider: ProviderSpec,
        context: dict[str, Any],
        result: SessionResult,
    ) -> SessionResult:
        """Answers through prompt_command, verify with follow-up turns, budgets."""
        turn = 1
        while True:
            if result.outcome is Outcome.NEEDS_INPUT and provider.prompt_command:
                answer = await self._ask(task, result.question or result.reason)
                if answer is None:
                    reason = f"no answer within input_timeout: {result.question}"
                    return replace(result, reason=reason)
                prompt = answer
            elif result.outcome is Outcome.SUCCEEDED and task.verify is not None:
                failure = await self._verify(task, spec, context)
                if failure is None:
                    return result
                what, tail = failure
                if not provider.is_agent or turn >= task.max_turns:
                    turns = f"{turn} turn{'s' if turn != 1 else ''}"
                    return SessionResult(
                        Outcome.FAILED, f"verify failed after {turns}: {what}", tail=tail
                    )
                prompt = verify_prompt(task.verify.describe(), what, tail)
            else:
                return result
            problem = self.budget_problem(task)
            if problem is not None:
                return SessionResult(Outcome.BUDGET_EXCEEDED, problem, tail=result.tail)
            turn += 1
            self.run.ledger.turn(task.key, turn)
            try:
                launch = build_followup(task, provider, context, prompt)
            except templates.TemplateProblem as exc:
                reason = f"turn {turn} could not start: {exc.message}"
                return SessionResult(Outcome.STARTUP_FAILED, reason, tail=result.tail)
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
        result = await self.run.sessions["subprocess"].run(check)
        passed = result.outcome is Outcome.SUCCEEDED
        self.run.emit(
            ev.HookRan(
                key=task.key,
                moment="verify",
                command=task.verify.describe(),
                ok=passed,
                reason=result.reason,
            )
        )
        return None if passed else (result.reason or result.outcome.value, result.tail)

    async def _ask(self, task: Task, question: str) -> str | None:
        """Give the slot back until `planrun answer` or input_timeout; None if unanswered."""
        report = self.run.ledger.asking(task.key, question)
        self.slots.park(task.key, Status.NEEDS_INPUT)
        self.run.journal.task_finished(task.key, report)
        # `planrun answer` checks the store: the question is announced once it is there
        # (this task waits for that, off the event loop; the run goes on)
        await trio.to_thread.run_sync(self.run.journal.flush)
        self.run.emit(
            ev.InputRequested(key=task.key, question=question, timeout_s=task.input_timeout)
        )
        answer = await wait_for_answer(self.run.settings.state_dir, task.key, task.input_timeout)
        if answer is not None:
            self.run.emit(ev.AnswerSent(key=task.key, length=len(answer)))
        await self.slots.resume(task.key)
        self.run.ledger.answered(task.key)
        return answer

    # --- usage and budgets --------------------------------------------------------------

    def _account(
        self, task: Task, log_path: Path, offset: int, result: SessionResult
    ) -> SessionResult:
        """Read the turn's usage from its output; an agent's error result fails the turn."""
        provider = self.run.plan.providers[task.provider]
        if provider.usage == "none":
            return result
        output = read_log(log_path, offset, MAX_USAGE_BYTES)  # never blocks, regular files only
        if output is None:
            return result
        from planrun.core.usage import RunningTotals, parse_usage  # only when usage is read

        parsed = parse_usage(provider.usage, output.decode("utf-8", "replace"))
        if self._totals is None:
            self._totals = RunningTotals()
        turn = self._totals.turn(provider.usage, parsed)  # a continued session's totals
        if turn is not None:
            self.run.ledger.usage(task.key, turn)
            tokens = turn.input_tokens + turn.output_tokens
            self._spent.setdefault(task.key, Spent()).add(tokens, turn.cost_usd)
            self._run_spent.add(tokens, turn.cost_usd)
            self.spending.add(task.key, tokens, turn.cost_usd)
        if parsed.error and result.outcome is Outcome.SUCCEEDED:
            return replace(
                result,
                outcome=Outcome.FAILED,
                reason=f"the agent reported an error: {parsed.error}",
            )
        return result

    def _wall_time_left(self, task: Task) -> float | None:
        """Seconds until the task's or the run's wall time budget runs out (None: no limit)."""
        now = time.time()
        left: list[float] = []
        if task.budget is not None and task.budget.wall_time is not None:
            started = self.run.ledger.began(task.key) or now
            left.append(task.budget.wall_time - (now - started))
        if self._run_budget is not None and self._run_budget.wall_time is not None:
            started = self.spending.started_at(self.run.started_at)
            left.append(self._run_budget.wall_time - (now - started))
        return min(left) if left else None

    def budget_problem(self, task: Task) -> str | None:
        """Why no new attempt or turn may start (a task or run budget is used up), if so."""
        now = time.time()
        started = self.run.ledger.began(task.key) or now
        spent = self._spent.get(task.key, Spent())
        run_started = self.spending.started_at(self.run.started_at)
        return exceeded(task.budget, spent, now - started, "task") or exceeded(
            self._run_budget, self.spending.spent(self._run_spent), now - run_started, "run"
        )


def session_name(plan: str, task: Task, attempt: int) -> str:
    """A session's name. A tmux session is named by plan and task alone, so that an apply
    after a crash finds the one still running and re-attaches instead of starting a copy."""
    base = f"{plan}.{sanitize_component(task.key)}"
    return base if task.backend == "tmux" else f"{base}.a{attempt}"


def _compile(pattern: str | None) -> re.Pattern[str] | None:
    return re.compile(pattern) if pattern else None
