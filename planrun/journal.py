"""The scheduler's journal written to the store: what makes a run resumable.

Each call is one durable transaction. ``attempt_started`` is written before the process
starts; a task becomes durably done (``task_done``, with its fingerprint) only after its work
has landed, so a crash at any instant either keeps the success or re-runs the task.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from planrun.outcomes import Outcome, Status
from planrun.report.model import AttemptReport, TaskReport
from planrun.sessions.base import ProcessInfo
from planrun.store.base import StoreProtocol, utc_now


class StoreJournal:
    def __init__(
        self,
        store: StoreProtocol,
        run_id: str,
        plan_name: str,
        fingerprints: Mapping[str, tuple[str, Mapping[str, str]]],
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.plan_name = plan_name
        self.fingerprints = fingerprints

    def _fp(self, key: str) -> str:
        return self.fingerprints[key][0] if key in self.fingerprints else ""

    def attempt_started(self, key: str, number: int, log_path: Path) -> None:
        self.store.attempt_started(
            self.run_id, key, number, utc_now(), self._fp(key), str(log_path)
        )

    def attempt_process(self, key: str, number: int, info: ProcessInfo) -> None:
        self.store.attempt_process(self.run_id, key, number, info.pid, info.pgid, info.start_time)

    def attempt_finished(self, key: str, attempt: AttemptReport) -> None:
        self.store.attempt_finished(
            self.run_id,
            key,
            attempt.number,
            Outcome(attempt.outcome),
            attempt.ended_at or utc_now(),
            exit_code=attempt.exit_code,
            signal=attempt.signal,
            reason=attempt.reason,
            tail=tuple(attempt.tail),
            usage=attempt.usage.model_dump() if attempt.usage else None,
        )

    def task_finished(self, key: str, report: TaskReport) -> None:
        status = Status(report.status)
        if (
            status is Status.DONE
            and key in self.fingerprints
            and not report.reason.startswith("up to date")
        ):
            fp, fields = self.fingerprints[key]
            self.store.task_done(
                self.plan_name,
                self.run_id,
                key,
                fp,
                reason=report.reason,
                branch=report.branch,
                base_commit=report.base_commit,
                landed_commit=report.landed_commit,
                diffstat=report.diffstat,
                data={"fields": dict(fields), "title": report.title},
            )
        else:
            self.store.task_updated(
                self.run_id,
                key,
                status,
                report.reason,
                fingerprint=self._fp(key) or None,
                branch=report.branch,
                base_commit=report.base_commit,
                landed_commit=report.landed_commit,
                diffstat=report.diffstat,
                data={"cause": report.cause, "title": report.title, "kind": report.kind},
            )
