"""Sending what the agent owes Plane: the activities of :class:`~planrun.agents.ledger.Ledger`
in order, one run at a time, beside serve (:class:`planrun.delivery.DeliveryLoop`).

An activity is in the ledger (saved) before it is sent and leaves it only once Plane
answered 2xx, so a crash or an outage delays it and never loses it. Before an activity
marked ``tried`` is sent again, the run's activities are read and one carrying its id
(``content_metadata.planrun.id``) counts as sent: a restart posts nothing twice. The
activities of one run go in order (an elicitation never overtakes the action before it);
a run whose next activity fails backs off without holding up the others.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import trio

from planrun.agents.activities import ident_of
from planrun.agents.api import AgentApi
from planrun.agents.ledger import Ledger, Outgoing, load_ledger, save_ledger
from planrun.delivery import DeliveryLoop
from planrun.trackers.http import RateLimited, TrackerError

#: Answers after which an activity is dropped (said on stderr): it can never be taken.
REFUSED = frozenset({400, 404, 410, 422})


class Book:
    """The agent's ledger and the file that keeps it; changed only from trio's thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.ledger: Ledger = load_ledger(path)

    def save(self) -> None:
        save_ledger(self.path, self.ledger)


@dataclass
class Due:
    """A run with activities to send: not before ``not_before`` (trio time)."""

    not_before: float = 0.0
    failures: int = 0


class ActivityOutbox(DeliveryLoop[Due]):
    def __init__(
        self,
        book: Book,
        api: AgentApi,
        *,
        backoff: tuple[float, float] = (2.0, 300.0),
        on_sent: Callable[[Outgoing], None] = lambda _: None,
    ) -> None:
        self.book = book
        self.api = api
        self.backoff = backoff
        self.on_sent = on_sent
        self.pending: dict[str, Due] = {}
        self._drained = trio.Event()  # set when nothing is owed any more
        self._wake = trio.Event()
        self._stopping = False
        self.refresh()

    def refresh(self) -> None:
        """Take in what the ledger owes now (call after queueing an activity)."""
        for outgoing in self.book.ledger.outbox:
            self.pending.setdefault(outgoing.run, Due())
        self._wake.set()

    async def drained(self) -> None:
        """Return once nothing is owed (every activity sent or dropped)."""
        while self.book.ledger.outbox:
            self._drained = trio.Event()
            await self._drained.wait()

    async def _round(self, *, final: bool) -> None:
        for run, due in list(self.pending.items()):
            if self._stopping and not final:
                return
            if final or due.not_before <= trio.current_time():
                await self._send_run(run, due, final=final)

    async def _send_run(self, run: str, due: Due, *, final: bool) -> None:
        while True:
            queued = next((o for o in self.book.ledger.outbox if o.run == run), None)
            if queued is None:
                self.pending.pop(run, None)
                if not self.book.ledger.outbox:
                    self._drained.set()
                return
            again = queued.tried
            if not again:
                queued.tried = True
                self.book.save()
            try:
                await trio.to_thread.run_sync(self._send, queued, again, abandon_on_cancel=True)
            except TrackerError as exc:
                due.failures += 1
                if exc.status in REFUSED:
                    print(f"planrun: activity dropped: {exc.message}", file=sys.stderr)
                else:
                    wait = min(self.backoff[0] * 2 ** (due.failures - 1), self.backoff[1])
                    if isinstance(exc, RateLimited):
                        wait = max(wait, exc.reset_at - time.time())
                    due.not_before = trio.current_time() + (0 if final else wait)
                    return
            due.failures = 0
            self.book.ledger.settle(queued.id)
            self.book.save()
            self.on_sent(queued)

    def _send(self, queued: Outgoing, again: bool) -> None:
        """Post ``queued`` (in a worker thread) unless the run already has it."""
        if "complete" in queued.body:
            self.api.complete(queued.run, str(queued.body["complete"]))
            return
        if again and any(ident_of(a) == queued.id for a in self.api.activities(queued.run)):
            return
        self.api.post_activity(queued.run, queued.body)
