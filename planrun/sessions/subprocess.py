"""The ``subprocess`` backend: one attempt as a child process with pipes (no terminal).

The child runs ``spec.argv`` directly (never through a shell) in a new session, so it leads
its own process group (pgid == pid). stdout and stderr share one pipe, drained continuously
into an :class:`~planrun.sessions.output.OutputWatcher`. stdin is ``spec.stdin_text``
(then closed) or ``/dev/null``. ``type_text`` and ``answers`` need a terminal and are ignored
here.

How the outcome is decided (the first that applies):

1. ``failure_pattern`` / ``success_pattern`` matched in the output: ``failed`` /
   ``succeeded``. This holds even when the child exited before planrun read that output.
   An ``input_pattern`` match is a question (``needs_input``, the question is the line) only
   once the child, still running, printed nothing more for ``question_quiet`` seconds
   (:mod:`planrun.sessions.questions`); its exit wins over a pending match, and a failing
   exit then names the question in its reason. stdin is ``/dev/null`` here: a CLI that asks
   usually reads end-of-file and quits, so its question shows as its exit status.
2. ``timeout`` passed: ``timed_out``; ``idle_timeout`` passed without output: ``stalled``
   (time planrun itself was stopped does not count: :mod:`planrun.sessions.idle`).
3. The child exited: ``succeeded`` if its exit code is in ``success_exit_codes``, else
   ``failed`` with reason ``exit code N`` or ``killed by signal SIGX``.

Whatever ends the attempt, the whole group then gets SIGTERM, ``kill_grace`` seconds, and
SIGKILL, while the output is still logged; this also ends processes left behind by a child
that exited. Then the session's escapees (descendants that left the group with ``setsid``,
:mod:`planrun.sessions.escapees`) are ended the same way, before the rest of the output is
read, since one may hold the pipe open; the pipe is drained for at most ``drain_timeout``
seconds after that, never until EOF.
On cancellation the same clean-up runs shielded, then ``Cancelled`` propagates. Only
failures to start are returned as data (``startup_failed``, also when the log cannot be
opened); an exception raised by ``on_start`` or ``on_line`` propagates, as itself, after the
clean-up.
"""

from __future__ import annotations

from collections.abc import Callable

import trio

from planrun.core.outcomes import Outcome
from planrun.sessions.base import OnQuestion, ProcessInfo, SessionSpec
from planrun.sessions.child import Child
from planrun.sessions.common import REAP_TIMEOUT, Ending, Status, pattern_ending
from planrun.sessions.escapees import Hunt
from planrun.sessions.idle import IdleClock, readable
from planrun.sessions.output import (
    Event,
    InputRequested,
    OutputWatcher,
)
from planrun.sessions.process import group_alive, kill_group, running
from planrun.sessions.questions import Questions
from planrun.sessions.skeleton import Attempt, Backend, StartFailed


class SubprocessSession(Backend):
    """The pipe backend (a :class:`~planrun.sessions.skeleton.Backend`).

    Pipes cannot take a typed answer, so a question ends the attempt as needs_input and
    ``on_question`` is not used (the scheduler answers with a follow-up turn).
    """

    async def _spawn(
        self, spec: SessionSpec, watcher: OutputWatcher, on_question: OnQuestion | None
    ) -> _Attempt:
        hunt = Hunt()
        process = _start(spec, hunt)
        return _Attempt(spec, process, watcher, hunt, self._drain_timeout, self._read_size)


def _start(spec: SessionSpec, hunt: Hunt) -> Child:
    """Start the child in its own session; raise :class:`StartFailed` if it cannot start."""
    if not spec.argv:
        raise StartFailed("cannot start an empty command")
    try:
        env = hunt.env(spec.env)
        return Child.start(spec.argv, cwd=spec.cwd, env=env, with_stdin=spec.stdin_text is not None)
    except OSError as error:
        problem = error.strerror or str(error)
        if error.filename is not None and str(error.filename) == str(spec.cwd):
            problem = f"working folder {spec.cwd}: {problem}"
        raise StartFailed(f"cannot start {spec.argv[0]!r}: {problem}") from None
    except ValueError as error:  # e.g. a NUL byte in an argument or the environment
        raise StartFailed(f"cannot start {spec.argv[0]!r}: {error}") from None


