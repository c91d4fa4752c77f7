"""Delivering one status update to its item: re-read it, then set it to what it should show.

Every step is idempotent, so a delivery cut short (a crash, a timeout after the tracker
acted) is simply done again: labels are set as a whole set, the status comment is found
by its hidden marker and edited (or made once), and closing a closed item is not asked.

An item a person closed is never touched again but for the comment: planrun neither
re-labels nor reopens it (the lesson of an item moved from Done back to review).
Runs in a worker thread (``trio.to_thread``): the client is synchronous httpx.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

from planrun.plan.model import Tracker
from planrun.trackers.github import GitHub, label_names
from planrun.trackers.http import TrackerError
from planrun.trackers.status import (
    Intent,
    change_for,
    comment_body,
    labels_after,
    managed_labels,
    marker,
)


class Clients:
    """One client per tracker of the plan, made when first needed, with its token."""

    def __init__(self, trackers: Mapping[str, Tracker], environ: Mapping[str, str]) -> None:
        self.trackers = dict(trackers)
        self._environ = environ
        self._made: dict[str, GitHub] = {}
        self._lock = threading.Lock()

    def client(self, name: str) -> GitHub:
        with self._lock:
            if name not in self._made:
                tracker = self.trackers[name]
                token = self._environ.get(tracker.token)
                if not token:
                    raise TrackerError(f"tracker {name}: {tracker.token} is not set")
                self._made[name] = GitHub(name, tracker, token)
            return self._made[name]

    def close(self) -> None:
        with self._lock:
            for client in self._made.values():
                client.close()
            self._made.clear()


def deliver_one(clients: Clients, intent: Intent, redact: Callable[[str], str]) -> None:
    """Make item ``intent.number`` show ``intent``; TrackerError if the tracker refuses."""
    tracker = clients.trackers.get(intent.tracker)
    if tracker is None or tracker.status is None:  # the plan no longer asks for it
        return
    client = clients.client(intent.tracker)
    issue = client.issue(intent.number)
    closed = issue.get("state") == "closed"
    change = change_for(tracker.status, intent.moment)
    if not closed:
        current = label_names(issue)
        wanted = labels_after(current, managed_labels(tracker), change)
        if sorted(wanted) != sorted(current):
            client.set_labels(intent.number, wanted)
    if tracker.status.comment:
        _upsert_comment(client, intent, comment_body(intent, redact))
    if change.close and not closed:
        client.close_issue(intent.number)


def _upsert_comment(client: GitHub, intent: Intent, body: str) -> None:
    """Edit planrun's status comment of the task on the item, or make it once."""
    mark = marker(intent.plan, intent.task)
    mine = [c for c in client.comments(intent.number) if mark in str(c.get("body") or "")]
    if not mine:
        client.create_comment(intent.number, body)
    elif mine[0].get("body") != body:
        client.edit_comment(int(mine[0]["id"]), body)
