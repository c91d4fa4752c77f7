"""The activity stream: every moment of a run as an :class:`Event`, fanned out to observers.

Observers (the progress view, ``--events``, the journal) receive events in order through
``event()``. A broken observer never breaks a run: the first exception it raises disables
it and is reported once on stderr.

Every text of an event leaves planrun (console, ``--events``), so :class:`Observers` built
with ``redact`` passes each string of the event's data through it first: the scheduler
gives it the run's redactor, whatever produced the text (a git error, a hook, a budget).
``output`` events are the exception: their line was redacted by the session that read it,
with the same secrets, and there are too many of them to redact twice.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol


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
    WORKTREE_CREATED = "worktree_created"
    LANDED = "landed"
    TASK_FINISHED = "task_finished"  # a final status (done, failed, skipped, cancelled)
    TASK_PAUSED = "task_paused"  # needs_input or in_review
    RUN_STOPPING = "run_stopping"
    RUN_FINISHED = "run_finished"


@dataclass(frozen=True)
class Event:
    kind: EventKind
    key: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)

    def as_json(self) -> dict[str, Any]:
        core = {"at": round(self.at, 6), "kind": self.kind.value, "key": self.key}
        return {**core, **{k: v for k, v in self.data.items() if k not in core}}


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

    def __call__(self, kind: EventKind, key: str | None = None, /, **data: Any) -> None:
        self.event(Event(kind, key, data))

    def event(self, event: Event) -> None:
        if self._redact is not None and event.kind is not EventKind.OUTPUT:
            data = {name: redact_data(value, self._redact) for name, value in event.data.items()}
            event = Event(event.kind, event.key, data, event.at)
        for observer in list(self._observers):
            try:
                observer.event(event)
            except Exception as exc:
                self._observers.remove(observer)
                name = type(observer).__name__
                print(f"planrun: observer {name} failed and was disabled: {exc!r}", file=sys.stderr)


def redact_data(value: Any, redact: Callable[[str], str]) -> Any:
    """``value`` with ``redact`` applied to every string in it (in lists, tuples and dict
    values, at any depth); anything else is returned as it is."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list | tuple):
        return type(value)(redact_data(item, redact) for item in value)
    if isinstance(value, dict):
        return {key: redact_data(item, redact) for key, item in value.items()}
    return value
