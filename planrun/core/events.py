"""The activity stream: every moment of a run as a typed event, fanned out to observers.

Each moment is a frozen dataclass (:class:`AttemptStarted`, :class:`RetryScheduled`, ...)
with typed fields, so mypy connects whoever emits an event with whoever reads it: a field
renamed on one side fails the type check, not a run. ``--events`` writes
:meth:`Event.as_json` (``at``, ``kind``, ``key`` and the fields), unchanged in shape.

Observers (the progress view, ``--events``) receive events in order through ``event()``.
A broken observer never breaks a run: the first exception it raises disables it and is
reported once on stderr.

Every text of an event leaves planrun (console, ``--events``), so :class:`Observers` built
with ``redact`` passes each string field of an event through it first: the scheduler gives
it the run's redactor, whatever produced the text (a git error, a hook, a budget).
:class:`Output` events are the exception: their line was redacted by the session that read
it, with the same secrets, and there are too many of them to redact twice.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import field
from enum import StrEnum
from typing import Any, ClassVar, Protocol

from planrun.core.frozen import frozen


class EventKind(StrEnum):
    RUN_STARTED = "run_started"
    TASK_QUEUED = "task_queued"  # ready, waiting for a slot
    ATTEMPT_STARTED = "attempt_started"
    PROCESS_STARTED = "process_started"
    OUTPUT = "output"  # one line of a task's output (not journaled)
    INPUT_REQUESTED = "input_requested"
    ANSWER_SENT = "answer_sent"
    ATTEMPT_FINISHED = "attempt_finished"
    RETRY_SCHEDULED = "retry_scheduled"
    HOOK_RAN = "hook_ran"
    LANDED = "landed"
    WORK_KEPT = "work_kept"  # earlier commits set aside on a branch before starting over
    TASK_FINISHED = "task_finished"  # a final status (done, failed, skipped, cancelled)
    TASK_PAUSED = "task_paused"  # needs_input or in_review
    RUN_STOPPING = "run_stopping"
    RUN_FINISHED = "run_finished"


@frozen(kw_only=True)
class Event:
    """One moment of a run; ``key`` is the task's (None for the run's own moments)."""

    kind: ClassVar[EventKind]
    key: str | None = None
    at: float = field(default_factory=time.time)

    @property
    def data(self) -> dict[str, Any]:
        """The event's own fields (everything but ``key`` and ``at``)."""
        return {f.name: getattr(self, f.name) for f in _own_fields(self)}

    def as_json(self) -> dict[str, Any]:
        return {"at": round(self.at, 6), "kind": self.kind.value, "key": self.key, **self.data}


def _own_fields(event: Event) -> list[dataclasses.Field[Any]]:
    return [f for f in dataclasses.fields(event) if f.name not in ("key", "at")]


@frozen(kw_only=True)
class RunStarted(Event):
    """The run began: the plan's name, the run's id and how many work tasks it covers."""

    kind = EventKind.RUN_STARTED
    plan: str
    run_id: str
    tasks: int


@frozen(kw_only=True)
class TaskQueued(Event):
    """A task's needs are met; it waits for a slot."""

    kind = EventKind.TASK_QUEUED


@frozen(kw_only=True)
class AttemptStarted(Event):
    """An attempt of a task began; its output goes to ``log_path``."""

    kind = EventKind.ATTEMPT_STARTED
    attempt: int
    log_path: str


@frozen(kw_only=True)
class ProcessStarted(Event):
    """The attempt's process (group leader) started with this pid."""

    kind = EventKind.PROCESS_STARTED
    attempt: int
    pid: int


@frozen(kw_only=True)
class Output(Event):
    """One line of a task's output, redacted (not journaled)."""

    kind = EventKind.OUTPUT
    line: str


@frozen(kw_only=True)
class InputRequested(Event):
    """The task's process asks a question and waits for an answer."""

    kind = EventKind.INPUT_REQUESTED
    question: str
    timeout_s: float | None


