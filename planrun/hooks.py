"""Lifecycle hooks (SPEC §4): user commands run at moments of a run or a task.

Hooks run through the same session backend as tasks (own process group, timeout, output
appended to the task's log or the run log, secrets redacted), with the context as
``PLANRUN_*`` environment variables. A hook's failure is returned, never raised: the caller
decides (a failing ``on_task_start`` fails the attempt; the others are reported).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from planrun.launch import command_argv
from planrun.outcomes import Outcome
from planrun.plan import templates
from planrun.plan.resolved import CommandSpec
from planrun.sessions.base import Session, SessionSpec


@dataclass(frozen=True)
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
) -> list[HookResult]:
    """Run ``commands`` in order; stop at the first failure (later ones would act on it)."""
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
        )
        result = await session.run(spec)
        ok = result.outcome is Outcome.SUCCEEDED
        reason = (
            "" if ok else f"{moment} hook `{described}`: {result.reason or result.outcome.value}"
        )
        results.append(HookResult(moment, described, ok, reason, tuple(result.tail)))
        if not ok:
            break
    return results
