"""``--events FILE|-``: every event as one JSON line, flushed as it happens."""

from __future__ import annotations

import json
from typing import TextIO

from planrun.core.events import Event


class JsonLines:
    def __init__(self, out: TextIO) -> None:
        self.out = out

    def event(self, event: Event) -> None:
        self.out.write(json.dumps(event.as_json(), ensure_ascii=False, default=str) + "\n")
        self.out.flush()
