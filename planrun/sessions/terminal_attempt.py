"""What a pty attempt and a tmux attempt do the same way: :class:`TerminalAttempt`.

Both read the terminal's output from a non-blocking descriptor (the pty master; the FIFO that
tmux's ``pipe-pane`` writes), feed ``stdin_text`` through a descriptor that is then closed
(a pipe; a FIFO), type ``type_text`` once the command runs, and leave the ending, the typing
and the questions to a :class:`~planrun.sessions.terminal.TerminalSupervisor`. A backend
supplies how keys are typed, how the leader's exit is noticed, and what is greeted at start.

Also here, for both: :func:`resolve_command` (find the command as ``execvpe`` would) and the
descriptor helpers :func:`write_all` and :func:`close_fd`.
"""

from __future__ import annotations

import errno
import os
from abc import abstractmethod
from collections.abc import Mapping
from pathlib import Path

import trio

from planrun.sessions.common import Ending
from planrun.sessions.escapees import Hunt
from planrun.sessions.idle import readable
from planrun.sessions.output import Event
from planrun.sessions.process import running
from planrun.sessions.skeleton import Attempt, StartFailed
from planrun.sessions.terminal import TerminalSupervisor, keystrokes


class TerminalAttempt(Attempt):
    """An :class:`~planrun.sessions.skeleton.Attempt` on a terminal (pty and tmux backends).

    A subclass sets :attr:`_output` (and :attr:`_stdin` when there is ``stdin_text``) and
    supplies :meth:`_type`, :meth:`_wait_exit`, and the wind-down's hooks.
    """

    def __init__(
        self, supervisor: TerminalSupervisor, hunt: Hunt, *, drain_timeout: float, read_size: int
    ) -> None:
        spec, watcher = supervisor.spec, supervisor.watcher
        super().__init__(spec, watcher, hunt, drain_timeout=drain_timeout, read_size=read_size)
        self._sup = supervisor
        self._output: int | None = None  # the terminal's output, read without blocking
        self._stdin: int | None = None  # where stdin_text is written, then closed

    async def supervise(self) -> None:
        """Run until an ending is decided or the leader exits."""
        pid = self.pid
        assert pid is not None
        try:
            async with trio.open_nursery() as nursery:
                self._sup.start(nursery, self._type, self._pending, lambda: running(pid))
                self._begin(nursery)
                nursery.start_soon(self._pump)
                nursery.start_soon(self._watch_exit)
                await self._sup.end.wait()
                nursery.cancel_scope.cancel()
        finally:
            self._sup.stop()  # the attempt is ending: nothing more is typed or asked

    def _begin(self, nursery: trio.Nursery) -> None:
        """Give the command its input: ``stdin_text`` (then end-of-file), ``type_text``."""
        if self._stdin is not None and self.spec.stdin_text is not None:
            nursery.start_soon(self._feed_stdin, self.spec.stdin_text)
        if self.spec.type_text is not None:
            self._sup.type(keystrokes(self.spec.type_text, submit=True))

    @abstractmethod
    async def _type(self, keys: bytes) -> None:
        """Type ``keys`` into the terminal."""

    @abstractmethod
    async def _wait_exit(self) -> None:
        """Return once the leader has exited (recording its status if it can)."""

    async def _watch_exit(self) -> None:
        await self._wait_exit()
        self._exited = True
        self._sup.end.set()

    async def _feed_stdin(self, text: str) -> None:
        """Write ``text`` to stdin, then close it (end-of-file); a command that quit is fine."""
        fd = self._stdin
        assert fd is not None
        try:
            await write_all(fd, text.encode("utf-8", errors="replace"))
        finally:
            close_fd(fd)
            self._stdin = None

    def _pending(self) -> bool:
        """Output (or its end) is ready to be read."""
        return not self._eof.is_set() and readable(self._output)

    async def _read(self) -> bytes:
        """The next output; empty at its end (EIO from a pty once every slave is closed)."""
        fd = self._output
        assert fd is not None
        while True:
            try:
                return os.read(fd, self._read_size)
            except BlockingIOError:
                await trio.lowlevel.wait_readable(fd)
            except OSError as error:
                if error.errno != errno.EIO:
                    raise
                return b""

    def _handle(self, events: list[Event]) -> None:
        self._sup.handle(events)

    def _decided(self) -> Ending | None:
        return self._sup.ending

    def _exit_note(self, failed: bool) -> list[str]:
        return self._sup.exit_note(failed)


def resolve_command(argv: tuple[str, ...], env: Mapping[str, str], cwd: Path) -> str:
    """The absolute path of ``argv[0]``, found the way ``execvpe`` would with ``env``'s PATH.

    A name with a ``/`` is taken relative to ``cwd``. Raises :class:`StartFailed` with the
    reason (``cannot start 'x': ...``, worded like the subprocess backend's) when it cannot
    start: empty command, missing working folder, NUL bytes, not found, not executable.
    """
    if not argv:
        raise StartFailed("cannot start an empty command")
    command = argv[0]
    if not cwd.is_dir():
        problem = os.strerror(errno.ENOTDIR if cwd.exists() else errno.ENOENT)
        raise StartFailed(f"cannot start {command!r}: working folder {cwd}: {problem}")
    texts = [*argv, *env.keys(), *env.values()]
    if any("\0" in text for text in texts) or any("=" in key or not key for key in env):
        raise StartFailed(f"cannot start {command!r}: NUL byte or bad name in argv or env")
    if "/" in command:
        candidates = [os.path.join(cwd, command)]
    else:
        search = env.get("PATH", os.defpath).split(os.pathsep)
        candidates = [os.path.join(cwd, d or ".", command) for d in search]
    found = [path for path in candidates if os.path.isfile(path)]
    for path in found:
        if os.access(path, os.X_OK):
            return os.path.abspath(path)
    problem = os.strerror(errno.EACCES if found else errno.ENOENT)
    raise StartFailed(f"cannot start {command!r}: {problem}")


async def write_all(fd: int, data: bytes) -> bool:
    """Write ``data`` to the non-blocking ``fd``, waiting while it is full; False if it broke.

    A reader that went away (EPIPE, or EIO on a pty whose child is gone) is not an error.
    """
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            await trio.lowlevel.wait_writable(fd)
        except OSError as error:
            if error.errno in (errno.EPIPE, errno.EIO, errno.EBADF):
                return False
            raise
    return True


def close_fd(fd: int | None) -> None:
    """Close ``fd`` (if any) after telling trio, so that no task waits on a reused number."""
    if fd is None:
        return
    trio.lowlevel.notify_closing(fd)
    os.close(fd)
