"""When a match of ``input_pattern`` is a question: a prompt the process waits on.

A phrase in the output is not yet a question: an agent's final result may quote it ("it
printed 'Do you want to proceed?' and I answered"), documentation may mention it. A match
is *pending* until it stands as a question, which it does once, all of:

- the process is still running;
- nothing more came out for ``spec.question_quiet`` seconds since its last output (at most
  half of ``idle_timeout``, so that a question is judged before a stall); output ready to
  be read counts as output (it is read first);
- the matched line has not scrolled away: fewer than ``spec.terminal_size`` rows of lines
  followed it (a full-screen program redraws its prompt; a plain one prints it last);
- the line is not data: a line that is a whole JSON value (an agent's ``--output-format
  json`` result, which quotes anything) is never a question.

The process's exit, whatever its status, wins over a pending match: an agent that exited
was not waiting for input. A failing exit right after a match (nothing printed after it)
is reported in the reason (:meth:`Questions.exit_note`), as a hint of why it failed.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import trio

from planrun.sessions.base import SessionSpec
from planrun.sessions.output import OutputWatcher

#: Pause while output that is ready waits for the reader, before judging a question.
_DRAIN_POLL = 0.01


def is_data(line: str) -> bool:
    """True if ``line`` is one whole JSON object or array (machine output, not a prompt)."""
    text = line.strip()
    if not text or text[0] not in "{[":
        return False
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


class Questions:
    """One attempt's pending question (see the module docstring for the rules).

    ``pending_output`` tells whether output is ready to be read; ``alive`` whether the
    process still runs. Use :meth:`note` for each ``input_pattern`` match, and await
    :meth:`asked` in the attempt's nursery.
    """

    def __init__(
        self,
        spec: SessionSpec,
        watcher: OutputWatcher,
        pending_output: Callable[[], bool],
        alive: Callable[[], bool],
    ) -> None:
        quiet = spec.question_quiet
        if spec.idle_timeout is not None:
            quiet = min(quiet, spec.idle_timeout / 2)
        self._quiet = quiet
        self._rows = spec.terminal_size[0]
        self._watcher = watcher
        self._pending_output = pending_output
        self._alive = alive
        self._line: str | None = None
        self._lines_at = 0
        self._noted = trio.Event()

    def note(self, line: str) -> None:
        """``input_pattern`` matched ``line``: it may be a question."""
        if is_data(line):
            return
        self._line, self._lines_at = line, self._watcher.lines_seen
        self._noted.set()

    def pending(self) -> str | None:
        """The matched line, while it may still be the question."""
        if self._line is not None and self._watcher.lines_seen - self._lines_at > self._rows:
            self._line = None
        return self._line

    def clear(self) -> None:
        """Forget the pending match (it was asked, or it is being asked)."""
        self._line = None

    def exit_note(self, *, failed: bool, why_unanswered: str = "") -> list[str]:
        """The reason's note for an exit with a match still pending (failures only)."""
        line = self.pending()
        last = self._watcher.lines_seen - self._lines_at <= 1  # nothing printed after it
        if not failed or line is None or not last:
            return []
        return [f"its last output asked: {line.strip()}{why_unanswered}"]

    async def asked(self) -> str:
        """Wait until a pending match stands as a question; return its line (now cleared)."""
        while True:
            if self.pending() is None:
                self._noted = trio.Event()
                await self._noted.wait()
                continue
            due = self._watcher.last_output_at + self._quiet
            if trio.current_time() < due:
                await trio.sleep_until(due)
            elif self._pending_output():
                await trio.sleep(_DRAIN_POLL)  # the reader takes it first
            elif not self._alive():
                await trio.sleep_forever()  # exited: its end is being handled
            else:
                line = self.pending()
                if line is not None:
                    self.clear()
                    return line
