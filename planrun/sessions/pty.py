"""The ``pty`` backend: one attempt as a child process on a pseudo-terminal (pexpect's pty layer).

The child is started with ``ptyprocess`` (the pty half of pexpect: ``pexpect.spawn`` adds a
synchronous expect/read layer that planrun does not use and cannot pass extra descriptors). It
runs ``spec.argv`` directly (never through a shell) in ``spec.cwd`` with exactly ``spec.env``,
on a terminal of ``spec.terminal_size``, as the leader of a new session (so pgid == pid). The
terminal's echo is off, so typed text never comes back as output.

Output. The pty master is read without blocking trio (``wait_readable`` + ``os.read``) and
drained continuously into an :class:`~planrun.sessions.output.OutputWatcher`, so a child printing
megabytes never blocks and memory stays bounded. Newline translation: the terminal's ``ONLCR``
output flag is cleared before the command starts, so a ``\\n`` written by the child reaches the
log as ``\\n``, byte for byte what it wrote (as with the subprocess backend). Full-screen programs
switch ``OPOST`` off anyway and write ``\\r\\n`` themselves, which then appears as written.

Input. ``spec.stdin_text`` (prompt_via: stdin) is written to a *pipe* on the child's stdin,
then the pipe is closed; stdout and stderr stay on the terminal, which remains the controlling
terminal (``/dev/tty``), where questions are asked and answered. A pipe rather than typing the
text followed by ctrl-D because a terminal in canonical mode silently drops every character of a
line beyond 4095 bytes, and CLIs that take a prompt on stdin only read it when stdin is not a
terminal. ``spec.type_text`` (prompt_via: type) is typed as soon as the child has started, then
Enter; see :func:`keystrokes` for how text becomes keys (single line: the text then ``\\r``;
several lines: one bracketed paste then ``\\r``).

How the outcome is decided is the subprocess backend's rule (first that applies): a failure
or success pattern seen in the output, or a question that stands; the timeout
(``timed_out``) or idle timeout (``stalled``); the exit status against
``success_exit_codes``. The terminal adds:

- an answer's ``expect`` matched (:class:`~planrun.sessions.output.AnswerDue`): its ``send`` is
  typed (each ``\\n`` pressed as Enter; nothing else is added). An automatic answer wins over
  ``input_pattern`` for the same line;
- a cursor-position query (``ESC[6n``, which TUIs send and then wait for) is answered
  ``ESC[1;1R`` (planrun keeps no screen; tmux, a real terminal, answers it itself);
- ``input_pattern`` matched and the match stands as a question (the child still runs and
  printed nothing more for ``question_quiet`` seconds: :mod:`planrun.sessions.questions`;
  the child's exit wins over a match that does not stand yet): with ``on_question``, it is
  awaited (the caller parks the task) and the text it returns is typed, then Enter;
  ``None`` ends the attempt as ``needs_input``. Without ``on_question`` the attempt ends as
  ``needs_input`` as soon as the question stands. While a question waits for its answer,
  ``timeout`` and ``idle_timeout`` stand still (the silence is the person's, not the
  agent's). Repeats of the prompt while it waits (a redraw) are not asked again.

Whatever ends the attempt, the whole group gets SIGTERM, ``kill_grace`` seconds, SIGKILL (also
the processes left behind by a leader that exited), while output is still logged; the leader is
reaped without blocking (a pidfd, or polling where there is none), within a bound; what remains
of the output is drained for at most ``drain_timeout`` seconds; the pty is always closed.
Cancellation runs the same clean-up shielded, then ``Cancelled`` propagates. Only failures to
start are returned as data (``startup_failed``); exceptions from ``on_start``, ``on_line`` and
``on_question`` propagate as themselves after the clean-up.

What this module owns is how a pty child starts, is reaped and is closed; how its attempt
runs is the :class:`~planrun.sessions.terminal_attempt.TerminalAttempt` it shares with the tmux
backend, and the rules are :class:`~planrun.sessions.terminal.TerminalSupervisor`'s.
"""

from __future__ import annotations

import contextlib
import os
import signal
import termios
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ptyprocess
import trio

from planrun.sessions.base import OnQuestion, ProcessInfo, SessionSpec
from planrun.sessions.common import REAP_TIMEOUT
from planrun.sessions.escapees import Hunt
from planrun.sessions.output import OutputWatcher
from planrun.sessions.process import kill_group, proc_start_time, wait_process_exit
from planrun.sessions.skeleton import Backend, StartFailed
from planrun.sessions.terminal import (
    CURSOR_REPLY,
    PASTE_END,
    PASTE_START,
    CursorQueries,
    TerminalSupervisor,
    keystrokes,
)
from planrun.sessions.terminal_attempt import (
    TerminalAttempt,
    close_fd,
    resolve_command,
    write_all,
)

__all__ = ["PASTE_END", "PASTE_START", "PtySession", "keystrokes"]


