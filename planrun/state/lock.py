"""One writer per state folder: a lock the kernel releases, plus who holds it, in plain JSON.

The state folder itself is locked with ``flock(LOCK_EX | LOCK_NB)`` for as long as an
``apply`` runs. The kernel drops the lock when the holder's last descriptor closes, which
includes dying by SIGKILL, so there is never a stale lock and never a force-unlock. The
descriptor is close-on-exec and Python does not let children inherit it, so an agent that
outlives planrun cannot keep the lock alive. The lock is on the folder, not on a file in it,
because a file can be deleted by someone "removing a stale lock": a second process would then
lock a new file while the first still holds the old one, and treat the live run as dead.

``<state_dir>/lock.info`` says who holds it, for humans and ``planrun status``::

    {"pid": 1234, "host": "ci-7", "started_at": "2026-11-21T06:00:00Z",
     "argv": ["planrun", "apply", "plan.yaml"], "proc_start_time": 98765}

It is written atomically after the lock is taken and removed before it is released; a
holder killed with SIGKILL leaves it behind, which is why readers check that its process is
still the same one (pid plus start time) before believing it. A process that takes the lock
while lock.info names another live process on this host refuses it all the same: that
process holds the lock by other means (an older planrun locked a ``lock`` file in the folder).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import socket
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from planrun.atomic import ensure_private_dir, write_atomic
from planrun.errors import StateLockedError, StoreError
from planrun.sessions.procfs import STARTTIME, STATE, stat_field, stat_fields

INFO_NAME = "lock.info"
_ARGV_SHOWN = 160  # characters of the holder's command line quoted in messages
#: Seconds to wait for the lock of a holder that died, or that only replays a dead run's
#: journal (see _after_a_dead_holder).
DEAD_HOLDER_WAIT = 1.0
#: The last argv word of a short holder: a read-only command replaying a dead run's journal
#: (planrun.state.queries.catch_up). An apply waits for it instead of failing.
REPLAYING = "(replaying the journal)"


class StateLock:
    """Holds the state folder's lock until :meth:`release` (or process death)."""

    def __init__(self, state_dir: Path, fd: int) -> None:
        """Use :meth:`acquire`; this only wraps a descriptor that already holds the lock."""
        self.state_dir = state_dir
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, state_dir: Path, argv: Sequence[str] | None = None) -> StateLock:
        """Take the state folder's lock without waiting, creating the folder (0700) if needed.

        Raises StateLockedError (naming the holder) when another process holds it, and
        StoreError when the folder cannot be created or locked.
        ``argv`` (default ``sys.argv``) is recorded in lock.info.
        """
        try:
            ensure_private_dir(state_dir)
            fd = _lock_folder(state_dir)
        except OSError as e:
            raise StoreError(
                str(state_dir),
                f"cannot create or lock the state folder ({e.strerror or e})",
                "check that the state folder is a folder you own and can write, on a local"
                " filesystem",
            ) from e
        if fd is None:
            fd = _after_a_dead_holder(state_dir)
        try:
            _refuse_another_live_holder(state_dir)
            write_atomic(state_dir / INFO_NAME, _info_json(argv))
        except OSError as e:  # locking needs only read access to the folder; this, write
            os.close(fd)  # closing the descriptor releases the lock
            raise StoreError(
                str(state_dir / INFO_NAME),
                f"cannot write it ({e.strerror or e})",
                "check that the state folder is a folder you own and can write",
            ) from e
        except BaseException:
            os.close(fd)
            raise
        return cls(state_dir, fd)

    @property
    def held(self) -> bool:
        """True until :meth:`release`."""
        return self._fd is not None

    def release(self) -> None:
        """Remove lock.info, then drop the lock. Calling it again does nothing."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            (self.state_dir / INFO_NAME).unlink(missing_ok=True)
        finally:
            os.close(fd)

    def __enter__(self) -> StateLock:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def read_holder(state_dir: Path) -> dict[str, Any] | None:
    """Who holds the state folder's lock, as recorded in lock.info, or None if no one does.

    For ``planrun status``; never takes the lock. lock.info left by a holder that died is
    recognised (its pid is gone or belongs to another process) and ignored. A holder on
    another host cannot be checked and is reported as recorded.
    """
    info = _read_info(state_dir)
    if info is None or _holder_is_gone(info):
        return None
    return info


def describe_holder(info: dict[str, Any] | None) -> str:
    """A one-line account of a lock.info record, e.g. ``pid 1234 on ci-7 since ...``."""
    if info is None:
        return "holder unknown: lock.info is missing or unreadable"
    text = (
        f"pid {info.get('pid', '?')} on {info.get('host', '?')} since {info.get('started_at', '?')}"
    )
    argv = info.get("argv")
    if isinstance(argv, list) and argv:
        command = shlex.join(str(a) for a in argv)
        if len(command) > _ARGV_SHOWN:
            command = command[: _ARGV_SHOWN - 1] + "…"
        text += f": {command}"
    if _holder_is_gone(info):
        text += " (that process has exited: lock.info is stale and a new holder is starting)"
    return text


# ---------------------------------------------------------------- internals


def _after_a_dead_holder(state_dir: Path) -> int:
    """The lock once a holder that died lets go of it, or StateLockedError.

    The kernel drops a dead process's flock when its last reference to the file is put,
    which for an exiting process may happen a moment after it could be reaped (a
    deferred fput): an apply started right after a kill -9 would find the lock held by
    no one alive. Likewise ``planrun status`` right after a crash holds it for the moment
    it replays the dead run's journal (:data:`REPLAYING`). While lock.info names such a
    holder, a process that is gone, or no one yet, try again for up to
    :data:`DEAD_HOLDER_WAIT` seconds; any other live holder fails at once.
    """
    deadline = time.monotonic() + DEAD_HOLDER_WAIT
    while True:
        info = _read_info(state_dir)
        passing = info is None or _holder_is_gone(info) or _replaying(info)
        if not passing or time.monotonic() > deadline:
            raise StateLockedError(str(state_dir), _describe_locker(state_dir, info))
        time.sleep(0.01)  # the kernel's release has no event to wait for
        fd = _lock_folder(state_dir)
        if fd is not None:
            return fd


def _refuse_another_live_holder(state_dir: Path) -> None:
    """StateLockedError if lock.info names a live process on this host other than this one.

    Such a process released nothing (it removes lock.info first) and did not die: it holds
    the state folder by a lock this one cannot see, an older planrun's ``lock`` file.
    """
    info = _read_info(state_dir)
    if info is None or info.get("host") != socket.gethostname() or info.get("pid") == os.getpid():
        return
    if not _holder_is_gone(info):
        raise StateLockedError(str(state_dir), describe_holder(info))


def _replaying(info: dict[str, Any]) -> bool:
    argv = info.get("argv")
    return isinstance(argv, list) and bool(argv) and argv[-1] == REPLAYING


def _lock_folder(state_dir: Path) -> int | None:
    """A descriptor holding an exclusive flock on the folder ``state_dir``, or None if it is
    held. The folder cannot be unlinked while it holds files, unlike a lock file."""
    fd = os.open(state_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def _describe_locker(state_dir: Path, info: dict[str, Any] | None) -> str:
    """describe_holder, or when lock.info is gone the pid the kernel lists as holding the
    folder's lock (``/proc/locks``)."""
    if info is not None:
        return describe_holder(info)
    pid = _flock_holder_pid(state_dir)
    if pid is None:
        return describe_holder(None)
    where = f"pid {pid} on {socket.gethostname()}"
    return f"{where} (lock.info is missing or unreadable; pid from /proc/locks)"


