"""The ledger: the one writer of a run's report records (SPEC §7).

The scheduler, the attempt runner and the hook runner never change a
:class:`~planrun.report.model.TaskReport` themselves; they tell the ledger what happened,
in methods named after the moment (``task_started``, ``attempt_ended``, ``landed``, ...),
and read the records back for the journal and the final report. So every field of the
report has one place that writes it, and a reader of the report knows where to look.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from planrun.core.outcomes import Outcome, Status
from planrun.plan.resolved import CompiledPlan
from planrun.report.model import AttemptReport, HookFailure, TaskReport, Usage, total_usage
from planrun.sessions.base import SessionResult
from planrun.state.store import iso
from planrun.workspace.base import Prepared

if TYPE_CHECKING:
    from planrun.core.usage import Usage as ParsedUsage


class Ledger:
    """The report records of one run, keyed by task."""

    def __init__(self, plan: CompiledPlan, keys: Iterable[str] = ()) -> None:
        self.plan = plan
        self._tasks: dict[str, TaskReport] = {}
        self._began: dict[str, float] = {}
        self.hook_failures: list[HookFailure] = []
        for key in keys:
            self.open(key)

    # --- reading ------------------------------------------------------------------------

    @property
    def tasks(self) -> Mapping[str, TaskReport]:
        return self._tasks

    def __getitem__(self, key: str) -> TaskReport:
        return self._tasks[key]

    def began(self, key: str) -> float | None:
        """The Unix time ``key`` got its slot in this run (None: not yet)."""
        return self._began.get(key)

    def in_order(self, fingerprints: Mapping[str, tuple[str, object]] | None) -> list[TaskReport]:
        """The records in dependency order, each with its task's fingerprint."""
        ordered = [self._tasks[k] for k in self.plan.graph.topological() if k in self._tasks]
        for task in ordered:
            if fingerprints and task.key in fingerprints:
                task.fingerprint = str(fingerprints[task.key][0])
        return ordered

    # --- moments of a task --------------------------------------------------------------

    def open(self, key: str) -> TaskReport:
        task = self.plan.tasks[key]
        work = task.kind == "work"
        self._tasks[key] = TaskReport(
            key=key,
            title=task.title,
            kind=task.kind,
            status=Status.PENDING.value,
            priority=task.priority,
            needs=self.plan.graph.waits_for(key) if work else [],
            parent=task.parent,
            provider=task.provider if work else None,
            project=task.project,
        )
        return self._tasks[key]

    def status(
        self, key: str, status: Status, reason: str | None = None, cause: str | None = None
    ) -> TaskReport | None:
        """The task's status now (and its reason and root cause, when given)."""
        report = self._tasks.get(key)
        if report is None:
            return None
        report.status = status.value
        if reason is not None:
            report.reason = reason
        if cause is not None or status.is_final:
            report.cause = cause
        return report

    def task_started(self, key: str) -> float:
        began = self._began[key] = time.time()
        self._tasks[key].started_at = iso(began)
        return began

    def task_ended(self, key: str) -> None:
        ended = time.time()
        report = self._tasks[key]
        report.ended_at = iso(ended)
        report.duration_s = round(ended - self._began.get(key, ended), 3)

    def asking(self, key: str, question: str) -> TaskReport:
        report = self._tasks[key]
        report.status, report.reason = Status.NEEDS_INPUT.value, f"asks: {question}"
        return report

    def answered(self, key: str) -> None:
        self._tasks[key].reason = ""

    def workspace(self, key: str, prepared: Prepared) -> None:
        """Where the attempt runs: its branch, the commit it starts from, set-aside work."""
        report = self._tasks[key]
        if prepared.branch:
            report.branch, report.base_commit = prepared.branch, prepared.base_commit
        if prepared.kept:
            report.kept_branches.append(prepared.kept)

    def landed(self, key: str, commit: str | None, diffstat: str | None) -> None:
        report = self._tasks[key]
        report.landed_commit, report.diffstat = commit, diffstat

    def committed_for_review(self, key: str) -> None:
        self._tasks[key].landed_commit = None

    # --- moments of an attempt ----------------------------------------------------------

    def attempt_started(self, key: str, number: int, log_path: str) -> AttemptReport:
        attempt = AttemptReport(
            number=number, started_at=iso(time.time()), outcome="running", log_path=log_path
        )
        self._tasks[key].attempts.append(attempt)
        self._tasks[key].status = Status.RUNNING.value
        return attempt

    def attempt_ended(self, attempt: AttemptReport, result: SessionResult, started: float) -> None:
        ended = time.time()
        attempt.ended_at = iso(ended)
        attempt.duration_s = round(ended - started, 3)
        attempt.outcome = result.outcome.value
        attempt.reason = result.reason
        attempt.exit_code = result.exit_code
        attempt.signal = result.signal
        attempt.tail = list(result.tail)

    def conflict(self, attempt: AttemptReport, reason: str) -> None:
        """Landing the attempt's work conflicted: that amends the attempt's outcome."""
        attempt.outcome, attempt.reason = Outcome.CONFLICT.value, reason

    def turn(self, key: str, number: int) -> None:
        self._tasks[key].attempts[-1].turns = number

    def usage(self, key: str, turn: ParsedUsage) -> None:
        """One more turn's usage, added to the attempt's, and the task's (the sum of its
        attempts' in this run) with it."""
        report = self._tasks[key]
        attempt = report.attempts[-1]
        attempt.usage = add_usage(attempt.usage, turn)
        report.usage = total_usage(a.usage for a in report.attempts)

    def hook_failed(self, failure: HookFailure) -> None:
        self.hook_failures.append(failure)


def add_usage(total: Usage | None, more: ParsedUsage) -> Usage:
    """``total`` plus one turn's usage (cost stays unknown until some turn reports one)."""
    if total is None:
        return Usage(
            input_tokens=more.input_tokens, output_tokens=more.output_tokens, cost_usd=more.cost_usd
        )
    cost = total.cost_usd
    if more.cost_usd is not None:
        cost = (cost or 0.0) + more.cost_usd
    return Usage(
        input_tokens=(total.input_tokens or 0) + more.input_tokens,
        output_tokens=(total.output_tokens or 0) + more.output_tokens,
        cost_usd=cost,
    )
