"""What the parts of one run share: settings, edges, the ledger, names and time stamps.

The scheduler builds one :class:`RunContext`; the attempt runner and the hook runner read
it. Keeping it in one place means a path, a template context or a time stamp is computed
the same way everywhere.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from planrun.core.events import Observers
from planrun.core.frozen import frozen
from planrun.core.names import sanitize_component
from planrun.plan.item import repo_context
from planrun.plan.resolved import CompiledPlan, Task
from planrun.run.ledger import Ledger
from planrun.sessions.base import ProcessInfo, Session, SessionResult
from planrun.state.recording import Journal
from planrun.state.store import iso
from planrun.workspace.base import Prepared, Workspace

_STAMP = "%Y-%m-%dT%H:%M:%S.%fZ"


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
    prior_attempts: dict[str, int] = field(default_factory=dict)  # started in earlier runs
    attempt_credit: dict[str, int] = field(default_factory=dict)  # of those, not charged
    exhausted: dict[str, str] = field(default_factory=dict)  # no attempts left → why
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))


@dataclass
class Control:
    """The run's one mutable flag that every part reads: set by a second signal, after
    which every group was killed and no hook starts any more."""

    killed: bool = False


@frozen
class RunContext:
    """What the parts of one run share, wired once by the scheduler: the plan, the settings,
    the edges (sessions, workspace, journal, observers), the ledger that alone writes the
    report records, the live process groups (for a second signal) and the control flag."""

    plan: CompiledPlan
    settings: RunSettings
    sessions: Mapping[str, Session]
    workspace: Workspace
    journal: Journal
    emit: Observers
    secrets: tuple[str, ...]
    started_at: float
    #: Masks ``secrets`` (planrun.core.redact.Redactor.redact): every text planrun records or
    #: shows goes through it, where an attempt's or a task's outcome is recorded and in the
    #: event observers (see :meth:`redacted`, planrun.core.events.Observers).
    ledger: Ledger
    redact: Callable[[str], str] = str
    groups: dict[str, ProcessInfo] = field(default_factory=dict)  # live process groups
    control: Control = field(default_factory=Control)

    def redacted(self, result: SessionResult) -> SessionResult:
        """An attempt's result with its texts redacted: whatever made its reason (a git
        error quoting a file name, a hook, a template) may have quoted a secret."""
        question = None if result.question is None else self.redact(result.question)
        tail = [self.redact(line) for line in result.tail]
        return replace(result, reason=self.redact(result.reason), tail=tail, question=question)

    @property
    def run_log(self) -> Path:
        return self.settings.state_dir / "logs" / self.settings.run_id / "run.log"

    def log_path(self, key: str, number: int) -> Path:
        """``logs/<run>/<task>.attempt-<n>.log``: one folder per run, made once."""
        return self._logs / f"{sanitize_component(key)}.attempt-{number}.log"

    def prompt_dir(self, key: str) -> Path:
        return self._prompts / sanitize_component(key)

    @cached_property
    def _started_iso(self) -> str:
        return iso(self.started_at)

    @cached_property
    def _logs(self) -> Path:
        return self.settings.state_dir / "logs" / self.settings.run_id

    @cached_property
    def _prompts(self) -> Path:
        return self.settings.state_dir / "prompts" / self.settings.run_id

    def template_context(
        self, task: Task, attempt: int, prepared: Prepared | None, log_path: Path
    ) -> dict[str, Any]:
        """What templates (and ``PLANRUN_*`` variables) see for one attempt of ``task``."""
        worktree = ""
        if prepared is not None:
            worktree = str(prepared.worktree or prepared.cwd)
        return {
            "task": task.template_context(),
            "item": task.item,
            **repo_context(task.item),
            "project": self.plan.project_context(task.project),
            "plan": self.plan.plan_context(),
            "run": {"id": self.settings.run_id, "started_at": self._started_iso},
            "attempt": attempt,
            "turn": 1,
            "prompt": "",
            "worktree": worktree,
            "branch": (prepared.branch or "") if prepared else "",
            "log_path": str(log_path),
        }
