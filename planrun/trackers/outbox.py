"""The durable outbox: status updates for tracker items, recorded first, delivered after.

:class:`Outbox` is an observer of the run's events. When a task of a tracker item starts,
finishes or fails, it records an :class:`~planrun.trackers.status.Intent` as a
``tracker_intent`` event of the run through the store (``StoreWriter.happened``: one
durable transaction) and wakes the delivery. :meth:`Outbox.deliver` runs beside the
scheduler; delivering an item means re-reading it and setting it to what the latest
intent says (labels as a set, one status comment found by its marker, closing): doing it
twice changes nothing, so an intent whose delivery was cut short by a crash is simply
delivered again. A delivery that succeeds is recorded as a ``tracker_delivered`` event
naming the intents it covers.

Nothing here fails a task: a tracker that is down or rate limited is retried with
backoff while the run lasts, tried once more at its end (:meth:`Outbox.flush`), and what
is still pending stays in the store for the next ``apply`` of the plan, which reads every
undelivered intent of the plan's runs when it starts (:func:`pending_intents`).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import trio

from planrun.core.events import AttemptStarted, Event, Landed, TaskFinished
from planrun.core.names import branch_name
from planrun.delivery import DeliveryLoop, intents
from planrun.errors import StoreError
from planrun.plan.resolved import CompiledPlan
from planrun.state.store import StoreProtocol, StoreReader, utc_now
from planrun.trackers.deliver import Clients, deliver_one
from planrun.trackers.http import RateLimited, TrackerError
from planrun.trackers.status import Intent, Moment

INTENT_EVENT = "tracker_intent"
DELIVERED_EVENT = "tracker_delivered"
#: HTTP statuses after which an update is dropped (recorded, with why): the item is gone.
GONE = frozenset({404, 410, 422})
ItemId = tuple[str, str, str]


@dataclass
class Pending:
    """The latest undelivered intent of one item, and every intent id it settles."""

    intent: Intent
    ids: list[str] = field(default_factory=list)
    not_before: float = 0.0  # trio time: backing off until then
    failures: int = 0
    last_error: str = ""


def pending_intents(store: StoreReader, plan_name: str) -> dict[ItemId, Pending]:
    """Every item with an intent no delivery covered, over all of the plan's runs."""
    rows = store.plan_events(plan_name, (INTENT_EVENT, DELIVERED_EVENT))
    table = intents(rows, INTENT_EVENT, Intent.of, lambda intent: intent.item)
    return {item: Pending(intent, ids) for item, (intent, ids) in table.items() if ids}


