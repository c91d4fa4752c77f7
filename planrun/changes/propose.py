"""When a project's changeset is ready to be proposed, from the run's events.

A project's changeset waits for its *checks*: every work task of the project and every
work task that needs one of them, directly or not (a task's ``verify`` is part of its
task; a ``CHECK`` task that ``needs`` the project's tasks is one of them). Once each has
a final status in this run (an up-to-date task counts as done) and at least one of them
ran an attempt in this run, :class:`Watch` gives one :class:`Proposal`: verified when
all are done, else naming the first that was not. A run in which none of them ran
proposes nothing: a second ``apply`` with nothing edited publishes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from planrun.changes.record import Proposal, default_body
from planrun.core.events import AttemptStarted, Event, Landed, TaskFinished
from planrun.plan import templates
from planrun.plan.resolved import CompiledPlan
from planrun.state.store import utc_now


class Watch:
    """Follows the statuses of each changeset project's checks during one run."""

    def __init__(self, plan: CompiledPlan, run_id: str, redact: Callable[[str], str]) -> None:
        self.plan = plan
        self.run_id = run_id
        self.redact = redact
        self.checks: dict[str, tuple[str, ...]] = {}
        self.project_of: dict[str, list[str]] = {}
        for name, project in plan.projects.items():
            if project.changeset is None:
                continue
            own = [k for k in plan.work if plan.tasks[k].project == name]
            behind = plan.graph.downstream(own)
            keys = tuple(k for k in plan.work if k in behind)
            self.checks[name] = keys
            for key in keys:
                self.project_of.setdefault(key, []).append(name)
        for name in plan.task_changesets:  # a task's own: the task and what needs it
            behind = plan.graph.downstream([name])
            keys = (name, *(k for k in plan.work if k in behind and k != name))
            self.checks[name] = keys
            for key in keys:
                self.project_of.setdefault(key, []).append(name)
        self.status: dict[str, tuple[str, str]] = {}
        self.ran: set[str] = set()
        self.landed: dict[str, str] = {}
        self.proposed: set[str] = set()
        #: projects whose branch was rebased on a moved base before the run: proposed once
        #: their checks are final, even if none of them ran
        self.rebased: set[str] = set()

    def event(self, event: Event) -> list[Proposal]:
        """The proposals ``event`` completes (most events: none)."""
        key = event.key
        if key is None or key not in self.project_of:
            return []
        if isinstance(event, AttemptStarted):
            self.ran.add(key)
        elif isinstance(event, Landed):
            for name in self.project_of[key]:
                if self.plan.tasks[key].project == name:
                    self.landed[name] = event.commit
        elif isinstance(event, TaskFinished):
            self.status[key] = (event.status, event.reason)
            return [p for n in self.project_of[key] if (p := self._ready(n)) is not None]
        return []

    def _ready(self, name: str) -> Proposal | None:
        keys = self.checks[name]
        if name in self.proposed or any(k not in self.status for k in keys):
            return None
        if not any(k in self.ran for k in keys) and name not in self.rebased:
            return None  # nothing ran: nothing new to propose
        self.proposed.add(name)
        broken = next((k for k in keys if self.status[k][0] != "done"), None)
        reason, outcome = "", "failed"
        if broken is not None:
            status, why = self.status[broken]
            reason = f"{broken} {status}" + (f": {why}" if why else "")
            if why.startswith("budget_exceeded"):  # its partial work is kept on its branch
                outcome = "budget_exceeded"
        return replace(self._proposal(name, reason), outcome=outcome)

    def _proposal(self, name: str, reason: str) -> Proposal:
        own = name in self.plan.task_changesets  # a task's own changeset
        project = self.plan.projects[(self.plan.tasks[name].project or "") if own else name]
        changeset = self.plan.changeset_of(name)
        assert changeset is not None
        tasks = [self._task(k) for k in self.checks[name]]
        context = changeset.context(self.plan.name, name, tasks)
        title = templates.render(changeset.title, context)
        body = templates.render(changeset.body, context) if changeset.body else default_body(tasks)
        message = changeset.commit_message
        if message is not None:
            message = self.redact(templates.render(message, context))
        elif own:  # its work is proposed as one commit: the PR's title is its message
            message = self.redact(title)
        return Proposal(
            plan=self.plan.name,
            project=name,
            repo=changeset.repo,
            remote=changeset.remote,
            branch=changeset.branch,
            base=changeset.base,
            target=project.target_branch,
            path=project.path,
            published=changeset.published,
            title=self.redact(title),
            body=self.redact(body),
            labels=changeset.labels,
            reviewers=changeset.reviewers,
            run_id=self.run_id,
            at=utc_now(),
            verified=not reason,
            reason=self.redact(reason),
            commit=None if own else self.landed.get(name),
            tasks=self.checks[name],
            commit_message=message,
            task=name if own else None,
        )

    def _task(self, key: str) -> dict[str, Any]:
        task = self.plan.tasks[key]
        status, reason = self.status[key]
        return {"key": key, "title": task.title, "status": status, "reason": reason}
