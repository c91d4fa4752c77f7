"""What every session backend (subprocess, pty, tmux, dry run) takes and returns.

A backend runs one attempt of one task: it starts the command in its own process group,
streams its output to ``spec.log_path`` (secrets redacted), watches for completion,
stalls and questions, and guarantees that no process of the attempt outlives it.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from planrun.core.frozen import frozen
from planrun.core.outcomes import Outcome


@frozen
class Answer:
    """When output matches ``expect``, type ``send`` (pty and tmux backends)."""

    expect: re.Pattern[str]
    send: str


@frozen
class SessionSpec:
    """Everything a backend needs to run one attempt. Built by the scheduler, never by users."""

    name: str  # unique per attempt among live sessions, e.g. "demo.LOG-1.a2" (tmux uses it)
    argv: tuple[str, ...]  # executed directly, never through a shell
    cwd: Path
    env: Mapping[str, str]  # the complete environment of the child
    log_path: Path  # appended to; created 0600 with its parent folders
    stdin_text: str | None = None  # written to stdin then closed (prompt_via: stdin)
    type_text: str | None = None  # typed into the terminal once it starts (prompt_via: type)
    timeout: float | None = None  # wall clock seconds for the attempt
    idle_timeout: float | None = None  # seconds without output => stalled
    success_exit_codes: frozenset[int] = frozenset({0})
    success_pattern: re.Pattern[str] | None = None  # output that means done (ends the session)
    failure_pattern: re.Pattern[str] | None = None  # output that means failed (ends it too)
    input_pattern: re.Pattern[str] | None = None  # output that means a question => needs_input
    #: Seconds without output after an input_pattern match, the process still running,
    #: before the match counts as a question (planrun.sessions.questions).
    question_quiet: float = 1.0
    answers: tuple[Answer, ...] = ()
    secrets: tuple[str, ...] = ()  # values redacted from the log, the tail and callbacks
    kill_grace: float = 5.0  # seconds between SIGTERM and SIGKILL to the group
    tail_lines: int = 20  # lines of output kept in memory for the report
    log_limit: int | None = None  # bytes of log per session; then a marker, no more
    terminal_size: tuple[int, int] = (50, 200)  # rows, columns (pty, tmux)


@dataclass
class SessionResult:
    """How an attempt ended. ``exit_code`` and ``signal`` are None when unknown."""

    outcome: Outcome
    reason: str = ""
    exit_code: int | None = None
    signal: int | None = None
    pid: int | None = None
    tail: list[str] = field(default_factory=list)  # last lines, redacted
    output_bytes: int = 0
    question: str | None = None  # the question's line (it matched input_pattern)


@frozen
class ProcessInfo:
    """Identifies a started process group so that a later planrun can find and kill it."""

    pid: int
    pgid: int
    start_time: int  # /proc/<pid>/stat field 22 (clock ticks since boot); 0 if unknown


OnStart = Callable[[ProcessInfo], Awaitable[None]]
OnLine = Callable[[str], None]
#: Called when output matches ``input_pattern`` in a session that can still take input
#: (pty, tmux): returns the text to type (the answer), or None to end the attempt as
#: needs_input. The caller parks the task (frees its slot) while it waits.
OnQuestion = Callable[[str], Awaitable[str | None]]


class Session(Protocol):
    """A backend: ``await backend.run(spec)`` runs one attempt to its end.

    Cancellation (trio) kills the whole process group (SIGTERM, ``kill_grace``, SIGKILL)
    before ``run`` returns or raises. ``on_start`` is awaited right after the process
    exists (the scheduler records it durably); ``on_line`` gets each redacted output line;
    ``on_question`` (see :data:`OnQuestion`) is awaited when the agent asks something and
    the backend can type an answer; backends without a terminal end with needs_input.
    """

    async def run(
        self,
        spec: SessionSpec,
        *,
        on_start: OnStart | None = None,
        on_line: OnLine | None = None,
        on_question: OnQuestion | None = None,
    ) -> SessionResult: ...
