"""One session outside a task's attempt: an agent turn or a check, for changesets.

A changeset whose base moved may need its rebase's conflicts resolved by the project's
agent task (one turn, in planrun's rebase worktree) and each task's ``verify`` run on the
rebased code; ``apply --follow-up`` gives an open PR's review or failing checks to the
agent, then runs the checks. Each is one session of the ``subprocess`` backend with the
task's own environment (its env, its granted secrets, ``PLANRUN_*``), timeout and
provider, its output redacted into a log under ``<state>/logs/changesets/``. The agent's
prompt is data (``build_followup``: ``prompt_command`` or the provider's command, never
rendered as a template). Synchronous: called before (or instead of) a run.
"""

from __future__ import annotations

import re
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import trio

from planrun.core.redact import Redactor
from planrun.plan.resolved import CommandSpec, CompiledPlan, Task
from planrun.plan.templates import TemplateProblem
from planrun.run.environment import secret_values, task_env
from planrun.run.launch import build_followup, command_argv
from planrun.sessions.base import SessionResult, SessionSpec
from planrun.sessions.subprocess import SubprocessSession
from planrun.state.store import iso

#: An agent turn without a timeout of its own may take this long (seconds).
TURN_TIMEOUT = 30 * 60.0


def agent_task(plan: CompiledPlan, project: str) -> Task | None:
    """The project's first agent task (in dependency order), if it has one."""
    for key in plan.graph.topological():
        task = plan.tasks[key]
        if task.kind != "work" or task.project != project or task.run is not None:
            continue
        if plan.providers[task.provider].is_agent:
            return task
    return None


class OneOff:
    """Runs one-off sessions for ``plan`` with ``environ`` (see the module doc)."""

    def __init__(
        self, plan: CompiledPlan, environ: dict[str, str], run_id: str, log_dir: Path
    ) -> None:
        self.plan = plan
        self.environ = environ
        self.run_id = run_id
        self.log_dir = log_dir
        self.secrets = secret_values(plan, environ)
        self.redact = Redactor(self.secrets).redact

    def turn(self, task: Task, folder: Path, prompt: str, what: str) -> SessionResult:
        """One turn of ``task``'s agent in ``folder``, told ``prompt`` (data)."""
        provider = self.plan.providers[task.provider]
        context = self._context(task, folder, what)
        try:
            launch = build_followup(task, provider, context, prompt)
        except TemplateProblem as exc:
            from planrun.core.outcomes import Outcome

            return SessionResult(Outcome.STARTUP_FAILED, exc.message)
        spec = self._spec(task, folder, launch.argv, context, what)
        spec = replace(
            spec,
            stdin_text=launch.stdin_text or launch.type_text,
            success_exit_codes=provider.success_exit_codes,
        )
        return self._run(spec)

    def command(self, task: Task, command: CommandSpec, folder: Path, what: str) -> str | None:
        """Run ``command`` (a task's verify or check) as ``task`` would in ``folder``:
        None when it passes, else why (redacted)."""
        context = self._context(task, folder, what)
        try:
            argv = command_argv(command, context)
        except TemplateProblem as exc:
            return exc.message
        result = self._run(self._spec(task, folder, argv, context, what))
        if result.exit_code == 0:
            return None
        tail = " | ".join(result.tail[-5:])
        return self.redact(f"{result.reason or result.outcome.value}: {tail}")

    def _context(self, task: Task, folder: Path, what: str) -> dict[str, Any]:
        return {
            "task": task.template_context(),
            "item": task.item,
            "project": self.plan.project_context(task.project),
            "plan": self.plan.plan_context(),
            "run": {"id": self.run_id, "started_at": iso(time.time())},
            "attempt": 1,
            "turn": 1,
            "prompt": "",
            "worktree": str(folder),
            "branch": "",
            "log_path": str(self._log(task, what)),
        }

    def _log(self, task: Task, what: str) -> Path:
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", f"{task.key}.{what}")
        return self.log_dir / f"{self.run_id}.{safe}.log"

    def _spec(
        self, task: Task, folder: Path, argv: tuple[str, ...], context: dict[str, Any], what: str
    ) -> SessionSpec:
        provider = self.plan.providers.get(task.provider)
        env = task_env(self.plan, task, provider, context, self.environ)
        return SessionSpec(
            name=f"{self.plan.name}.{task.key}.{what}",
            argv=argv,
            cwd=folder,
            env=env,
            log_path=self._log(task, what),
            timeout=task.timeout or TURN_TIMEOUT,
            idle_timeout=task.idle_timeout,
            secrets=self.secrets,
            kill_grace=self.plan.settings.kill_grace,
            log_limit=self.plan.settings.log_limit,
            tail_lines=60,
        )

    def _run(self, spec: SessionSpec) -> SessionResult:
        session = SubprocessSession()

        async def run() -> SessionResult:
            return await session.run(spec)

        return trio.run(run)
