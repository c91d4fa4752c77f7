"""The live view on a terminal: every active task with its status, attempt, elapsed time
and last line, the queue, and what waits for a person, with the command to type.

Events arrive in the trio thread and only update a :class:`RunView` (under a lock); rich's
refresh thread draws it ``fps`` times a second, so elapsed times and retry countdowns move
while nothing happens. At the end the table goes and the final summary
(:mod:`planrun.ui.summary`) stays on the screen.

Every text a task, a plan or a person chose (keys, reasons, output lines, questions) is a
plain :class:`~rich.text.Text`, never markup: an item named ``/tmp`` makes the key
``t[/tmp]``, which is not a closing tag.
"""

from __future__ import annotations

import math
import threading
import time
from typing import TextIO

from rich.console import Console, Group, RenderableType
from rich.constrain import Constrain
from rich.live import Live
from rich.table import Table
from rich.text import Text

from planrun.core.events import Event
from planrun.ui.hints import Hints
from planrun.ui.model import IN_REVIEW, NEEDS_INPUT, RETRYING, Active, RunView, shown
from planrun.ui.summary import STYLES, TAIL_SHOWN, Line, Tail, final_summary

#: below this width the table drops the attempt and last output columns
NARROW = 70
#: tasks waiting for an answer (and, apart, for a review) named under the table
MOST_WAITING = 5


class LiveProgress:
    def __init__(
        self,
        out: TextIO,
        *,
        dry_run: bool = False,
        hints: Hints | None = None,
        fps: float = 4.0,
    ) -> None:
        self.console = Console(file=out, highlight=False)
        self.view = RunView()
        self.dry_run = dry_run
        self.hints = hints or Hints()
        self._lock = threading.Lock()
        self._live = Live(
            console=self.console,
            auto_refresh=True,
            refresh_per_second=fps,
            transient=True,
            get_renderable=self._render,
        )

    def __enter__(self) -> LiveProgress:
        self._live.start(refresh=True)
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.stop()
        with self._lock:
            items = final_summary(self.view, self.hints, dry_run=self.dry_run)
        for item in items:
            self.console.print(_summary_text(item), soft_wrap=True)

    def event(self, event: Event) -> None:
        with self._lock:
            self.view.event(event)

    # --- drawing (rich's refresh thread) ------------------------------------------------

    def _render(self) -> RenderableType:
        with self._lock:
            now = time.time()
            rows = sorted(self.view.active.values(), key=lambda a: (a.started, a.key))
            waiting = self._waiting()
            room = max(3, self.console.size.height - 4 - len(waiting))
            parts: list[RenderableType] = [self._header(now), self._table(rows[:room], now)]
            if len(rows) > room:
                parts.append(Text(f"… and {len(rows) - room} more active", style="dim"))
            parts += waiting
        # Two columns short of the terminal: a line that fills it leaves the cursor waiting
        # to wrap, and the "^C" the terminal echoes for Ctrl-C then starts a new line, so
        # the view's next redraw and its clearing land one line low (the header stayed on
        # the screen, above the summary, after an interrupted run).
        return Constrain(Group(*parts), max(NARROW // 2, self.console.width - 2))

    def _header(self, now: float) -> Text:
        view = self.view
        header = Text(f"planrun {view.plan}", style="bold")
        if self.dry_run:
            header.append("  DRY RUN: nothing runs", style=STYLES["dry run"])
        header.append(f"  {view.finished_count()}/{view.total} finished")
        for status, count in view.finished_counts().items():
            header.append(f" {count} {status}", style=STYLES.get(status, ""))
        running = sum(1 for a in view.active.values() if a.state(now) == "running")
        header.append(f"  {running} running  {len(view.queued)} queued")
        header.append(f"  {_clock(view.elapsed(now))}")
        return header

    def _table(self, rows: list[Active], now: float) -> Table:
        wide = self.console.width >= NARROW
        table = Table(box=None, header_style="bold", pad_edge=False, expand=wide)
        table.add_column("task", overflow="fold", max_width=max(12, self.console.width // 3))
        table.add_column("status", no_wrap=True)
        if wide:
            table.add_column("try", justify="right", no_wrap=True)
        table.add_column("time", justify="right", no_wrap=True)
        if wide:
            table.add_column("last output", no_wrap=True, overflow="ellipsis", ratio=1)
        for row in rows:
            status = _status(row, now)
            cells = [Text(row.key), status]
            if wide:
                cells.append(Text(str(row.attempt) if row.attempt else ""))
            cells.append(Text(_clock(now - row.started) if row.attempt else ""))
            if wide:
                cells.append(Text(shown(row.last_line), style="dim"))
            table.add_row(*cells)
        return table

    def _waiting(self) -> list[Text]:
        """Two lines per task waiting for a person: what it waits for, and the command."""
        asking, review = self.view.waiting(NEEDS_INPUT), self.view.waiting(IN_REVIEW)
        lines: list[Text] = []
        for row in asking[:MOST_WAITING]:
            lines.append(Text(f"{row.key} asks: {shown(row.question)}", STYLES[NEEDS_INPUT]))
            lines.append(Text(f"  answer: {self.hints.answer(row.key)}"))
        for row in review[:MOST_WAITING]:
            lines.append(Text(f"{row.key}: {shown(row.reason or IN_REVIEW)}", STYLES[IN_REVIEW]))
            lines.append(Text(f"  approve: {self.hints.approve(row.key)}"))
        more = max(0, len(asking) - MOST_WAITING) + max(0, len(review) - MOST_WAITING)
        if more:
            lines.append(Text(f"… and {more} more wait for you: {self.hints.status()}", "dim"))
        return lines


def _status(row: Active, now: float) -> Text:
    state = row.state(now)
    if state == RETRYING and row.retry_at is not None:
        return Text(f"retry in {math.ceil(row.retry_at - now)}s", STYLES[RETRYING])
    return Text(state, STYLES.get(state, ""))


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}:{secs:02d}"
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"


def _summary_text(item: Line | Tail) -> Text:
    if isinstance(item, Tail):
        lines = [f"    │ {shown(line)}" for line in item.lines[-TAIL_SHOWN:]]
        return Text("\n".join(lines), style="dim")
    return Text(" " * item.indent + item.text, style=item.style)
