"""What planrun asks of a tracker, whatever its kind: a :class:`Client`, made by
:func:`client_for` for the tracker's kind (GitHub, Plane or Jira)."""

from __future__ import annotations

from typing import Protocol

import httpx

from planrun.plan.item import Item
from planrun.plan.model import StatusChange, Tracker, TrackerSelect
from planrun.trackers.status import Intent


class Client(Protocol):
    """One tracker's API, synchronous (compiling calls it directly, the outbox from a
    worker thread); every failure is a :class:`~planrun.trackers.http.TrackerError`."""

    name: str

    def items(self, select: TrackerSelect) -> list[Item]:
        """The items ``select`` chooses, oldest first (an error past ``select.limit``)."""
        ...

    def show(self, intent: Intent, change: StatusChange, comment: str | None) -> None:
        """Make the item show ``change`` and, if given, ``comment`` as planrun's one
        status comment of the task; re-read the item first, leave a closed (done,
        cancelled) item as it is but for the comment, and be idempotent."""
        ...

    def close(self) -> None: ...


def client_for(
    name: str, tracker: Tracker, token: str, *, transport: httpx.BaseTransport | None = None
) -> Client:
    """The client of tracker ``name`` of the plan, with its ``token``."""
    if tracker.kind == "github":
        from planrun.trackers.github import GitHub

        return GitHub(name, tracker, token, transport=transport)
    if tracker.kind == "plane":
        from planrun.trackers.plane import Plane

        return Plane(name, tracker, token, transport=transport)
    from planrun.trackers.jira import Jira

    return Jira(name, tracker, token, transport=transport)