@frozen(kw_only=True)
class AnswerSent(Event):
    """An answer (``length`` characters) was typed into the task's session."""

    kind = EventKind.ANSWER_SENT
    length: int


@frozen(kw_only=True)
class AttemptFinished(Event):
    """An attempt ended with an outcome (succeeded, failed, timed_out, ...) and why."""

    kind = EventKind.ATTEMPT_FINISHED
    attempt: int
    outcome: str
    reason: str
    exit_code: int | None
    duration_s: float | None
    #: the last lines of the attempt's output, redacted (as in the report)
    tail: tuple[str, ...] = ()


@frozen(kw_only=True)
class RetryScheduled(Event):
    """A failed attempt will be retried after ``delay_s`` seconds."""

    kind = EventKind.RETRY_SCHEDULED
    attempt: int
    outcome: str
    delay_s: float


@frozen(kw_only=True)
class HookRan(Event):
    """A hook ran at ``moment`` (on_task_start, ...); ``ok`` says if it succeeded."""

    kind = EventKind.HOOK_RAN
    moment: str
    command: str
    ok: bool
    reason: str


@frozen(kw_only=True)
class WorkKept(Event):
    """The task's earlier commits could not be continued (they conflict with the new base,
    or the task starts over): they are kept on ``branch`` and the task branch is cut again."""

    kind = EventKind.WORK_KEPT
    branch: str


@frozen(kw_only=True)
class Landed(Event):
    """The task's work landed on its integration branch as ``commit``."""

    kind = EventKind.LANDED
    commit: str


@frozen(kw_only=True)
class TaskFinished(Event):
    """A task reached a final status (done, failed, skipped, cancelled) and why."""

    kind = EventKind.TASK_FINISHED
    status: str
    reason: str
    task_kind: str


@frozen(kw_only=True)
class TaskPaused(Event):
    """needs_input or in_review (also a task still in review from an earlier run)."""

    kind = EventKind.TASK_PAUSED
    status: str
    reason: str


@frozen(kw_only=True)
class RunStopping(Event):
    """The run starts nothing new from now on; ``reason`` says why."""

    kind = EventKind.RUN_STOPPING
    reason: str


@frozen(kw_only=True)
class RunFinished(Event):
    """The run ended: its status and the number of work tasks per status."""

    kind = EventKind.RUN_FINISHED
    status: str
    counts: Mapping[str, int]
    #: what the run's agents used, where their output said (None: not known)
    tokens: int | None = None
    cost_usd: float | None = None


class Observer(Protocol):
    def event(self, event: Event) -> None: ...


class Observers:
    """Delivers each event to every observer, isolating their failures."""

    def __init__(
        self, observers: Iterable[Observer] = (), *, redact: Callable[[str], str] | None = None
    ) -> None:
        self._observers = list(observers)
        self._redact = redact

    def add(self, observer: Observer) -> None:
        self._observers.append(observer)

    def __call__(self, event: Event) -> None:
        self.event(event)

    def event(self, event: Event) -> None:
        if self._redact is not None and not isinstance(event, Output):
            event = redacted(event, self._redact)
        for observer in list(self._observers):
            try:
                observer.event(event)
            except Exception as exc:
                self._observers.remove(observer)
                name = type(observer).__name__
                print(f"planrun: observer {name} failed and was disabled: {exc!r}", file=sys.stderr)


def redacted(event: Event, redact: Callable[[str], str]) -> Event:
    """``event`` with ``redact`` applied to every string in its fields."""
    changes = {f.name: redact_data(getattr(event, f.name), redact) for f in _own_fields(event)}
    return dataclasses.replace(event, **changes)


def redact_data(value: Any, redact: Callable[[str], str]) -> Any:
    """``value`` with ``redact`` applied to every string in it (in lists, tuples and dict
    values, at any depth); anything else is returned as it is."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list | tuple):
        return type(value)(redact_data(item, redact) for item in value)
    if isinstance(value, Mapping):
        return {key: redact_data(item, redact) for key, item in value.items()}
    return value
