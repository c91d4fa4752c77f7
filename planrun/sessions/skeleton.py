"""The one session skeleton: how every backend runs an attempt, from its log to its result.

:meth:`Backend.run` is :meth:`planrun.sessions.base.Session.run` for the subprocess, pty and
tmux backends, the same steps in the same order:

1. open the attempt's output watcher (its log); a log that does not open is
   ``startup_failed``, before anything starts;
2. spawn: the backend's :meth:`Backend._spawn` starts the process (or re-attaches to it)
   and returns its :class:`Attempt`, or why it could not start (``startup_failed``, the
   reason redacted);
3. the session's escapee hunt (:mod:`planrun.sessions.escapees`) leads with the attempt's
   process, ``on_start`` is awaited, and the attempt is supervised until its ending is
   decided or its process exits (:meth:`Attempt.supervise`);
4. whatever happened, the attempt winds down shielded from cancellation
   (:meth:`Attempt.wind_down`: every process of it ended while its output is still logged),
   then its result is described;
5. the attempt and the watcher are closed, also when something raised. Cancellation then
   propagates as itself, and so does an exception from a callback: never wrapped in the
   group of the attempt's own nursery.

A backend supplies only what differs: how its process starts, and its :class:`Attempt`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import NoReturn

import trio

from planrun.core.outcomes import Outcome
from planrun.core.redact import Redactor
from planrun.sessions.base import (
    OnLine,
    OnQuestion,
    OnStart,
    ProcessInfo,
    SessionResult,
    SessionSpec,
)
from planrun.sessions.escapees import Hunt
from planrun.sessions.output import OutputWatcher


class Attempt(ABC):
    """One started attempt of a backend: what :meth:`Backend.run` drives to its result."""

    #: The session's escapee hunt (its token is in the process's environment).
    hunt: Hunt

    @abstractmethod
    def process(self) -> ProcessInfo:
        """The started process: the hunt's leader, and what ``on_start`` is told."""

    @abstractmethod
    async def supervise(self) -> None:
        """Run until the attempt's ending is decided or its process exits."""

    @abstractmethod
    async def wind_down(self) -> None:
        """End every process of the attempt, reap, drain the output; always called once,
        shielded, after :meth:`supervise` returned or raised (or ``on_start`` raised)."""

    @abstractmethod
    def result(self) -> SessionResult:
        """How the attempt ended, once it wound down."""

    def close(self) -> None:  # noqa: B027 - most attempts release everything in wind_down
        """Release what the attempt still holds; idempotent, also after an exception."""


class Backend(ABC):
    """The skeleton of a session backend (implements :class:`planrun.sessions.base.Session`).

    A subclass supplies :meth:`_spawn`; :meth:`run` is the same for every backend.
    """

    async def run(
        self,
        spec: SessionSpec,
        *,
        on_start: OnStart | None = None,
        on_line: OnLine | None = None,
        on_question: OnQuestion | None = None,
    ) -> SessionResult:
        """Run one attempt to its end; see the module docstring for the steps, and the
        backend's module docstring for how its outcome is decided."""
        watcher = _open_watcher(spec, on_line)
        if isinstance(watcher, SessionResult):
            return watcher
        try:
            attempt = await self._spawn(spec, watcher, on_question)
            if isinstance(attempt, str):
                return startup_failed(spec, attempt)
            try:
                return await _supervised(attempt, on_start)
            except BaseExceptionGroup as group:
                _reraise_plain(group)
            finally:
                attempt.close()
        finally:
            watcher.close()

    @abstractmethod
    async def _spawn(
        self, spec: SessionSpec, watcher: OutputWatcher, on_question: OnQuestion | None
    ) -> Attempt | str:
        """Start the attempt's process (or re-attach to it): its attempt, or why it could not
        start. If this raises, nothing it started is left running or open."""


async def _supervised(attempt: Attempt, on_start: OnStart | None) -> SessionResult:
    """Lead the hunt, tell ``on_start``, supervise; wind down always (shielded); the result."""
    process = attempt.process()
    attempt.hunt.lead(process.pid)
    try:
        if on_start is not None:
            await on_start(process)
        await attempt.supervise()
    finally:
        with trio.CancelScope(shield=True):
            await attempt.wind_down()
    return attempt.result()


def startup_failed(spec: SessionSpec, reason: str) -> SessionResult:
    return SessionResult(
        outcome=Outcome.STARTUP_FAILED, reason=Redactor(spec.secrets).redact(reason)
    )


def _open_watcher(spec: SessionSpec, on_line: OnLine | None) -> OutputWatcher | SessionResult:
    """The attempt's output watcher, or the startup failure to return if its log won't open."""
    try:
        return OutputWatcher(spec, clock=trio.current_time, on_line=on_line)
    except OSError as error:
        return startup_failed(
            spec, f"cannot open the log {spec.log_path}: {error.strerror or error}"
        )


def unwrapped(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    """The exception a caller should see instead of the internal nursery's ``group``.

    Cancelling ``run`` from outside cancels its internal tasks too: a group made only of
    ``Cancelled`` becomes its first ``Cancelled``. A group of one exception (``on_line``
    raised) becomes that exception. Anything else stays a group (None).
    """
    leaves: list[BaseException] = []
    stack: list[BaseException] = [group]
    while stack:
        exc = stack.pop()
        if isinstance(exc, BaseExceptionGroup):
            stack.extend(reversed(exc.exceptions))
        else:
            leaves.append(exc)
    if len(leaves) == 1 or (leaves and all(isinstance(e, trio.Cancelled) for e in leaves)):
        return leaves[0]
    return None


def _reraise_plain(group: BaseExceptionGroup[BaseException]) -> NoReturn:
    """Raise what a caller should see instead of an internal nursery's ``group``."""
    plain = unwrapped(group)
    if plain is None:
        raise group
    raise plain from None
