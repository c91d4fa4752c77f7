"""A child process started straight from the event loop, with one pipe for its output.

Why not :func:`trio.lowlevel.open_process`: trio starts every process from a worker
thread, in case ``fork`` is slow. CPython's :class:`subprocess.Popen` uses ``vfork`` on
Linux (no ``preexec_fn``, no user or group change), so the parent is paused only until the
child has called ``exec``: a fraction of a millisecond, less than the thread round trip
it would save (asyncio starts its subprocesses on the loop thread for the same reason).
With thousands of short tasks, that round trip was one of the larger costs of a task.

A program named without a slash is looked up in the child's ``PATH`` once per run (per
name and ``PATH``), not at every start: :mod:`subprocess` would otherwise ask
``os.get_exec_path`` and build every candidate path again in the event loop for each task,
and the child would try each ``PATH`` folder in turn. The process still sees its name as
written (``argv[0]``); only where it is found is remembered.

Waiting uses a pidfd (Linux 5.3+), polled by trio like any file descriptor; where
``pidfd_open`` is refused, a worker thread waits with ``waitid(WNOWAIT)`` instead, so the
child is still reaped only here.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import trio

from planrun.sessions.process import start_time_between


class Child:
    """One started process: its pid, the read end of its output pipe, and its stdin.

    ``stdout`` carries stdout and stderr together. ``stdin`` is a pipe when the child was
    given text to read, else None (the child's stdin is ``/dev/null``). Call :meth:`wait`
    (or :meth:`poll`) until it has a return code, then :meth:`aclose`.
    """

    def __init__(
        self,
        popen: subprocess.Popen[bytes],
        stdout: trio.lowlevel.FdStream,
        stdin: trio.lowlevel.FdStream | None,
    ) -> None:
        self._popen = popen
        self.pid = popen.pid
        self.stdout = stdout
        self.stdin = stdin
        #: Start time in clock ticks since boot, as /proc/<pid>/stat field 22 (0: unknown).
        self.start_time = 0
        self._pidfd: int | None
        try:
            self._pidfd = os.pidfd_open(self.pid)
        except (OSError, AttributeError):
            self._pidfd = None

    @classmethod
    def start(
        cls,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        with_stdin: bool,
    ) -> Child:
        """Start ``argv`` in a new session (it leads its own process group).

        Raises OSError (not found, not executable, bad working folder; ``filename`` tells
        which) or ValueError (a NUL byte in an argument or the environment).
        """
        out_read, out_write = os.pipe()
        in_read, in_write = os.pipe() if with_stdin else (None, None)
        try:
            before = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
            popen = _popen(
                argv, cwd, env, in_read if in_read is not None else _devnull(), out_write
            )
        except BaseException:
            for fd in (out_read, in_write):
                if fd is not None:
                    os.close(fd)
            raise
        finally:
            for fd in (out_write, in_read):
                if fd is not None:
                    os.close(fd)
        after = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
        stdin = trio.lowlevel.FdStream(in_write) if in_write is not None else None
        child = cls(popen, trio.lowlevel.FdStream(out_read), stdin)
        child.start_time = start_time_between(child.pid, before, after)
        return child

    @property
    def returncode(self) -> int | None:
        """As :attr:`subprocess.Popen.returncode`: negative for a signal, None if running."""
        return self._popen.returncode

    def poll(self) -> int | None:
        """Reap the child if it has exited, without waiting."""
        code = self._popen.poll()
        if code is not None:
            self._close_pidfd()
        return code

    async def wait(self) -> int:
        """Wait for the child to exit and reap it; returns its return code."""
        if self._popen.returncode is None:
            if self._pidfd is not None:
                with contextlib.suppress(trio.ClosedResourceError):  # poll() reaped it
                    await trio.lowlevel.wait_readable(self._pidfd)
            else:
                await trio.to_thread.run_sync(_wait_exited, self.pid, abandon_on_cancel=True)
        code = self._popen.wait()  # the child has exited: this does not block
        self._close_pidfd()
        return code

    async def aclose(self) -> None:
        """Close the pipes and the pidfd (the child should have been reaped)."""
        await self.stdout.aclose()
        if self.stdin is not None:
            await self.stdin.aclose()
        self._close_pidfd()

    def _close_pidfd(self) -> None:
        if self._pidfd is not None:
            fd, self._pidfd = self._pidfd, None
            trio.lowlevel.notify_closing(fd)
            os.close(fd)


def _popen(
    argv: Sequence[str], cwd: Path, env: Mapping[str, str], stdin: int, out: int
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a new session, its program found through :func:`_found`."""
    path = env.get("PATH", os.defpath)
    program = _found(argv[0], path) if argv else None

    def start(executable: str | None) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            list(argv),
            executable=executable,
            cwd=cwd,
            env=dict(env),
            stdin=stdin,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )

    try:
        return start(program)
    except FileNotFoundError:
        if program is None:
            raise
        _programs.clear()  # it was there when looked up: look again, as exec would
        return start(None)


def _found(name: str, path: str) -> str | None:
    """Where ``name`` is in ``path``, as exec would find it; None for a name with a slash or
    one not found (then the start reports it as it always did).

    Remembered per name and ``PATH``, with the folders before the one it was found in: a
    program that appears in one of those later (a task made a virtualenv that ``PATH``
    names first) is found as exec would find it, at the cost of one ``access`` per such
    folder instead of subprocess's whole search (``access``, not ``os.path.exists``:
    half the cost, no exception raised for each folder that lacks it)."""
    if not name or "/" in name:
        return None
    known = _programs.get((name, path))
    if known is not None and not any(os.access(p, os.F_OK) for p in known[1]):
        return known[0]
    found = shutil.which(name, path=path)
    if found is not None:
        folder = os.path.dirname(found)
        folders = path.split(os.pathsep)
        earlier = folders[: folders.index(folder)] if folder in folders else folders
        if len(_programs) >= _PROGRAMS_KEPT:
            _programs.clear()
        _programs[(name, path)] = (found, tuple(os.path.join(d or ".", name) for d in earlier))
    return found


_programs: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {}
_PROGRAMS_KEPT = 256


@functools.cache
def _devnull() -> int:
    """One descriptor of ``/dev/null`` for every child's stdin (close-on-exec here),
    instead of an open and a close per child."""
    return os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)


def _wait_exited(pid: int) -> None:
    """Block until ``pid`` has exited, leaving it to be reaped (``WNOWAIT``)."""
    with contextlib.suppress(ChildProcessError):
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
