"""The one session skeleton: how every backend runs an attempt, from its log to its result.

:meth:`Backend.run` is :meth:`planrun.sessions.base.Session.run` for the subprocess, pty and
tmux backends, the same steps in the same order:

1. open the attempt's output watcher (its log); a log that does not open is
   ``startup_failed``, before anything starts;
2. spawn: the backend's :meth:`Backend._spawn` starts the process (or re-attaches to it)
   and returns its :class:`Attempt`; :class:`StartFailed` says why it could not start
   (``startup_failed``, the reason redacted);
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

import contextlib
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
from planrun.sessions.common import Ending, Status, signal_name
from planrun.sessions.escapees import Hunt
from planrun.sessions.output import Event, OutputWatcher
from planrun.sessions.process import GroupKill


class StartFailed(Exception):
    """Raised by a backend's spawn: the attempt could not start; the message says why.

    :meth:`Backend.run` returns it as data (``startup_failed``, the reason redacted).
    """


class Backend(ABC):
    """The skeleton of a session backend (implements :class:`planrun.sessions.base.Session`).

    ``drain_timeout`` bounds the reading of the output that remains once the attempt's
    processes are gone; ``read_size`` is the largest read of output. A subclass supplies
    :meth:`_spawn`; :meth:`run` is the same for every backend.
    """

    def __init__(self, *, drain_timeout: float = 2.0, read_size: int = 64 * 1024) -> None:
        self._drain_timeout = drain_timeout
        self._read_size = read_size

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
        with contextlib.closing(watcher):
            try:
                attempt = await self._spawn(spec, watcher, on_question)
            except StartFailed as error:
                return _startup_failed(spec, str(error))
            with contextlib.closing(attempt):
                try:
                    return await _supervised(attempt, on_start)
                except BaseExceptionGroup as group:
                    _reraise_plain(group)

    @abstractmethod
    async def _spawn(
        self, spec: SessionSpec, watcher: OutputWatcher, on_question: OnQuestion | None
    ) -> Attempt:
        """Start the attempt's process (or re-attach to it) and return its attempt; raise
        :class:`StartFailed` if it cannot start. If this raises, nothing it started is left
        running or open."""


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


class Attempt(ABC):
    """One started attempt of a backend: what :meth:`Backend.run` drives to its result.

    It owns the output pump, the order of the wind-down and the description of the result;
    a backend supplies how output is read (:meth:`_read`) and acted on (:meth:`_handle`), how
    its processes end (:meth:`_end_processes`), what it releases (:meth:`_release`), and the
    ending its output or a limit decided (:meth:`_decided`, :meth:`_exit_note`).
    """

    #: The reason of a result whose exit status never became known.
    _unknown_status = "the process could not be reaped"

    def __init__(
        self,
        spec: SessionSpec,
        watcher: OutputWatcher,
        hunt: Hunt,
        *,
        drain_timeout: float,
        read_size: int,
    ) -> None:
        self.spec = spec
        self.watcher = watcher
        self.hunt = hunt  # the session's escapee hunt (its token is in the environment)
        self._drain_timeout = drain_timeout
        self._read_size = read_size  # the largest read of output
        self._eof = trio.Event()  # the output reached its end
        self._pump_failed = False
        self._drained = False  # the output was read for drain_timeout after the exit
        self._exited = False  # the leader exited before the wind-down began
        self._status: Status | None = None  # the leader's end, once known
        self._kill: GroupKill | None = None  # what ending the group did

    @property
    @abstractmethod
    def pid(self) -> int | None:
        """The leader's pid (None: not known, nothing started)."""

    @abstractmethod
    def process(self) -> ProcessInfo:
        """The started process: the hunt's leader, and what ``on_start`` is told."""

    @abstractmethod
    async def supervise(self) -> None:
        """Run until the attempt's ending is decided or its process exits."""

    def result(self) -> SessionResult:
        """How the attempt ended, once it wound down: an ending the output or a limit
        decided, else the exit status against ``success_exit_codes``; with what else is
        worth reporting in its reason."""
        ending = self._decided()
        exit_code, signum = self._status or (None, None)
        if ending is not None:
            outcome, reason = ending.outcome, ending.reason
        elif signum is not None:
            outcome, reason = Outcome.FAILED, f"killed by signal {signal_name(signum)}"
        elif exit_code is None:
            outcome, reason = Outcome.FAILED, self._unknown_status
        elif exit_code in self.spec.success_exit_codes:
            outcome, reason = Outcome.SUCCEEDED, f"exit code {exit_code}"
        else:
            outcome, reason = Outcome.FAILED, f"exit code {exit_code}"
        notes = self._exit_note(outcome is Outcome.FAILED) if ending is None else []
        return SessionResult(
            outcome=outcome,
            reason=self.watcher.redact("; ".join([reason, *notes, *self._notes()])),
            exit_code=exit_code,
            signal=signum,
            pid=self.pid,
            tail=self.watcher.tail,
            output_bytes=self.watcher.output_bytes,
            question=ending.question if ending is not None else None,
        )

    @abstractmethod
    def _decided(self) -> Ending | None:
        """The ending the output or a limit decided (None: the exit status decides)."""

    @abstractmethod
    def _exit_note(self, failed: bool) -> list[str]:
        """The reason's note on a question still pending at the exit (failures only)."""

    def _notes(self) -> list[str]:
        """Remarks worth reporting besides the outcome."""
        notes: list[str] = []
        if self._exited and self._kill is not None and self._kill.terminated:
            notes.append("processes left in its group were killed")
        if self._kill is not None and not self._kill.gone:
            notes.append("some processes of its group survived SIGKILL")
        return notes + self.hunt.notes() + self.watcher.log_notes()

    def close(self) -> None:  # noqa: B027 - most attempts release everything in wind_down
        """Release what the attempt still holds; idempotent, also after an exception."""

    async def wind_down(self) -> None:
        """End every process of the attempt while its output is still logged, drain what
        remains (for at most ``drain_timeout``), release, close the log. Called once,
        shielded, after :meth:`supervise` returned or raised (or ``on_start`` raised)."""
        if self._eof.is_set() or self._pump_failed or self._drained:
            await self._end_processes(False)  # nothing left to read: no nursery to pump it
        else:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._pump)
                await self._end_processes(True)
                await self._drain()
                nursery.cancel_scope.cancel()
        await self._release()
        self._handle(self.watcher.close())

    @abstractmethod
    async def _end_processes(self, pumping: bool) -> None:
        """Kill the group (SIGTERM, grace, SIGKILL), reap, end the escapees; ``pumping``
        tells whether the output is being read meanwhile."""

    @abstractmethod
    async def _release(self) -> None:
        """Close what the processes used (pipes, terminal) once they are gone."""

    @abstractmethod
    async def _read(self) -> bytes:
        """The next output (waiting for it); empty at its end."""

    @abstractmethod
    def _handle(self, events: list[Event]) -> None:
        """Act on the watcher's events (an ending decided by the output, a question)."""

    def _received(self, data: bytes) -> None:
        """Give output to the watcher and act on what it saw."""
        self._handle(self.watcher.feed(data))

    async def _pump(self) -> None:
        """Read the output into the watcher until its end."""
        try:
            while data := await self._read():
                self._received(data)
                await trio.lowlevel.checkpoint()  # let the other tasks run during a flood
            self._eof.set()
        except trio.ClosedResourceError:
            return
        except Exception:
            self._pump_failed = True
            raise

    async def _drain(self) -> None:
        """Read what remains of the output, for at most ``drain_timeout``."""
        with trio.move_on_after(self._drain_timeout):
            await self._eof.wait()
        self._drained = True


def _startup_failed(spec: SessionSpec, reason: str) -> SessionResult:
    """An attempt that never started: ``startup_failed``, the reason redacted."""
    return SessionResult(
        outcome=Outcome.STARTUP_FAILED, reason=Redactor(spec.secrets).redact(reason)
    )


def _open_watcher(spec: SessionSpec, on_line: OnLine | None) -> OutputWatcher | SessionResult:
    """The attempt's output watcher, or the startup failure to return if its log won't open."""
    try:
        return OutputWatcher(spec, clock=trio.current_time, on_line=on_line)
    except OSError as error:
        return _startup_failed(
            spec, f"cannot open the log {spec.log_path}: {error.strerror or error}"
        )


def _unwrapped(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
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
    plain = _unwrapped(group)
    if plain is None:
        raise group
    raise plain from None
