"""What the board shows, read from a :class:`~planrun.state.store.StoreReader`.

The board reads what ``planrun status`` reads (:meth:`StoreReader.overview`: one read
transaction, fast for 10,000 tasks) and decides each task's status with the same rules
(:func:`planrun.state.queries.task_status`): a live run's task with no open attempt is
landing or retrying, and in a run whose apply died what was running shows as cancelled.
The task page reads one task's attempts and its row (diff stat, landed commit).

Everything here is plain data; :mod:`planrun.board.render` turns it into HTML.
"""

from __future__ import annotations

import shlex
import time
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import field
from typing import Any

from planrun.core.frozen import frozen
from planrun.core.outcomes import Status
from planrun.state.queries import (
    attempt_spans,
    elapsed_s,
    in_run,
    run_liveness,
    run_status,
    task_status,
    usage_by_task,
)
from planrun.state.store import AttemptRow, RunOverview, RunRow, StoreReader, TaskRow

#: The board's columns, in order: (id, heading, the statuses it holds).
COLUMNS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("queued", "queued", ("pending", "ready")),
    ("running", "running", ("running",)),
    ("retrying", "retrying", ("retrying",)),
    ("needs_input", "needs input", ("needs_input",)),
    ("in_review", "in review", ("in_review",)),
    ("done", "done", ("done",)),
    ("failed", "failed", ("failed", "cancelled")),
    ("skipped", "skipped", ("skipped",)),
)


@frozen
class Card:
    """One work task on the board."""

    key: str
    title: str
    status: str
    reason: str
    attempt: int
    started_at: str | None
    elapsed_s: float | None  # None: not started
    final: bool
    provider: str
    host: str
    tokens: int | None
    cost_usd: float | None

    @property
    def href(self) -> str:
        return task_href(self.key)


@frozen
class Waiting:
    """A task that waits for a person, and the command that lets it go on."""

    key: str
    status: str
    reason: str
    command: str


@frozen
class Board:
    """A run as it stands at one moment."""

    run: RunRow
    status: str  # running, interrupted, succeeded, failed
    liveness: str  # live, dead, ended
    cards: list[Card]
    planned: list[dict[str, Any]]  # the run_plan's tasks (for the graph)
    waiting: list[Waiting]
    now: float = field(compare=False)

    def column(self, statuses: Iterable[str]) -> list[Card]:
        wanted = set(statuses)
        return [c for c in self.cards if c.status in wanted]

    def statuses(self) -> dict[str, str]:
        return {c.key: c.status for c in self.cards}

    def signature(self) -> tuple[Any, ...]:
        """What changes the page, but the clock (running tasks' elapsed time ticks in the
        browser): the same signature, the same page."""
        cards = tuple(
            (c.key, c.status, c.reason, c.attempt, c.started_at, c.tokens, c.cost_usd)
            + ((c.elapsed_s,) if c.final else ())
            for c in self.cards
        )
        return (self.run, self.status, self.liveness, cards)


def task_href(key: str) -> str:
    return "/task/" + urllib.parse.quote(key, safe="")


def read_board(
    store: StoreReader,
    run: RunRow,
    holder: Mapping[str, Any] | None,
    continue_with: tuple[str, ...],
) -> Board:
    """The board of ``run``; ``continue_with`` is how to name the plan in a command
    (``planrun answer <that> KEY``), as the user named it to the board."""
    now = time.time()
    overview = store.overview(run)
    liveness = run_liveness(overview.run, holder)
    cards = _cards(overview, liveness, now)
    waiting = [w for c in cards if (w := waiting_for(c.key, c.status, c.reason, continue_with))]
    status = run_status(overview.run, liveness)
    return Board(overview.run, status, liveness, cards, overview.planned, waiting, now)


