"""What a run records in the store, one small frozen record per moment.

Each :class:`~planrun.state.store.StoreWriter` write takes the run's id and one of these
(its fields are the values that moment has to say, nothing else). A run's journal file
(:mod:`planrun.state.journal`) holds them as the ``args`` of its lines, by field name, so
renaming a field changes the journal's format: don't.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from planrun.core.frozen import frozen
from planrun.core.outcomes import Outcome, Status


@frozen
class AttemptStart:
    """Attempt ``n`` (from 1 within a run) of ``key`` is about to start its process."""

    key: str
    n: int
    at: str
    fingerprint: str
    log_path: str


@frozen
class AttemptProcess:
    """The attempt's process group, so that a later planrun can find and kill it."""

    key: str
    n: int
    pid: int
    pgid: int
    start_time: int  # /proc/<pid>/stat field 22, to recognise the process later
    at: str | None = None  # None: now


@frozen
class AttemptEnd:
    """How an attempt ended: its outcome, exit status, last lines of output and usage."""

    key: str
    n: int
    outcome: Outcome
    at: str
    exit_code: int | None = None
    signal: int | None = None
    reason: str = ""
    tail: Sequence[str] = ()
    usage: Mapping[str, Any] | None = None


@frozen(kw_only=True)
class TaskOutcome:
    """What a run says of one of its tasks. None fields keep what the store holds."""

    key: str
    reason: str = ""
    at: str | None = None  # None: now
    branch: str | None = None
    base_commit: str | None = None
    landed_commit: str | None = None
    diffstat: str | None = None
    data: Mapping[str, Any] | None = None  # JSON-serialisable


@frozen(kw_only=True)
class TaskUpdate(TaskOutcome):
    """The task's status in the run changed (a DONE here is the run's view only)."""

    status: Status
    fingerprint: str | None = None
    attempts: int | None = None


@frozen(kw_only=True)
class TaskDone(TaskOutcome):
    """The task succeeded with ``fingerprint``: durably done for the plan ``plan_name``."""

    plan_name: str
    fingerprint: str
