"""``--events FILE|-``: every event as one JSON line, flushed as it happens.

Each line is the event's own JSON (:meth:`planrun.core.events.Event.as_json`: ``at`` as
Unix seconds, ``kind``, ``key`` and the event's fields) led by three stamps:
``schema`` (:data:`EVENTS_SCHEMA_VERSION`, raised when a line changes incompatibly),
``run_id`` (taken from the run's first event, ``run_started``) and ``time`` (``at`` as
ISO-8601 in UTC). ``planrun schema events`` prints the JSON Schema every line matches.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, TextIO

from planrun.core.events import Event, RunStarted

#: the version of the line format, written as ``"schema"`` on every line
EVENTS_SCHEMA_VERSION = 1


class JsonLines:
    def __init__(self, out: TextIO, run_id: str | None = None) -> None:
        self.out = out
        self.run_id = run_id

    def event(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.run_id = event.run_id
        self.out.write(json.dumps(self.line(event), ensure_ascii=False, default=str) + "\n")
        self.out.flush()

    def line(self, event: Event) -> dict[str, Any]:
        """The JSON object written for ``event``."""
        stamps = {
            "schema": EVENTS_SCHEMA_VERSION,
            "run_id": self.run_id,
            "time": iso_time(event.at),
        }
        return {**stamps, **event.as_json()}


def iso_time(at: float) -> str:
    """``at`` (Unix seconds) as ISO-8601 in UTC: ``2026-11-21T06:00:00.250000Z``."""
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="microseconds")[:-6] + "Z"
