"""What a person watching a run needs to know, kept up to date from the event stream.

Both views (the live table and the plain lines) read one :class:`RunView`: which tasks are
active and how (running, retrying until a moment, waiting for an answer or a review), how
many wait for a slot, and how each finished task ended, with the last lines of its output.
It holds texts as the events carried them; :func:`shown` makes one safe to print.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from planrun.core import events as ev
from planrun.core.events import Event
from planrun.core.frozen import frozen
from planrun.core.redact import visible

RUNNING, RETRYING, WAITING_SLOT = "running", "retrying", "waiting for a slot"
NEEDS_INPUT, IN_REVIEW = "needs input", "in review"


def shown(text: str, limit: int = 300) -> str:
    """``text`` on one line, without escape sequences or control characters, cut at
    ``limit`` characters: a task's output is data, never something that drives a terminal."""
    line = visible(text.replace("\r", " ").replace("\n", " ").replace("\t", " "))
    return line if len(line) <= limit else line[: limit - 1] + "…"


@dataclass
class Active:
    """A task that has started and not reached a final status."""

    key: str
    status: str
    attempt: int
    started: float
    last_line: str = ""
    retry_at: float | None = None  # when the next attempt may start (retrying)
    question: str = ""
    reason: str = ""  # why it waits (in review)

    def state(self, now: float) -> str:
        """The status, with a retry whose backoff is over shown as waiting for a slot."""
        if self.status == RETRYING and self.retry_at is not None and now >= self.retry_at:
            return WAITING_SLOT
        return self.status


@frozen
class Ended:
    """A task with a final status, and what its last attempt left."""

    key: str
    status: str
    reason: str
    attempts: int = 0
    outcome: str = ""  # of the last attempt
    tail: tuple[str, ...] = ()


@dataclass
class RunView:
    """The run as the views show it; :meth:`event` takes every event in order."""

    plan: str = ""
    run_id: str = ""
    total: int = 0
    started: float = field(default_factory=time.time)
    finished: float | None = None
    status: str = ""
    active: dict[str, Active] = field(default_factory=dict)
    queued: set[str] = field(default_factory=set)
    ended: dict[str, Ended] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    tokens: int | None = None
    cost_usd: float | None = None
    _last: dict[str, ev.AttemptFinished] = field(default_factory=dict)

    def event(self, event: Event) -> None:
        match event:
            case ev.RunStarted():
                self.plan, self.run_id, self.total = event.plan, event.run_id, event.tasks
                self.started = event.at
            case ev.TaskQueued():
                self.queued.add(event.key or "")
            case ev.AttemptStarted():
                self._started(event)
            case ev.AttemptFinished():
                self._last[event.key or ""] = event
            case ev.TaskFinished() if event.task_kind == "work":
                self._ended(event)
            case ev.RunFinished():
                self.finished, self.status = event.at, event.status
                self.counts = dict(event.counts)
                self.tokens, self.cost_usd = event.tokens, event.cost_usd
            case _:
                self._changed(event)

    def _changed(self, event: Event) -> None:
        """A moment of an active task: output, a retry, a question, an answer, a review."""
        key = event.key or ""
        if isinstance(event, ev.TaskPaused) and event.status == "in_review":
            self.queued.discard(key)
            paused = self.active.setdefault(key, Active(key, IN_REVIEW, 0, event.at))
            paused.status, paused.reason = IN_REVIEW, event.reason
        row = self.active.get(key)
        if row is None:
            return
        match event:
            case ev.Output():
                row.last_line = event.line
            case ev.RetryScheduled():
                row.status, row.retry_at = RETRYING, event.at + event.delay_s
            case ev.InputRequested():
                row.status, row.question = NEEDS_INPUT, event.question
            case ev.AnswerSent():
                row.status, row.question = RUNNING, ""

    def _started(self, event: ev.AttemptStarted) -> None:
        key = event.key or ""
        self.queued.discard(key)
        row = self.active.get(key)
        if row is None:
            self.active[key] = Active(key, RUNNING, event.attempt, event.at)
        else:
            row.status, row.attempt, row.retry_at = RUNNING, event.attempt, None

    def _ended(self, event: ev.TaskFinished) -> None:
        key = event.key or ""
        self.queued.discard(key)
        self.active.pop(key, None)
        last = self._last.pop(key, None)
        self.ended[key] = Ended(
            key,
            event.status,
            event.reason,
            attempts=last.attempt if last else 0,
            outcome=last.outcome if last else "",
            tail=last.tail if last else (),
        )

    # --- what the views ask -------------------------------------------------------------

    def with_status(self, *statuses: str) -> list[Ended]:
        return [e for e in self.ended.values() if e.status in statuses]

    def waiting(self, status: str) -> list[Active]:
        """Active tasks that wait for a person (``NEEDS_INPUT`` or ``IN_REVIEW``)."""
        return [a for a in self.active.values() if a.status == status]

    def finished_count(self) -> int:
        return len(self.ended)

    def finished_counts(self) -> dict[str, int]:
        """Tasks per final status so far (the run's own counts once it has finished)."""
        if self.counts:
            return {s: n for s, n in self.counts.items() if n}
        counts: dict[str, int] = {}
        for ended in self.ended.values():
            counts[ended.status] = counts.get(ended.status, 0) + 1
        return counts

    def elapsed(self, now: float | None = None) -> float:
        end = self.finished if self.finished is not None else (now or time.time())
        return max(0.0, end - self.started)
