"""What the pty and tmux backends share: typing into a terminal and deciding how it ends.

:func:`keystrokes` turns text into the bytes typed; :class:`TerminalSupervisor` decides an
attempt's ending from output events, exit and time limits, types answers and asks
questions (see :mod:`planrun.sessions.pty` for the rules).
"""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable

import trio

from planrun.core.outcomes import Outcome
from planrun.sessions.base import OnQuestion, SessionSpec
from planrun.sessions.common import Ending, pattern_ending
from planrun.sessions.idle import IdleClock
from planrun.sessions.output import AnswerDue, Event, OutputWatcher
from planrun.sessions.questions import Questions

#: Bracketed paste markers (xterm): what a terminal sends around pasted text.
PASTE_START, PASTE_END = "\x1b[200~", "\x1b[201~"
#: Characters never typed: C0 controls except tab and newline, DEL and C1 controls. Typed,
#: they would act as keys (ctrl-C, ctrl-D, ctrl-U erase the line, ESC ends a paste early).
_NOT_TYPED = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")

Write = Callable[[bytes], Awaitable[None]]

#: A program asking the terminal where the cursor is (DSR 6, "device status report").
CURSOR_QUERY = b"\x1b[6n"
#: The answer planrun gives (CPR): row 1, column 1. It keeps no screen, so it cannot know
#: better; what matters is that a program waiting for an answer (TUIs do, at start) gets one.
CURSOR_REPLY = b"\x1b[1;1R"


class CursorQueries:
    """Counts cursor-position queries in a terminal's output, also when split across reads."""

    def __init__(self) -> None:
        self._held = b""  # the end of the last read, if it may start a query

    def count(self, data: bytes) -> int:
        """How many queries ``data`` completes."""
        text = self._held + data
        self._held = next(
            (
                CURSOR_QUERY[:n]
                for n in range(len(CURSOR_QUERY) - 1, 0, -1)
                if text.endswith(CURSOR_QUERY[:n])
            ),
            b"",
        )
        return text.count(CURSOR_QUERY)


def keystrokes(text: str, *, submit: bool) -> bytes:
    """The bytes to type for ``text`` (UTF-8), the same for the pty and tmux backends.

    ``\\r\\n`` and ``\\r`` count as newlines, and control characters (C0 except tab and newline,
    DEL, C1) are removed, so text only ever types text. With ``submit`` (a prompt or an answer
    to a question), trailing newlines are dropped and Enter (``\\r``) is pressed once: a text of
    several lines is sent as one bracketed paste (``ESC[200~ … ESC[201~``, its newlines as
    ``\\r`` as a terminal pastes them) so that an agent's input box receives it whole rather than
    submitting line by line; programs that did not ask for bracketed paste (line readers) see
    the markers as text. Without ``submit`` (an automatic answer's ``send``), each newline is
    pressed as Enter and nothing is added.
    """
    text = _NOT_TYPED.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    if not submit:
        keys = text.replace("\n", "\r")
    else:
        body = text.rstrip("\n")
        if "\n" in body:
            keys = PASTE_START + body.replace("\n", "\r") + PASTE_END + "\r"
        else:
            keys = body + "\r"
    return keys.encode("utf-8", errors="replace")


