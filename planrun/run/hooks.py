"""Lifecycle hooks (SPEC §4): user commands run at moments of a run or a task.

Hooks run through the same session backend as tasks (own process group, timeout, output
appended to the task's log or the run log, secrets redacted), with the context as
``PLANRUN_*`` environment variables. A hook's failure is returned, never raised: the caller
decides (a failing ``on_task_start`` fails the attempt; the others are reported). Its
command, reason and last lines go through the run's redactor before anyone sees them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from planrun.core import events as ev
from planrun.core.frozen import frozen
from planrun.core.outcomes import Outcome
from planrun.plan import templates
from planrun.plan.resolved import CommandSpec, Task
from planrun.report.model import HookFailure
from planrun.run.context import RunContext
from planrun.run.environment import base_env, context_vars, task_env
from planrun.run.launch import command_argv
from planrun.sessions.base import OnStart, ProcessInfo, Session, SessionSpec
from planrun.sessions.process import kill_group_now
from planrun.state.store import iso
from planrun.workspace.base import Prepared

_KILLED = "not run: planrun was told to stop at once (a second signal)"


@frozen
class HookResult:
    moment: str
    command: str
    ok: bool
    reason: str = ""
    tail: tuple[str, ...] = ()


async def run_hooks(
    moment: str,
    commands: Sequence[CommandSpec],
    *,
    session: Session,
    context: dict[str, Any],
    env: Mapping[str, str],
    cwd: Path,
    log_path: Path,
    timeout: float,
    secrets: tuple[str, ...],
    kill_grace: float,
    log_limit: int | None = None,
    on_start: OnStart | None = None,
) -> list[HookResult]:
    """Run ``commands`` in order; stop at the first failure (later ones would act on it).

    ``on_start`` is told each hook's process group (so that a second signal can kill it).
    """
    results: list[HookResult] = []
    for index, command in enumerate(commands):
        described = command.describe()
        try:
            argv = command_argv(command, context)
        except templates.TemplateProblem as exc:
            results.append(HookResult(moment, described, False, exc.message))
            break
        spec = SessionSpec(
            name=f"hook-{moment}-{index}",
            argv=argv,
            cwd=cwd,
            env=env,
            log_path=log_path,
            timeout=timeout,
            secrets=secrets,
            kill_grace=kill_grace,
            tail_lines=10,
            log_limit=log_limit,
        )
        result = await session.run(spec, on_start=on_start)
        ok = result.outcome is Outcome.SUCCEEDED
        reason = (
            "" if ok else f"{moment} hook `{described}`: {result.reason or result.outcome.value}"
        )
        results.append(HookResult(moment, described, ok, reason, tuple(result.tail)))
        if not ok:
            break
    return results


class HookRunner:
    """Runs a plan's hooks at the moments of a run, reporting each as an event."""

    def __init__(self, run: RunContext) -> None:
        self.run = run

    async def commands(
        self,
        moment: str,
        commands: Sequence[CommandSpec],
        *,
        context: dict[str, Any],
        env: Mapping[str, str],
        cwd: Path,
        log_path: Path,
        key: str | None,
    ) -> list[HookResult]:
        settings = self.run.plan.settings
        if self.run.control.killed:  # a second signal: nothing starts any more
            results = [HookResult(moment, c.describe(), False, _KILLED) for c in commands[:1]]
        else:
            group = f"{moment} hook of {key or 'the run'}"  # never a task key (a space)

            async def on_start(info: ProcessInfo) -> None:
                self.run.groups[group] = info
                if self.run.control.killed:  # the signal came while this hook was starting
                    kill_group_now(info.pgid)

            try:
                results = await run_hooks(
                    moment,
                    commands,
                    session=self.run.sessions["subprocess"],
                    context=context,
                    env=env,
                    cwd=cwd,
                    log_path=log_path,
                    timeout=settings.hook_timeout,
                    secrets=self.run.secrets,
                    kill_grace=settings.kill_grace,
                    log_limit=settings.log_limit,
                    on_start=on_start,
                )
            finally:
                self.run.groups.pop(group, None)
        results = [self._redacted(r) for r in results]  # recorded and shown from here on
        for r in results:
            if not r.ok:
                failure = HookFailure(
                    moment=moment, task=key, command=r.command, reason=r.reason, tail=list(r.tail)
                )
                self.run.ledger.hook_failed(failure)
            self.run.emit(
                ev.HookRan(key=key, moment=moment, command=r.command, ok=r.ok, reason=r.reason)
            )
        return results

    def _redacted(self, result: HookResult) -> HookResult:
        redact = self.run.redact
        tail = tuple(redact(line) for line in result.tail)
        return replace(
            result, command=redact(result.command), reason=redact(result.reason), tail=tail
        )

    async def for_task(
        self,
        task: Task,
        moment: str,
        *,
        attempt: int,
        prepared: Prepared | None,
        status: str,
        reason: str,
    ) -> None:
        """A task moment (retry, success, failure): the task's own hooks, else the plan's."""
        commands = task.hook_commands(moment) or self.run.plan.hooks.get(moment, ())
        if not commands:
            return
        log_path = self.run.log_path(task.key, max(attempt, 1))
        context = self.run.template_context(task, attempt, prepared, log_path)
        context["task"] = {**context["task"], "status": status, "reason": reason}
        provider = self.run.plan.providers.get(task.provider)
        env = task_env(self.run.plan, task, provider, context, self.run.settings.environ)
        cwd = prepared.cwd if prepared and prepared.cwd.is_dir() else self.run.plan.directory
        await self.commands(
            moment, commands, context=context, env=env, cwd=cwd, log_path=log_path, key=task.key
        )

    async def for_run(self, moment: str, status: str) -> bool:
        """A run moment (start, end); True when every hook succeeded."""
        commands = self.run.plan.hooks.get(moment, ())
        if not commands:
            return True
        context: dict[str, Any] = {
            "plan": self.run.plan.plan_context(),
            "run": {
                "id": self.run.settings.run_id,
                "started_at": iso(self.run.started_at),
                "status": status,
            },
            "task": {},
            "attempt": 0,
            "log_path": str(self.run.run_log),
        }
        env = {**base_env(self.run.plan, self.run.settings.environ), **context_vars(context)}
        results = await self.commands(
            moment,
            commands,
            context=context,
            env=env,
            cwd=self.run.plan.directory,
            log_path=self.run.run_log,
            key=None,
        )
        return all(r.ok for r in results)