class PtySession(Backend):
    """The pseudo-terminal backend (a :class:`~planrun.sessions.skeleton.Backend`)."""

    async def _spawn(
        self, spec: SessionSpec, watcher: OutputWatcher, on_question: OnQuestion | None
    ) -> _PtyAttempt:
        hunt = Hunt()
        child = _start(spec, hunt)
        supervisor = TerminalSupervisor(spec, watcher, on_question)
        return _PtyAttempt(child, supervisor, hunt, self._drain_timeout, self._read_size)


@dataclass
class _Child:
    """A started pty child: the ptyprocess object, the master fd, the stdin pipe (if any)."""

    process: Any  # ptyprocess.PtyProcess (untyped)
    fd: int
    pid: int
    stdin_fd: int | None


def _child_setup(cwd: str, stdin_fd: int | None) -> Callable[[], None]:
    """What the child does between fork and exec (errors are reported to the parent).

    Changes to ``cwd``, puts the stdin pipe on fd 0, clears ``ONLCR`` on the terminal and
    restores the default SIGPIPE/SIGXFSZ dispositions that Python ignores.
    """

    def setup() -> None:
        os.chdir(cwd)
        if stdin_fd is not None:
            os.dup2(stdin_fd, 0)
            os.close(stdin_fd)
        attrs = termios.tcgetattr(1)
        attrs[1] &= ~termios.ONLCR
        termios.tcsetattr(1, termios.TCSANOW, attrs)
        for number in (signal.SIGPIPE, signal.SIGXFSZ):
            signal.signal(number, signal.SIG_DFL)

    return setup


def _start(spec: SessionSpec, hunt: Hunt) -> _Child:
    """Start the child on a new pty; raise :class:`StartFailed` if it cannot start."""
    command = resolve_command(spec.argv, spec.env, spec.cwd)
    stdin_read, stdin_write = os.pipe() if spec.stdin_text is not None else (None, None)
    try:
        process = ptyprocess.PtyProcess.spawn(
            [command, *spec.argv[1:]],
            env=hunt.env(spec.env),
            echo=False,
            dimensions=spec.terminal_size,
            preexec_fn=_child_setup(os.path.abspath(spec.cwd), stdin_read),
            pass_fds=() if stdin_read is None else (stdin_read,),
        )
    except Exception as error:  # ptyprocess re-raises the child's exec/setup error
        if stdin_write is not None:
            os.close(stdin_write)
        code = getattr(error, "errno", None)
        problem = os.strerror(code) if code else str(error)
        raise StartFailed(f"cannot start {spec.argv[0]!r}: {problem}") from None
    finally:
        if stdin_read is not None:
            os.close(stdin_read)
    os.set_blocking(process.fd, False)
    if stdin_write is not None:
        os.set_blocking(stdin_write, False)
    return _Child(process=process, fd=process.fd, pid=process.pid, stdin_fd=stdin_write)


class _PtyAttempt(TerminalAttempt):
    """One attempt on a pty: the child, its reaping, the pty's close."""

    def __init__(
        self,
        child: _Child,
        supervisor: TerminalSupervisor,
        hunt: Hunt,
        drain_timeout: float,
        read_size: int,
    ) -> None:
        super().__init__(supervisor, hunt, drain_timeout=drain_timeout, read_size=read_size)
        self._child = child
        self._output = child.fd
        self._stdin = child.stdin_fd
        self._queries = CursorQueries()

    @property
    def pid(self) -> int:
        return self._child.pid

    def process(self) -> ProcessInfo:
        return ProcessInfo(pid=self.pid, pgid=self.pid, start_time=proc_start_time(self.pid))

    async def _end_processes(self, pumping: bool) -> None:
        self._kill = await kill_group(self.pid, self.spec.kill_grace)
        if self._status is None:
            with trio.move_on_after(REAP_TIMEOUT):
                await wait_process_exit(self.pid)
            self._reap()
        # an escapee may hold the terminal open: end it before waiting for EOF
        await self.hunt.end(self.spec.kill_grace)

    async def _release(self) -> None:
        self._close()
        # the group's dead once ptyprocess took the leader's status
        self.hunt.close(self.pid if self._status is not None else None)

    def _reap(self) -> None:
        """Collect the exit status if the leader has exited (never blocks)."""
        process = self._child.process
        try:
            if process.isalive():
                return
        except ptyprocess.PtyProcessError:
            return
        self._status = (process.exitstatus, process.signalstatus)

    def _close(self) -> None:
        """Close the pty (and the stdin pipe); pexpect's own close must not sleep or block."""
        close_fd(self._stdin)
        self._stdin = None
        process = self._child.process
        trio.lowlevel.notify_closing(self._child.fd)
        process.delayafterclose = 0.0
        process.delayafterterminate = 0.0
        with contextlib.suppress(ptyprocess.PtyProcessError):
            process.close(force=True)  # raises for an unkillable leader, after closing the fd

    def _received(self, data: bytes) -> None:
        for _ in range(self._queries.count(data)):
            self._sup.type(CURSOR_REPLY)  # a terminal answers; tmux does it itself
        super()._received(data)

    async def _wait_exit(self) -> None:
        await wait_process_exit(self.pid)
        self._reap()

    async def _type(self, keys: bytes) -> None:
        await write_all(self._child.fd, keys)