def _flock_holder_pid(state_dir: Path) -> int | None:
    """The pid /proc/locks names for the flock on ``state_dir``, or None (not Linux, gone)."""
    try:
        st = os.stat(state_dir)
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return None
    device = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    for line in lines:
        fields = line.split()  # "1: FLOCK ADVISORY WRITE 1234 08:01:5678 0 EOF"
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == device:
            with contextlib.suppress(ValueError):
                return int(fields[4])
    return None


def _info_json(argv: Sequence[str] | None) -> bytes:
    info = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "argv": list(sys.argv if argv is None else argv),
        "proc_start_time": _proc_start_time(os.getpid()),
    }
    return (json.dumps(info, indent=1) + "\n").encode()


def _read_info(state_dir: Path) -> dict[str, Any] | None:
    try:
        info = json.loads((state_dir / INFO_NAME).read_bytes())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def _holder_is_gone(info: dict[str, Any]) -> bool:
    """True when lock.info names a process on this host that no longer exists."""
    pid = info.get("pid")
    if info.get("host") != socket.gethostname() or not isinstance(pid, int) or pid <= 0:
        return False
    started = _proc_start_time(pid)
    if started is None:
        return True
    recorded = info.get("proc_start_time")
    return isinstance(recorded, int) and recorded != started


def _proc_start_time(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat (clock ticks after boot), or None if pid is not alive."""
    fields = stat_fields(pid)
    if fields is None or stat_field(fields, STATE) in ("Z", "X"):
        return None
    with contextlib.suppress(IndexError, ValueError):
        return int(stat_field(fields, STARTTIME))
    return None
