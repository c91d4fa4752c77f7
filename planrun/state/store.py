"""The store protocol: what every state store records and reads back, as small records.

A run's store is written at a handful of moments (:class:`StoreWriter`: a run started, an
attempt started, its process is known, it finished, a task's status changed, a task is
durably done, ...) and read by ``status``, ``logs``, ``report``, recovery and the one
decision (:class:`StoreReader`). Each write takes the run's id and one frozen record
(:mod:`planrun.state.records`: ``AttemptStart``, ``AttemptEnd``, ``TaskDone``, ...),
is one durable transaction that also appends one event, and returns that event's ``seq``.
Each read returns the row dataclasses below, one per table of the SQLite store
(:mod:`planrun.state.sqlite.schema`).

``Store`` (:mod:`planrun.state.sqlite`, a file) and ``MemoryStore`` (``--dry-run``,
benchmarks) implement :class:`StoreProtocol`; docs/state.md ("The store protocol") says
what a second implementation must provide. Times are ISO-8601 UTC strings such as
``2026-11-21T06:00:00.123456Z`` (:func:`utc_now`); they sort as text and go into reports
unchanged.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from planrun.core.frozen import frozen
from planrun.core.outcomes import Outcome, Status
from planrun.state.records import AttemptEnd, AttemptProcess, AttemptStart, TaskDone, TaskUpdate

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


@frozen
class RunRow:
    """One ``planrun apply``. ``ended_at`` is None while it runs (or if it died)."""

    id: str
    plan_name: str
    plan_path: str
    plan_sha256: str
    planrun_version: str
    started_at: str
    status: str  # "running" until run_ended; then what the scheduler says ("succeeded", ...)
    pid: int | None = None
    host: str | None = None
    args: tuple[str, ...] = ()  # planrun's argv
    ended_at: str | None = None


@frozen
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


@frozen
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


@frozen
class EventRow:
    """One journal entry. ``seq`` increases strictly in commit order."""

    seq: int
    run_id: str
    at: str
    kind: str
    key: str | None
    data: JSONObject


@frozen
class TaskStateRow:
    """What planrun durably knows about a plan's task across runs (convergence).

    ``status`` is DONE only after ``task_done``; RUNNING once an attempt has started and
    nothing final was recorded since, which after a crash means "interrupted".
    ``attempts_total`` counts attempts *started* for ``fingerprint`` since the counter was
    last reset (by a new fingerprint, by ``task_done``, or by ``attempts_reset``), so a task
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


#: The event that lists, at the start of a run, its tasks with what apply decided for each
#: (planrun.state.folder.run_plan); :meth:`StoreReader.overview` returns its tasks.
RUN_PLAN_EVENT = "run_plan"


@frozen
class TaskBrief:
    """A task row as ``planrun status`` shows it, without decoding its data."""

    key: str
    status: str
    reason: str
    attempts: int
    updated_at: str
    kind: str  # "work" unless the row's data says otherwise


@frozen
class AttemptBrief:
    """An attempt row as ``planrun status`` shows it, without its tail."""

    key: str
    n: int
    started_at: str
    ended_at: str | None
    outcome: str | None
    pid: int | None
    proc_start_time: int | None
    usage: JSONObject | None = None  # tokens and cost, when the agent reported them


@frozen
class RunOverview:
    """A run as it stands at one moment: what ``planrun status`` reads, fast for 10,000
    tasks (the full rows decode every tail and data object)."""

    run: RunRow  # with its status and end as committed now (it may have ended meanwhile)
    tasks: list[TaskBrief]
    attempts: list[AttemptBrief]  # by key, then n
    planned: list[JSONObject]  # the tasks of its RUN_PLAN_EVENT ([] for older runs)


@frozen
class PastAttempt:
    """An attempt as the decision reads it (:mod:`planrun.state.known`): whose it was and
    how it ended, without its output, usage or process."""

    run_id: str
    key: str
    n: int
    fingerprint: str
    outcome: Outcome | None  # None: still open (recovery has not closed it yet)


@frozen
class PastTask:
    """A task's row in one run as the decision reads it: the fingerprint it ran with, the
    commit it landed, and the per-field hashes of its data (None: none recorded)."""

    fingerprint: str | None
    landed_commit: str | None
    fields: dict[str, str] | None


# ---------------------------------------------------------------- the protocol