class Outbox(DeliveryLoop[Pending]):
    """Records the status updates of a run's tracker items and delivers them."""

    def __init__(
        self,
        plan: CompiledPlan,
        store: StoreProtocol,
        run_id: str,
        clients: Clients,
        *,
        redact: Callable[[str], str] = str,
        backoff: tuple[float, float] = (2.0, 300.0),
    ) -> None:
        self.plan = plan
        self.store = store
        self.run_id = run_id
        self.clients = clients
        self.redact = redact
        self.backoff = backoff
        self.pending = pending_intents(store, plan.name)
        self.delivered = 0
        self._started: set[str] = set()
        self._commits: dict[str, str] = {}
        self._wake = trio.Event()
        self._stopping = False
        self._busy: set[ItemId] = set()  # being delivered (or abandoned mid-delivery)
        self._drained = trio.Event()  # set when nothing is pending any more

    # ------------------------------------------------------------ the observer

    def event(self, event: Event) -> None:
        key = event.key
        if key is None or self._item(key) is None:
            return
        if isinstance(event, AttemptStarted) and key not in self._started:
            self._started.add(key)
            self._record(key, "started")
        elif isinstance(event, Landed):
            self._commits[key] = event.commit
        elif isinstance(event, TaskFinished):
            if event.status == "done" and key in self._started:
                self._record(key, "done", event.reason)
            elif event.status in ("failed", "skipped", "cancelled"):
                self._record(key, "failed", f"{event.status}: {event.reason}")

    def _item(self, key: str) -> Mapping[str, Any] | None:
        """The tracker item of task ``key``, if its tracker takes status updates."""
        task = self.plan.tasks.get(key)
        item = task.item if task is not None and task.kind == "work" else None
        if not isinstance(item, Mapping) or "tracker" not in item:
            return None
        tracker = self.plan.trackers.get(str(item["tracker"]))
        return item if tracker is not None and tracker.status is not None else None

    def _record(self, key: str, moment: Moment, reason: str = "") -> None:
        item = self._item(key)
        assert item is not None
        task = self.plan.tasks[key]
        project = self.plan.projects.get(task.project) if task.project else None
        branch = branch_name(self.plan.name, key) if project and project.worktrees else None
        intent = Intent(
            tracker=str(item["tracker"]),
            ref=str(item["ref"]),
            item_key=str(item["key"]),
            task=key,
            plan=self.plan.name,
            moment=moment,
            run_id=self.run_id,
            at=utc_now(),
            branch=branch,
            commit=self._commits.get(key) if moment == "done" else None,
            reason=self.redact(reason),
        )
        seq = self.store.happened(self.run_id, INTENT_EVENT, key, intent.as_data())
        ident = f"{self.run_id}/{seq}"
        earlier = self.pending.get(intent.item)
        self.pending[intent.item] = Pending(intent, [*(earlier.ids if earlier else []), ident])
        self._wake.set()

    # ------------------------------------------------------------ delivery

    async def drained(self) -> None:
        """Return once nothing is pending (every update delivered or dropped)."""
        while self.pending:
            self._drained = trio.Event()
            await self._drained.wait()

    async def flush(self) -> None:
        """One last try for every pending update, backoff or not; what still fails stays
        pending for the next apply, and is said on stderr."""
        await self._round(final=True)
        if self.pending:
            trackers = sorted({p.intent.tracker for p in self.pending.values()})
            why = next((p.last_error for p in self.pending.values() if p.last_error), "")
            print(
                f"planrun: {len(self.pending)} status update(s) for tracker "
                f"{', '.join(trackers)} not delivered yet ({why}); the next apply of "
                "this plan delivers them",
                file=sys.stderr,
            )

    async def _round(self, *, final: bool) -> None:
        for item, pending in list(self.pending.items()):
            if not final and pending.not_before > trio.current_time():
                continue
            if self.pending.get(item) is not pending or item in self._busy:
                continue
            if self._stopping and not final:
                return
            await self._try(item, pending, final=final)

    async def _try(self, item: ItemId, pending: Pending, *, final: bool) -> None:
        intent = pending.intent
        self._busy.add(item)  # stays busy if cancelled: its thread may still be at work
        try:
            await _deliver(self.clients, intent, self.redact)
        except TrackerError as exc:
            self._busy.discard(item)
            pending.failures += 1
            pending.last_error = exc.message
            if exc.status in GONE:
                self._settle(item, pending, dropped=exc.message)
                print(f"planrun: status update dropped: {exc.message}", file=sys.stderr)
                return
            wait = min(self.backoff[0] * 2 ** (pending.failures - 1), self.backoff[1])
            if isinstance(exc, RateLimited):
                wait = max(wait, exc.reset_at - time.time())
            pending.not_before = trio.current_time() + (0 if final else wait)
            return
        self._busy.discard(item)
        self._settle(item, pending)

    def _settle(self, item: ItemId, pending: Pending, dropped: str = "") -> None:
        data: dict[str, Any] = {"intents": pending.ids, "moment": pending.intent.moment}
        if dropped:
            data["dropped"] = dropped
        try:
            self.store.happened(self.run_id, DELIVERED_EVENT, pending.intent.task, data)
        except StoreError as exc:  # delivered, but not recorded: delivered again next time
            print(f"planrun: tracker update delivered but not recorded: {exc}", file=sys.stderr)
        if self.pending.get(item) is pending:
            del self.pending[item]
        self.delivered += 1
        if not self.pending:
            self._drained.set()


async def _deliver(clients: Clients, intent: Intent, redact: Callable[[str], str]) -> None:
    """:func:`deliver_one` in a worker thread; an answer of odd shape is a TrackerError
    (retried), never an exception that would end the run."""
    try:
        await trio.to_thread.run_sync(deliver_one, clients, intent, redact, abandon_on_cancel=True)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise TrackerError(
            f"tracker {intent.tracker} answered something unexpected: {type(exc).__name__}: {exc}"
        ) from None
