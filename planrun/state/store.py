"""What every state store returns and offers, plus the small file helpers stores share.

The rows are frozen dataclasses, one per table (see ``planrun.state.sqlite.schema`` for the
schema). Times are ISO-8601 UTC strings such as ``2026-11-21T06:00:00.123456Z``
(:func:`utc_now`); they sort as text and go into reports unchanged.

``StoreProtocol`` is the contract the scheduler, ``planrun status`` and the reports program
against; ``Store`` (SQLite file) and ``MemoryStore`` (``--dry-run``, benchmarks) satisfy it.
Every write method is one transaction that also appends one event to the journal, and
returns that event's ``seq``.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from planrun.core.outcomes import Outcome, Status

#: A decoded JSON object, as stored in the ``*_json`` columns.
JSONObject = dict[str, Any]


def utc_now() -> str:
    """The current time as the store writes it: ISO-8601, UTC, microseconds, ``Z``."""
    return iso(time.time())


def iso(ts: float) -> str:
    """A Unix time as the store and the reports write it (``2026-11-21T06:00:00.250000Z``).

    A run stamps every attempt several times: the date and time of day are formatted once
    per second, the microseconds each time.
    """
    fraction, seconds = math.modf(ts)  # rounded as datetime.fromtimestamp rounds
    micros = round(fraction * 1_000_000)
    if micros >= 1_000_000:
        seconds, micros = seconds + 1, micros - 1_000_000
    return f"{_second(int(seconds))}.{micros:06d}Z"


@functools.lru_cache(maxsize=8)
def _second(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


@dataclass(frozen=True)
class RunRow:
    """One ``planrun apply``. ``ended_at`` is None while it runs (or if it died)."""

    id: str
    plan_name: str
    plan_path: str
    plan_sha256: str
    planrun_version: str
    started_at: str
    status: str  # "running" until end_run; then what the scheduler says ("succeeded", ...)
    pid: int | None = None
    host: str | None = None
    args: tuple[str, ...] = ()  # planrun's argv
    ended_at: str | None = None


@dataclass(frozen=True)
class TaskRow:
    """A task as one run saw it."""

    run_id: str
    key: str
    status: Status
    reason: str
    fingerprint: str | None
    attempts: int  # attempts started in this run
    branch: str | None
    base_commit: str | None
    landed_commit: str | None
    diffstat: str | None
    data: JSONObject
    updated_at: str


@dataclass(frozen=True)
class AttemptRow:
    """One attempt (``n`` counts from 1 within a run). Open while ``ended_at`` is None."""

    run_id: str
    key: str
    n: int
    started_at: str
    fingerprint: str
    log_path: str
    ended_at: str | None
    outcome: Outcome | None
    exit_code: int | None
    signal: int | None
    reason: str
    pid: int | None
    pgid: int | None
    proc_start_time: int | None  # /proc/<pid>/stat field 22, to recognise the process later
    tail: tuple[str, ...]
    usage: JSONObject | None

    @property
    def is_open(self) -> bool:
        """Started but never finished: its process may still be alive after a crash."""
        return self.ended_at is None


@dataclass(frozen=True)
class EventRow:
    """One journal entry. ``seq`` increases strictly in commit order."""

    seq: int
    run_id: str
    at: str
    kind: str
    key: str | None
    data: JSONObject


@dataclass(frozen=True)
class TaskStateRow:
    """What planrun durably knows about a plan's task across runs (convergence).

    ``status`` is DONE only after ``task_done``; RUNNING once an attempt has started and
    nothing final was recorded since, which after a crash means "interrupted".
    ``attempts_total`` counts attempts *started* for ``fingerprint`` since the counter was
    last reset (by a new fingerprint, by ``task_done``, or by ``reset_attempts``), so a task
    that kills planrun every time still runs out of attempts.
    ``done_run_id`` is the last run that recorded ``task_done`` for this key.
    """

    plan_name: str
    key: str
    fingerprint: str
    status: Status
    done_run_id: str | None
    attempts_total: int
    updated_at: str


class StoreProtocol(Protocol):
    """The state store's contract. Each write is one durable transaction plus one event."""

    def close(self) -> None: ...

    def begin_run(self, run: RunRow) -> int: ...

    def end_run(self, run_id: str, status: str, ended_at: str) -> int: ...

    def record_event(
        self,
        run_id: str,
        kind: str,
        key: str | None = None,
        data: Mapping[str, Any] | None = None,
        *,
        at: str | None = None,
    ) -> int: ...

    def attempt_started(
        self,
        run_id: str,
        key: str,
        n: int,
        started_at: str,
        fingerprint: str,
        log_path: str,
    ) -> int: ...

    def attempt_process(
        self,
        run_id: str,
        key: str,
        n: int,
        pid: int,
        pgid: int,
        proc_start_time: int,
        *,
        at: str | None = None,
    ) -> int: ...

    def attempt_finished(
        self,
        run_id: str,
        key: str,
        n: int,
        outcome: Outcome,
        ended_at: str,
        exit_code: int | None = None,
        signal: int | None = None,
        reason: str = "",
        tail: Sequence[str] = (),
        usage: Mapping[str, Any] | None = None,
    ) -> int: ...

    def task_updated(
        self,
        run_id: str,
        key: str,
        status: Status,
        reason: str = "",
        *,
        at: str | None = None,
        fingerprint: str | None = None,
        attempts: int | None = None,
        branch: str | None = None,
        base_commit: str | None = None,
        landed_commit: str | None = None,
        diffstat: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> int: ...

    def task_done(
        self,
        plan_name: str,
        run_id: str,
        key: str,
        fingerprint: str,
        *,
        at: str | None = None,
        reason: str = "",
        branch: str | None = None,
        base_commit: str | None = None,
        landed_commit: str | None = None,
        diffstat: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> int: ...

    def reset_attempts(self, run_id: str, keys: Iterable[str], *, at: str | None = None) -> int: ...

    def mark_interrupted(
        self,
        run_id: str,
        key: str,
        n: int,
        ended_at: str,
        reason: str = "planrun exited during the attempt",
    ) -> int: ...

    def batch(self, *, counted: bool = True) -> AbstractContextManager[None]: ...

    def set_journal_seq(self, run_id: str, seq: int) -> None: ...

    def journal_seq(self, run_id: str) -> int: ...

    def last_run(self, plan_name: str | None = None) -> RunRow | None: ...

    def runs(self, plan_name: str) -> list[RunRow]: ...

    def run(self, run_id: str) -> RunRow | None: ...

    def tasks(self, run_id: str) -> list[TaskRow]: ...

    def attempts(self, run_id: str, key: str | None = None) -> list[AttemptRow]: ...

    def events(self, run_id: str, after_seq: int = 0) -> list[EventRow]: ...

    def task_states(self, plan_name: str) -> dict[str, TaskStateRow]: ...

    def open_attempts(self, plan_name: str) -> list[AttemptRow]: ...


# ---------------------------------------------------------------- file helpers
