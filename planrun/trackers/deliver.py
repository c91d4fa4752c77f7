"""Delivering one status update to its item, through the client of its tracker's kind.

Every client's :meth:`~planrun.trackers.base.Client.show` re-reads the item and sets it
to what it should show (labels as a set, states only forward, the comment found by its
marker and edited), so a delivery cut short (a crash, a timeout after the tracker acted)
is simply done again. An item a person closed is left as it is but for the comment (the
lesson of an item moved from Done back to review). Runs in a worker thread
(``trio.to_thread``): the clients are synchronous httpx.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

from planrun.plan.model import Tracker
from planrun.trackers.base import Client, client_for
from planrun.trackers.http import TrackerError
from planrun.trackers.status import Intent, change_for, comment_body


class Clients:
    """One client per tracker of the plan, made when first needed, with its token."""

    def __init__(self, trackers: Mapping[str, Tracker], environ: Mapping[str, str]) -> None:
        self.trackers = dict(trackers)
        self._environ = environ
        self._made: dict[str, Client] = {}
        self._lock = threading.Lock()

    def client(self, name: str) -> Client:
        with self._lock:
            if name not in self._made:
                tracker = self.trackers[name]
                token = self._environ.get(tracker.token)
                if not token:
                    raise TrackerError(f"tracker {name}: {tracker.token} is not set")
                self._made[name] = client_for(name, tracker, token)
            return self._made[name]

    def close(self) -> None:
        with self._lock:
            for client in self._made.values():
                client.close()
            self._made.clear()


def deliver_one(clients: Clients, intent: Intent, redact: Callable[[str], str]) -> None:
    """Make item ``intent.ref`` show ``intent``; TrackerError if the tracker refuses."""
    tracker = clients.trackers.get(intent.tracker)
    if tracker is None or tracker.status is None:  # the plan no longer asks for it
        return
    comment = comment_body(intent, redact) if tracker.status.comment else None
    change = change_for(tracker, intent.moment)
    clients.client(intent.tracker).show(intent, change, comment)