def waiting_for(key: str, status: str, reason: str, plan: tuple[str, ...]) -> Waiting | None:
    """The command a person types to let ``key`` go on, if it waits for one."""
    if status == Status.NEEDS_INPUT.value:
        command = shlex.join(["planrun", "answer", *plan, key]) + " 'YOUR ANSWER'"
    elif status == Status.IN_REVIEW.value:
        command = shlex.join(["planrun", "approve", *plan, key])
    else:
        return None
    return Waiting(key, status, reason, command)


def _cards(overview: RunOverview, liveness: str, now: float) -> list[Card]:
    """Work tasks in the run_plan's order, then any other recorded task by key."""
    spans = attempt_spans(overview.attempts)
    usage = usage_by_task(overview.attempts)
    recorded = {t.key: t for t in overview.tasks}
    planned = {str(t["key"]): t for t in in_run(overview.planned, recorded, liveness)}
    order = [k for k, t in planned.items() if t.get("kind", "work") == "work"]
    order += sorted(k for k, t in recorded.items() if k not in planned and t.kind == "work")
    host = overview.run.host or ""
    cards = []
    for key in order:
        row = recorded.get(key)
        plan = planned.get(key, {})
        started, ended, is_open, outcome, number = spans.get(key, (None, None, False, None, 0))
        status, reason = task_status(
            None if row is None else row.status,
            "" if row is None else row.reason,
            liveness=liveness,
            attempt_open=is_open,
            last_outcome=outcome,
            why=str(plan.get("why", "")),
        )
        final = Status(status).is_final
        if not final:
            ended = None
        elif ended is None and row is not None and not is_open:
            ended = row.updated_at
        used = usage.get(key)
        tokens = None if used is None else used["input_tokens"] + used["output_tokens"]
        cost = None if used is None else used["cost_usd"]
        title = str(plan.get("title", ""))
        cards.append(
            Card(
                key=key,
                title=title,
                status=status,
                reason=reason,
                attempt=number or (row.attempts if row else 0),
                started_at=started,
                elapsed_s=elapsed_s(started, ended, now) if ended or not final else None,
                final=final,
                provider=str(plan.get("provider", "")),
                host=host if number else "",
                tokens=tokens,
                cost_usd=cost,
            )
        )
    return cards


# ---------------------------------------------------------------- the task page


@frozen
class TaskPage:
    """One task of the run: its card, its row's facts and its attempts."""

    card: Card
    row: TaskRow | None
    attempts: list[AttemptRow]
    waiting: Waiting | None
    run: RunRow
    #: where the full log is, when it is on another machine (a shared run): the page then
    #: shows the last attempt's recorded tail
    remote: str | None = None

    @property
    def latest(self) -> AttemptRow | None:
        return self.attempts[-1] if self.attempts else None

    def signature(self) -> tuple[Any, ...]:
        return (self.card.status, self.card.reason, self.row, self.attempts, self.waiting)


#: Per task key: what its row was read for, and the row (see :func:`read_task`).
RowCache = dict[str, tuple[tuple[Any, ...], TaskRow | None]]


def read_task(
    board: Board, store: StoreReader, key: str, plan: tuple[str, ...], rows: RowCache
) -> TaskPage | None:
    """The page of ``key`` in ``board``'s run; None when the run has no such work task.

    The task's row (branch, diff stat, landed commit) comes with every row of the run
    (:meth:`StoreReader.tasks`), so it is read again only when the task's status, reason
    or attempts changed since ``rows`` kept it.
    """
    card = next((c for c in board.cards if c.key == key), None)
    if card is None:
        return None
    attempts = store.attempts(board.run.id, key)
    last_end = attempts[-1].ended_at if attempts else None
    stamp = (board.run.id, card.status, card.reason, len(attempts), last_end)
    cached = rows.get(key)
    if cached is not None and cached[0] == stamp:
        row = cached[1]
    else:
        row = next((t for t in store.tasks(board.run.id) if t.key == key), None)
        rows[key] = (stamp, row)
    waiting = waiting_for(key, card.status, card.reason, plan)
    return TaskPage(card, row, attempts, waiting, board.run)