class _Attempt(Attempt):
    """The state of one running attempt: decided ending, exit, end of output."""

    def __init__(
        self,
        spec: SessionSpec,
        process: Child,
        watcher: OutputWatcher,
        hunt: Hunt,
        drain_timeout: float,
        read_size: int,
    ) -> None:
        super().__init__(spec, watcher, hunt, drain_timeout=drain_timeout, read_size=read_size)
        self._process = process
        self._stdout = process.stdout
        self._ending: Ending | None = None
        self._waiting = trio.CancelScope()  # around the wait for the leader; an ending cancels it
        # Closures over the pipe and the pid, not over the attempt: an attempt that refers
        # to itself through its parts is freed by the cyclic collector only, with all it
        # holds (5 KB per attempt); without the cycle it is freed as it ends.
        self._output_pending = _pending_output(self._eof, self._stdout)
        pid = process.pid
        self._questions = Questions(spec, watcher, self._output_pending, lambda: running(pid))

    @property
    def pid(self) -> int:
        return self._process.pid

    def process(self) -> ProcessInfo:
        return ProcessInfo(pid=self.pid, pgid=self.pid, start_time=self._process.start_time)

    async def supervise(self) -> None:
        """Run until an ending is decided, the leader exits, or the timeout passes.

        When the leader exited and left nothing behind in its group, nothing can write to
        the pipe any more (but an escapee): the rest of the output is read here, so that
        the usual ending needs no second round in :meth:`wind_down`.
        """
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._pump)
            if self.spec.stdin_text is not None:
                nursery.start_soon(self._feed_stdin, self.spec.stdin_text)
            if self.spec.idle_timeout is not None:
                nursery.start_soon(self._watch_idle, self.spec.idle_timeout)
            if self.spec.input_pattern is not None:
                nursery.start_soon(self._watch_questions)
            timeout = self.spec.timeout
            if timeout is not None:
                self._waiting.deadline = trio.current_time() + timeout
            with self._waiting:
                self._status = _status(await self._process.wait())
                self._exited = True
                if not group_alive(self._process.pid):
                    await self.hunt.end(self.spec.kill_grace)
                    await self._drain()
            if self._ending is None and not self._exited:
                self._decide(Ending(Outcome.TIMED_OUT, f"timed out after {timeout:g}s"))
            nursery.cancel_scope.cancel()

    async def _end_processes(self, pumping: bool) -> None:
        self._kill = await kill_group(self._process.pid, self.spec.kill_grace)
        await self.hunt.end(self.spec.kill_grace)  # before the drain: one may hold the pipe
        if self._status is None:
            with trio.move_on_after(REAP_TIMEOUT):
                self._status = _status(await self._process.wait())

    async def _release(self) -> None:
        await self._process.aclose()
        # the group's dead once Popen took the leader's status
        self.hunt.close(self.pid if self._status is not None else None)

    def _decide(self, ending: Ending) -> None:
        """Record the first ending; later ones are ignored."""
        if self._ending is None:
            self._ending = ending
        self._waiting.cancel()

    def _handle(self, events: list[Event]) -> None:
        for event in events:
            ending = pattern_ending(event)
            if ending is not None:
                self._decide(ending)
            elif isinstance(event, InputRequested):
                self._questions.note(event.line)  # a question once it stands
            # AnswerDue needs a terminal to type into: not for this backend.

    async def _watch_questions(self) -> None:
        """Decide ``needs_input`` once a match stands as a question (the process waits)."""
        line = await self._questions.asked()
        self._decide(Ending(Outcome.NEEDS_INPUT, f"waiting for input: {line}", question=line))

    async def _read(self) -> bytes:
        return await self._stdout.receive_some(self._read_size)

    async def _feed_stdin(self, text: str) -> None:
        """Write ``text`` to the child's stdin, then close it; a child that quit is fine."""
        stdin = self._process.stdin
        assert stdin is not None
        try:
            await stdin.send_all(text.encode("utf-8"))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            with trio.CancelScope(shield=True):
                await stdin.aclose()

    async def _watch_idle(self, idle_timeout: float) -> None:
        """Decide ``stalled`` once no output arrived for ``idle_timeout`` seconds (of
        planrun's own time: :mod:`planrun.sessions.idle`)."""
        clock = IdleClock(idle_timeout, lambda: self.watcher.last_output_at, self._output_pending)
        await clock.wait_stalled()
        self._decide(Ending(Outcome.STALLED, f"no output for {idle_timeout:g}s"))

    def _decided(self) -> Ending | None:
        return self._ending

    def _exit_note(self, failed: bool) -> list[str]:
        unanswered = " (nothing answered it: the subprocess backend has no terminal)"
        return self._questions.exit_note(failed=failed, why_unanswered=unanswered)


def _pending_output(eof: trio.Event, stdout: trio.lowlevel.FdStream) -> Callable[[], bool]:
    """Whether output (or its end) is ready to be read from the pipe."""
    return lambda: not eof.is_set() and readable(stdout.fileno())


def _status(returncode: int) -> Status:
    """(exit code, signal) from a :attr:`subprocess.Popen.returncode` (negative: a signal)."""
    return (returncode, None) if returncode >= 0 else (None, -returncode)
