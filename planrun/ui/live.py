"""The live view on a terminal: running tasks with attempt, elapsed time and last line."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from planrun.core import events as ev
from planrun.core.events import Event


@dataclass
class _Row:
    status: str
    attempt: int
    started: float
    last_line: str = ""


class LiveProgress:
    """A rich table redrawn at most ``fps`` times a second, from the event stream."""

    def __init__(self, out: TextIO, total: int = 0, fps: float = 8.0) -> None:
        self.console = Console(file=out)
        self.rows: dict[str, _Row] = {}
        self.finished: dict[str, int] = {}
        self.total = total
        self.plan = ""
        self._min_interval = 1.0 / fps
        self._last_draw = 0.0
        self._live = Live(console=self.console, auto_refresh=False, transient=False)

    def __enter__(self) -> LiveProgress:
        self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._draw(force=True)
        self._live.stop()

    def event(self, event: Event) -> None:
        key = event.key or ""
        match event:
            case ev.RunStarted():
                self.total, self.plan = event.tasks, event.plan
            case ev.AttemptStarted():
                self.rows[key] = _Row("running", event.attempt, event.at)
            case ev.RetryScheduled() if key in self.rows:
                self.rows[key].status = f"retry in {event.delay_s:.0f}s"
            case ev.Output() if key in self.rows:
                self.rows[key].last_line = event.line
            case ev.TaskFinished() if event.task_kind == "work":
                self.rows.pop(key, None)
                self.finished[event.status] = self.finished.get(event.status, 0) + 1
        self._draw(force=isinstance(event, ev.TaskFinished | ev.RunFinished))

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_draw < self._min_interval:
            return
        self._last_draw = now
        self._live.update(self._render(), refresh=True)

    def _render(self) -> Group:
        table = Table(expand=True, box=None, header_style="bold")
        table.add_column("task", no_wrap=True, max_width=40)
        table.add_column("status", no_wrap=True)
        table.add_column("try", justify="right")
        table.add_column("elapsed", justify="right")
        table.add_column("last output", no_wrap=True, overflow="ellipsis", ratio=1)
        now = time.time()
        for key, row in sorted(self.rows.items(), key=lambda kv: kv[1].started):
            table.add_row(
                key, row.status, str(row.attempt), f"{now - row.started:.0f}s", Text(row.last_line)
            )
        done = sum(self.finished.values())
        counts = "  ".join(f"{s} {n}" for s, n in sorted(self.finished.items()))
        header = Text(f"planrun {self.plan}: {done}/{self.total} finished  {counts}", style="bold")
        return Group(header, table)
