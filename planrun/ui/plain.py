"""One line per event, for CI logs and anything that is not a terminal, and the final
summary at the end of the run (:mod:`planrun.ui.summary`).

A failure names its last line of output, not only its exit code; a question or a review
names the command that lets the task go on. In a dry run every line says so. Under GitHub
Actions (``github=True``) each failed task is also an ``::error`` annotation, and the
summary folds each failed task's output into a ``::group::``.
"""

from __future__ import annotations

import time
from typing import TextIO

from planrun.core import events as ev
from planrun.core.events import Event
from planrun.ui import github
from planrun.ui.hints import Hints
from planrun.ui.model import RunView, shown
from planrun.ui.summary import TAIL_SHOWN, Line, Tail, final_summary, last_line


class PlainProgress:
    def __init__(
        self,
        out: TextIO,
        *,
        show_output: bool = False,
        dry_run: bool = False,
        hints: Hints | None = None,
        github: bool = False,
    ) -> None:
        self.out = out
        self.show_output = show_output
        self.dry_run = dry_run
        self.hints = hints or Hints()
        self.github = github
        self.view = RunView()

    def event(self, event: Event) -> None:
        self.view.event(event)
        line = self._line(event)
        if line is not None:
            self._write(line, time.strftime("%H:%M:%S ", time.localtime(event.at)))
        match event:
            case ev.TaskFinished(status="failed", task_kind="work") if self.github:
                self._annotate(event.key or "")
            case ev.RunFinished():
                self._summary()
        self.out.flush()

    def _write(self, text: str, stamp: str = "") -> None:
        self.out.write(f"{stamp}{'[dry run] ' if self.dry_run else ''}{text}\n")

    def _line(self, e: Event) -> str | None:
        key = e.key or ""
        match e:
            case ev.RunStarted():
                return f"run {e.run_id}: plan {e.plan}, {e.tasks} task{'' if e.tasks == 1 else 's'}"
            case ev.AttemptStarted():
                return f"{key}: started (attempt {e.attempt})"
            case ev.AttemptFinished() if e.outcome != "succeeded":
                text = f"{key}: attempt {e.attempt} {e.outcome}: {e.reason or ''}".rstrip(": ")
                return text + _last_output(e.tail, e.reason)
            case ev.RetryScheduled():
                return f"{key}: retrying in {e.delay_s:.1f}s"
            case ev.HookRan() if not e.ok:
                return f"{key or 'run'}: {e.reason}"
            case ev.WorkKept():
                return f"{key}: its earlier commits are kept on branch {e.branch}"
            case ev.Landed():
                return f"{key}: landed {e.commit[:12]}"
            case ev.TaskFinished() if e.task_kind == "work":
                return self._finished(e)
            case ev.TaskPaused(status="in_review"):
                return self._in_review(key, e.reason)
            case ev.InputRequested():
                return f"{key}: needs input: {e.question}; answer: {self.hints.answer(key)}"
            case ev.RunStopping():
                return f"stopping: {e.reason}"
            case ev.RunFinished():
                counts = ", ".join(f"{n} {s}" for s, n in e.counts.items() if n)
                return f"run {e.status}: {counts}"
            case ev.Output() if self.show_output:
                return f"{key}| {e.line}"
        return None

    def _finished(self, e: ev.TaskFinished) -> str:
        text = f"{e.key}: {e.status}{f': {e.reason}' if e.reason else ''}"
        ended = self.view.ended.get(e.key or "")
        if e.status == "failed" and ended is not None:
            text += _last_output(ended.tail, e.reason)
        return text

    def _in_review(self, key: str, reason: str) -> str:
        """The reason, and the command that approves (unless the reason names it)."""
        command = "" if "planrun approve" in reason else f"; approve: {self.hints.approve(key)}"
        return f"{key}: in_review: {reason}{command}"

    def _annotate(self, key: str) -> None:
        ended = self.view.ended[key]
        lines = [shown(line) for line in ended.tail[-TAIL_SHOWN:]]
        message = "\n".join([ended.reason or "failed", *lines])
        self.out.write(github.error(f"planrun: {key} failed", message) + "\n")

    def _summary(self) -> None:
        for item in final_summary(self.view, self.hints, dry_run=self.dry_run):
            match item:
                case Line():
                    self._write(" " * item.indent + item.text)
                case Tail() if self.github:
                    title = f"{item.key}: last lines of output"
                    for text in github.group(title, [shown(t) for t in item.lines]):
                        self.out.write(text + "\n")
                case Tail():
                    for text in item.lines[-TAIL_SHOWN:]:
                        self._write(f"    | {shown(text)}")


def _last_output(tail: tuple[str, ...], reason: str) -> str:
    """``; last output: LINE``, unless the reason already quotes it (a question does)."""
    line = last_line(tail)
    return f"; last output: {line}" if line and line not in reason else ""
