"""One line per event, for CI logs and anything that is not a terminal."""

from __future__ import annotations

import time
from typing import TextIO

from planrun.core import events as ev
from planrun.core.events import Event


class PlainProgress:
    def __init__(self, out: TextIO, *, show_output: bool = False) -> None:
        self.out = out
        self.show_output = show_output

    def event(self, event: Event) -> None:
        line = self._line(event)
        if line is not None:
            stamp = time.strftime("%H:%M:%S", time.localtime(event.at))
            self.out.write(f"{stamp} {line}\n")
            self.out.flush()

    def _line(self, e: Event) -> str | None:
        key = e.key or ""
        match e:
            case ev.RunStarted():
                return f"run {e.run_id}: plan {e.plan}, {e.tasks} tasks"
            case ev.AttemptStarted():
                return f"{key}: started (attempt {e.attempt})"
            case ev.AttemptFinished() if e.outcome != "succeeded":
                return f"{key}: attempt {e.attempt} {e.outcome}: {e.reason or ''}".rstrip(": ")
            case ev.RetryScheduled():
                return f"{key}: retrying in {e.delay_s:.1f}s"
            case ev.HookRan() if not e.ok:
                return f"{key or 'run'}: {e.reason}"
            case ev.Landed():
                return f"{key}: landed {e.commit[:12]}"
            case ev.TaskFinished() if e.task_kind == "work":
                reason = f": {e.reason}" if e.reason else ""
                return f"{key}: {e.status}{reason}"
            case ev.TaskPaused():
                return f"{key}: {e.status}: {e.reason}"
            case ev.InputRequested():
                return f"{key}: needs input: {e.question}"
            case ev.RunStopping():
                return f"stopping: {e.reason}"
            case ev.RunFinished():
                counts = ", ".join(f"{n} {s}" for s, n in e.counts.items() if n)
                return f"run {e.status}: {counts}"
            case ev.Output() if self.show_output:
                return f"{key}| {e.line}"
        return None
