"""One line per event, for CI logs and anything that is not a terminal."""

from __future__ import annotations

import time
from typing import TextIO

from planrun.core.events import Event, EventKind


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
        d = e.data
        key = e.key or ""
        match e.kind:
            case EventKind.RUN_STARTED:
                return f"run {d['run_id']}: plan {d['plan']}, {d['tasks']} tasks"
            case EventKind.ATTEMPT_STARTED:
                return f"{key}: started (attempt {d['attempt']})"
            case EventKind.ATTEMPT_FINISHED if d["outcome"] != "succeeded":
                return (
                    f"{key}: attempt {d['attempt']} {d['outcome']}: {d.get('reason') or ''}".rstrip(
                        ": "
                    )
                )
            case EventKind.RETRY_SCHEDULED:
                return f"{key}: retrying in {d['delay_s']:.1f}s"
            case EventKind.HOOK_RAN if not d["ok"]:
                return f"{key or 'run'}: {d['reason']}"
            case EventKind.LANDED:
                return f"{key}: landed {d['commit'][:12]}"
            case EventKind.TASK_FINISHED if d.get("task_kind") == "work":
                reason = f": {d['reason']}" if d.get("reason") else ""
                return f"{key}: {d['status']}{reason}"
            case EventKind.TASK_PAUSED:
                return f"{key}: {d['status']}: {d.get('reason', '')}"
            case EventKind.INPUT_REQUESTED:
                return f"{key}: needs input: {d.get('question', '')}"
            case EventKind.RUN_STOPPING:
                return f"stopping: {d['reason']}"
            case EventKind.RUN_FINISHED:
                counts = ", ".join(f"{n} {s}" for s, n in d["counts"].items() if n)
                return f"run {d['status']}: {counts}"
            case EventKind.OUTPUT if self.show_output:
                return f"{key}| {d['line']}"
        return None
