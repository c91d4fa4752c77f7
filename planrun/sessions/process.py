"""Process and process-group helpers shared by every session backend (Linux, ``/proc``).

Every attempt runs in its own process group (the child calls ``setsid``, so its pgid is its
pid). Ending an attempt means ending the *group*: :func:`kill_group` sends SIGTERM to all of
it, waits for every member to go (a grandchild that ignores SIGTERM keeps the group alive
after the leader has exited), then sends SIGKILL. :func:`wait_process_exit` waits for any
process (a tmux pane's is not planrun's child) without reaping it.

What this does not cover: a descendant that calls ``setsid`` (or ``setpgid``) leaves the
group and no group signal reaches it. planrun handles the normal case with the per-attempt
group, and makes itself a child subreaper (:func:`become_subreaper`) so that such escapees
are re-parented to planrun rather than to init, where :mod:`planrun.sessions.escapees`
finds and ends them when their session ends.

Never signalled: planrun's own process group, and the groups 0 and 1 (``killpg(0)`` would
mean "my own group"). Signals to a group that is already gone are not errors.
"""

from __future__ import annotations

import ctypes
import os
import signal

import trio

from planrun.core.frozen import frozen
from planrun.sessions.procfs import PGRP, STARTTIME, STATE, stat_field, stat_fields

_PR_SET_CHILD_SUBREAPER = 36
#: Set in planrun's environment by :func:`become_subreaper` (to its pid): what planrun starts
#: itself inherits it (git, the tmux server), which tells those apart from sessions' orphans.
OWNER_VAR = "PLANRUN_OWNER"
#: First and largest pause between checks while waiting for a group to empty.
_POLL_FIRST, _POLL_MAX = 0.005, 0.05
#: How long to wait for SIGKILLed processes to disappear before reporting them.
KILL_WAIT = 2.0
#: Pause between checks for a process's exit where a pidfd is not available.
_EXIT_POLL = 0.02


@frozen
class GroupKill:
    """What :func:`kill_group` did."""

    terminated: bool  # SIGTERM was sent to a live group
    escalated: bool  # members outlived the grace period and got SIGKILL
    gone: bool  # no live member remained on return


def proc_start_time(pid: int) -> int:
    """Start time of ``pid`` in clock ticks since boot (stat field 22); 0 if it is gone."""
    fields = stat_fields(pid)
    return int(stat_field(fields, STARTTIME)) if fields else 0


#: Clock ticks per second of /proc's times (USER_HZ).
_TICKS = os.sysconf("SC_CLK_TCK")


def start_time_between(pid: int, before_ns: int, after_ns: int) -> int:
    """:func:`proc_start_time` of a child forked between two ``CLOCK_BOOTTIME`` readings.

    The kernel stamps a process at fork with the boot-time clock and ``/proc/<pid>/stat``
    shows that stamp in whole ticks (1/USER_HZ s). When both readings fall in the same
    tick, so did the fork: no need to read ``/proc``, whose ``stat`` blocks until the
    child's ``exec`` completes (about a millisecond the event loop would stand still,
    per task). Otherwise (a few percent of forks) it is read.
    """
    if 1_000_000_000 % _TICKS == 0:
        tick = 1_000_000_000 // _TICKS
        if before_ns // tick == after_ns // tick:
            return before_ns // tick
    return proc_start_time(pid)


def running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    fields = stat_fields(pid)
    return fields is not None and stat_field(fields, STATE) not in ("Z", "X")


async def wait_process_exit(pid: int) -> None:
    """Return once process ``pid`` has exited (it may still be an unreaped zombie).

    Uses a pidfd (readable when the process exits; any visible process, not only a child);
    where there is none, polls ``/proc`` every few milliseconds. Never reaps.
    """
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    except (OSError, AttributeError):
        while running(pid):  # noqa: ASYNC110 - no event exists for another process's exit
            await trio.sleep(_EXIT_POLL)
        return
    try:
        await trio.lowlevel.wait_readable(pidfd)
    finally:
        trio.lowlevel.notify_closing(pidfd)
        os.close(pidfd)