class TerminalSupervisor:
    """What the pty and tmux backends share: deciding the ending, typing, questions, limits.

    A backend feeds output events to :meth:`handle`, gives :meth:`start` its nursery and a
    ``write`` coroutine that types bytes into the terminal, queues text with :meth:`type`,
    waits for :attr:`end`; its result reads :attr:`ending` and :meth:`exit_note`. Keystrokes
    are typed in the order they were queued, by one task. After :meth:`stop` (the attempt is
    winding down), events still decide the ending but nothing is typed or asked any more.
    """

    def __init__(
        self, spec: SessionSpec, watcher: OutputWatcher, on_question: OnQuestion | None
    ) -> None:
        self.spec = spec
        self.watcher = watcher
        self.ending: Ending | None = None
        self.end = trio.Event()
        self._on_question = on_question
        self._keys_in, self._keys_out = trio.open_memory_channel[bytes](math.inf)
        self._nursery: trio.Nursery | None = None
        self._asking = False
        self._unpaused = trio.Event()
        self._unpaused.set()
        self._started_at = trio.current_time()
        self._paused_at = 0.0
        self._paused_total = 0.0
        self._idle: IdleClock | None = None
        self._pending: Callable[[], bool] = lambda: False
        self._alive: Callable[[], bool] = lambda: True
        self._questions = Questions(spec, watcher, lambda: self._pending(), lambda: self._alive())

    def start(
        self,
        nursery: trio.Nursery,
        write: Write,
        pending: Callable[[], bool] = lambda: False,
        alive: Callable[[], bool] = lambda: True,
    ) -> None:
        """Start typing (with ``write``), the time limits and the question watch in
        ``nursery``. ``pending`` tells whether output is ready to be read (see
        :mod:`planrun.sessions.idle`), ``alive`` whether the process still runs."""
        self._nursery = nursery
        self._pending, self._alive = pending, alive
        nursery.start_soon(self._typist, write)
        if self.spec.input_pattern is not None:
            nursery.start_soon(self._watch_questions)
        if self.spec.timeout is not None:
            nursery.start_soon(self._watch_timeout, self.spec.timeout)
        if self.spec.idle_timeout is not None:
            self._idle = IdleClock(
                self.spec.idle_timeout,
                lambda: self.watcher.last_output_at,
                pending,
                gate=lambda: self._unpaused.wait(),
            )
            nursery.start_soon(self._watch_idle, self._idle)

    def stop(self) -> None:
        """The attempt is ending: from now on events only decide the outcome."""
        self._nursery = None

    def decide(self, ending: Ending) -> None:
        """Record the first ending (later ones are ignored) and signal :attr:`end`."""
        if self.ending is None:
            self.ending = ending
        self.end.set()

    def type(self, keys: bytes) -> None:
        """Queue ``keys`` for typing (ignored once the attempt is ending)."""
        if self._nursery is not None and keys:
            self._keys_in.send_nowait(keys)

    def handle(self, events: list[Event]) -> None:
        """Act on the watcher's events; see the module docstring for the rules."""
        answered = {event.line for event in events if isinstance(event, AnswerDue)}
        for event in events:
            ending = pattern_ending(event)
            if ending is not None:
                self.decide(ending)
            elif isinstance(event, AnswerDue):
                self.type(keystrokes(event.send, submit=False))
            elif event.line not in answered and not self._asking:
                self._questions.note(event.line)  # a question once it stands

    async def _watch_questions(self) -> None:
        """Ask each match that stands as a question (:mod:`planrun.sessions.questions`)."""
        while True:
            self._question(await self._questions.asked())

    def _question(self, line: str) -> None:
        if self._on_question is None or self._nursery is None:
            reason = f"waiting for input: {line}"
            self.decide(Ending(Outcome.NEEDS_INPUT, reason, question=line))
        elif not self._asking:
            self._asking = True
            self._nursery.start_soon(self._ask, self._on_question, line)

    async def _ask(self, on_question: OnQuestion, line: str) -> None:
        """Await the answer with the limits paused; type it, or end as needs_input."""
        self._pause()
        try:
            answer = await on_question(line)
        finally:
            self._resume()
        if answer is None:
            reason = f"waiting for input: {line}"
            self.decide(Ending(Outcome.NEEDS_INPUT, reason, question=line))
        else:
            self.type(keystrokes(answer, submit=True))
        self._asking = False

    def _pause(self) -> None:
        self._paused_at = trio.current_time()
        self._unpaused = trio.Event()

    def _resume(self) -> None:
        now = trio.current_time()
        self._paused_total += now - self._paused_at
        if self._idle is not None:
            self._idle.restart()
        self._unpaused.set()

    async def _typist(self, write: Write) -> None:
        async for keys in self._keys_out:
            await write(keys)

    async def _watch_timeout(self, timeout: float) -> None:
        """Decide ``timed_out`` once ``timeout`` seconds ran, not counting question waits."""
        while True:
            await self._unpaused.wait()
            left = timeout - (trio.current_time() - self._started_at - self._paused_total)
            if left <= 0:
                self.decide(Ending(Outcome.TIMED_OUT, f"timed out after {timeout:g}s"))
                return
            await trio.sleep(left)

    async def _watch_idle(self, clock: IdleClock) -> None:
        """Decide ``stalled`` once no output came for ``idle_timeout`` (questions excepted,
        and time planrun itself was stopped: :mod:`planrun.sessions.idle`)."""
        await clock.wait_stalled()
        self.decide(Ending(Outcome.STALLED, f"no output for {self.spec.idle_timeout:g}s"))

    def exit_note(self, failed: bool) -> list[str]:
        """The reason's note on a question still pending at the exit (failures only)."""
        return self._questions.exit_note(failed=failed)