class StoreWriter(Protocol):
    """What a run records, each at the moment it happens.

    Each call is one durable transaction that appends one event and returns its ``seq``
    (``seq`` grows strictly in commit order). The event's kind is the method's name, but
    ``task_status`` for :meth:`task_updated` and the caller's for :meth:`happened`;
    :meth:`journal_applied` is bookkeeping and appends none. Misuse (an unknown run, an
    attempt recorded twice or finished when not open) is an InternalError and writes
    nothing.
    """

    def run_started(self, run: RunRow) -> int:
        """A new run (its ``status`` normally "running")."""
        ...

    def run_ended(self, run_id: str, status: str, at: str) -> int:
        """The run's final status and end (also for a run that died: "interrupted")."""
        ...

    def attempt_started(self, run_id: str, start: AttemptStart) -> int:
        """An attempt, BEFORE its process starts: the run's task becomes running
        (attempts = max(attempts, n)), and the attempt counts in task_state (from 1 again
        when the fingerprint changed)."""
        ...

    def attempt_process(self, run_id: str, process: AttemptProcess) -> int:
        """The started attempt's process group."""
        ...

    def attempt_finished(self, run_id: str, end: AttemptEnd) -> int:
        """An open attempt closes with its outcome."""
        ...

    def attempt_interrupted(
        self, attempt: AttemptRow, at: str, reason: str = "planrun exited during the attempt"
    ) -> int:
        """An attempt left open by a planrun that died (one of :meth:`StoreReader.
        open_attempts`) closes as ``interrupted``, once its process group is dead."""
        ...

    def task_updated(self, run_id: str, update: TaskUpdate) -> int:
        """The task's status in the run (creating its row); statuses about its work
        (running, retrying, needs_input, in_review, failed, cancelled) also reach its
        task_state row if it has one. Only :meth:`task_done` makes a task durably done."""
        ...

    def tasks_updated(self, run_id: str, updates: Sequence[TaskUpdate]) -> None:
        """:meth:`task_updated` for each update, in order, in one transaction (a re-apply
        records thousands of up-to-date tasks at once): the same rows and events."""
        ...

    def task_done(self, run_id: str, done: TaskDone) -> int:
        """The task is durably done: its row in the run, and task_state DONE with
        ``done_run_id = run_id`` and a fresh attempt budget (``attempts_total = 0``)."""
        ...

    def attempts_reset(self, run_id: str, keys: Iterable[str], *, at: str | None = None) -> int:
        """``keys`` of the run's plan get a fresh attempt budget (--force, --rerun-failed)."""
        ...

    def happened(
        self,
        run_id: str,
        kind: str,
        key: str | None = None,
        data: Mapping[str, Any] | None = None,
        *,
        at: str | None = None,
    ) -> int:
        """Any other event (``run_plan``, ``recovered``, output, hooks, ...)."""
        ...

    def journal_applied(self, run_id: str, seq: int) -> None:
        """The run's journal records up to ``seq`` are in the store (bookkeeping, no event:
        call it inside the :meth:`batch` that applied them)."""
        ...

    def batch(self, *, counted: bool = True) -> AbstractContextManager[None]:
        """Group commit: the writes inside are durable together when the block ends, or
        none is. A batch inside a batch joins it. ``counted=False`` is for the fault
        seam only (:mod:`planrun.state.faults`)."""
        ...


class StoreReader(Protocol):
    """What ``status``, ``logs``, ``report``, recovery and the decision read back: rows
    committed by any process, never half a transaction, while a run writes."""

    def close(self) -> None:
        """Release the store; calling it again does nothing, any other use is an error."""
        ...

    def run(self, run_id: str) -> RunRow | None: ...

    def runs(self, plan_name: str) -> list[RunRow]:
        """Every run of the plan, oldest (first begun) first."""
        ...

    def last_run(self, plan_name: str | None = None) -> RunRow | None:
        """The most recently begun run of the plan (or of any plan)."""
        ...

    def journal_seq(self, run_id: str) -> int:
        """The last journal record of the run applied (0: none, or no such run)."""
        ...

    def tasks(self, run_id: str) -> list[TaskRow]:
        """The run's task rows, by key."""
        ...

    def attempts(self, run_id: str, key: str | None = None) -> list[AttemptRow]:
        """The run's attempts (of ``key`` only, if given), by key then n."""
        ...

    def open_attempts(self, plan_name: str) -> list[AttemptRow]:
        """Attempts of the plan's runs that started and never finished, oldest run first."""
        ...

    def past_attempts(self, run_ids: Sequence[str]) -> list[PastAttempt]:
        """Every attempt of ``run_ids``, read lean (no output, no usage): the decision reads
        the last few runs' attempts of every task."""
        ...

    def past_tasks(self, run_id: str) -> dict[str, PastTask]:
        """The run's task rows, by key, read lean (only what the decision needs)."""
        ...

    def events(self, run_id: str, after_seq: int = 0) -> list[EventRow]:
        """The run's events with ``seq > after_seq``, in order."""
        ...

    def plan_events(self, plan_name: str, kinds: Collection[str]) -> list[EventRow]:
        """The events of these ``kinds`` of every run of the plan, oldest run first."""
        ...

    def task_states(self, plan_name: str) -> dict[str, TaskStateRow]:
        """What is durably known about each of the plan's tasks, by key."""
        ...

    def overview(self, run: RunRow) -> RunOverview:
        """``run`` as it stands now, read in one read transaction."""
        ...


class StoreProtocol(StoreWriter, StoreReader, Protocol):
    """A state store, both sides: what apply, approve, clean and recovery open."""