def is_same_process(pid: int, start_time: int) -> bool:
    """True if ``pid`` is still the process that started at ``start_time``.

    Used on resume before signalling a recorded process: a reused pid belongs to someone
    else. An unknown start time (0) never matches (fail closed).
    """
    return start_time != 0 and proc_start_time(pid) == start_time


def _may_signal(pgid: int) -> bool:
    return pgid > 1 and pgid != os.getpgrp()


def _live_members(pgid: int) -> bool:
    """True if a process other than a zombie is in group ``pgid`` (scans ``/proc``)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = stat_fields(int(entry))
        if (
            fields is not None
            and int(stat_field(fields, PGRP)) == pgid
            and stat_field(fields, STATE) not in ("Z", "X")
        ):
            return True
    return False


def group_alive(pgid: int) -> bool:
    """True while group ``pgid`` has a live member; zombies (dead, not yet reaped) don't count."""
    if pgid <= 0:
        return False
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, but not ours to signal: look for it all the same
    return _live_members(pgid)


def _signal_group(pgid: int, signum: int) -> bool:
    """Send ``signum`` to the group; False if it is gone or may not be signalled."""
    if not _may_signal(pgid):
        return False
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def kill_group_now(pgid: int) -> bool:
    """SIGKILL the group at once, without waiting; True if the signal was delivered.

    The "second Ctrl-C" path. A backend still inside :func:`kill_group` for the same group
    notices that it emptied and returns.
    """
    return _signal_group(pgid, signal.SIGKILL)


async def _wait_empty(pgid: int, timeout: float) -> bool:
    """Poll until group ``pgid`` has no live member or ``timeout`` passes; True if empty."""
    deadline = trio.current_time() + max(timeout, 0.0)
    pause = _POLL_FIRST
    while group_alive(pgid):
        remaining = deadline - trio.current_time()
        if remaining <= 0:
            return False
        await trio.sleep(min(pause, remaining))
        pause = min(pause * 2, _POLL_MAX)
    return True


async def kill_group(pgid: int, grace: float) -> GroupKill:
    """End every process in group ``pgid``: SIGTERM, up to ``grace`` seconds, then SIGKILL.

    Returns as soon as the group is empty (zombies count as gone: reaping the leader is the
    caller's job). After SIGKILL it waits up to :data:`KILL_WAIT` seconds for the members to
    disappear. Stopped members get SIGCONT so that they can act on SIGTERM. planrun's own
    group is never signalled (the call then does nothing and reports ``gone=False``).
    Cancellation is honoured at each pause; call it in a shielded scope when cleaning up.
    """
    if not _may_signal(pgid):
        return GroupKill(terminated=False, escalated=False, gone=False)
    if not group_alive(pgid):
        return GroupKill(terminated=False, escalated=False, gone=True)
    terminated = _signal_group(pgid, signal.SIGTERM)
    _signal_group(pgid, signal.SIGCONT)
    if await _wait_empty(pgid, grace):
        return GroupKill(terminated=terminated, escalated=False, gone=True)
    kill_group_now(pgid)
    gone = await _wait_empty(pgid, KILL_WAIT)
    return GroupKill(terminated=terminated, escalated=True, gone=gone)


def become_subreaper() -> bool:
    """Make this process a child subreaper (``prctl(PR_SET_CHILD_SUBREAPER)``).

    Orphaned descendants (a grandchild whose parent exited, a ``setsid`` escapee) are then
    re-parented to this process instead of init, so they stay findable and killable; they
    also become zombies this process must reap. Returns False where unsupported.

    Also marks the environment with :data:`OWNER_VAR`, so that the processes planrun starts
    itself are never taken for a session's orphans (:mod:`planrun.sessions.escapees`).
    """
    os.environ[OWNER_VAR] = str(os.getpid())
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False
