"""The loop of a durable outbox (tracker status updates, changesets): deliver what is
pending, one at a time, then sleep until something new is recorded or the earliest
backoff ends, until the run stops; and what is pending, read from the events that
record intents and deliveries. What to deliver and how is the outbox's own."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import trio

if TYPE_CHECKING:
    from planrun.state.store import EventRow


class Waiting(Protocol):
    """A pending delivery: not to be tried before ``not_before`` (trio time)."""

    not_before: float


P = TypeVar("P", bound=Waiting)


class DeliveryLoop(ABC, Generic[P]):
    """:meth:`deliver` and :meth:`stop` over ``pending``; a subclass sets ``pending``,
    ``_wake`` (a :class:`trio.Event`, set when something is recorded) and ``_stopping``,
    and tries each due delivery in :meth:`_round`."""

    pending: dict[Any, P]
    _wake: trio.Event
    _stopping: bool

    def stop(self) -> None:
        """Make :meth:`deliver` return once the delivery under way (if any) is done."""
        self._stopping = True
        self._wake.set()

    async def deliver(self) -> None:
        """Deliver as things come, one at a time, until :meth:`stop` (the run's end; the
        outbox's ``flush`` then gives what is left one last try)."""
        while not self._stopping:
            await self._round(final=False)
            if self._stopping:
                return
            self._wake = trio.Event()
            waits = [p.not_before for p in self.pending.values()]
            with trio.move_on_at(min(waits, default=float("inf"))):
                await self._wake.wait()

    @abstractmethod
    async def _round(self, *, final: bool) -> None:
        """Try every pending delivery that is due (all of them when ``final``)."""


T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


def intents(
    rows: Iterable[EventRow],
    intent_kind: str,
    read: Callable[[Mapping[str, Any]], T],
    key: Callable[[T], K],
) -> dict[K, tuple[T, list[str]]]:
    """Per key, from an outbox's events in order: its newest intent (``read`` from an
    ``intent_kind`` row), and the ids (``run/seq``) of its intents that no delivery (any
    other row, naming the ``intents`` it covered) settled, oldest first; none when the
    newest is settled."""
    latest: dict[K, tuple[str, T]] = {}
    ids: dict[K, list[str]] = {}
    settled: set[str] = set()
    for row in rows:
        if row.kind == intent_kind:
            value = read(row.data)
            ident = f"{row.run_id}/{row.seq}"
            latest[key(value)] = (ident, value)
            ids.setdefault(key(value), []).append(ident)
        else:
            settled.update(row.data.get("intents") or ())
    return {
        k: (value, [] if ident in settled else [i for i in ids[k] if i not in settled])
        for k, (ident, value) in latest.items()
    }


__all__ = ["DeliveryLoop", "Waiting", "intents"]
