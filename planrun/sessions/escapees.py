"""Escapees: processes that left their session's process group (SPEC §4: no process
outlives its task).

Ending a session ends its process group, but a descendant that called ``setsid`` (or
``setpgid``) is in a group of its own, and no signal to the session's group reaches it
(``setsid sleep 300 &``, a daemonising server). Three facts make it findable:

1. Every session's environment carries a token of its own, :data:`TOKEN_VAR`, that its
   descendants inherit. A backend holds its session's side in a :class:`Hunt`.
2. planrun is a child subreaper (:func:`planrun.sessions.process.become_subreaper`): when
   an escapee's parent dies, the kernel re-parents it to planrun (to the main thread),
   not to init.
3. So, once a session's group is gone, its escapees are among planrun's own children.

:func:`end_escapees` reads planrun's children (one read of
``/proc/self/task/<pid>/children``), skips the leaders of running sessions
(:meth:`Hunt.lead`), reads the environment of the rest, and ends the groups of those that
carry the session's token (SIGTERM, the grace period, SIGKILL), then reaps them. It repeats for
escapees of escapees, which reach planrun only once their parent is dead.

Reaping: a process re-parented to planrun becomes planrun's zombie when it dies, and no
``Popen`` waits for it; :func:`reap_group` reaps those of one process group with
``waitid(P_PGID)``. Only after the session's own leader was reaped by its session (and
in groups whose leader was never planrun's child), so a status someone waits for is never
taken.

Escapees without the token. A descendant that cleared its environment (``setsid env -i``,
``os.environ.clear()`` then an exec) carries no token, but it is still re-parented to planrun
once its parents are gone. So planrun's children are also *surveyed*: a child that is not
a session leader, not in planrun's own process group, and whose environment lacks
``PLANRUN_OWNER`` (the mark of what planrun itself starts, such as git and the tmux server,
set by :func:`~planrun.sessions.process.become_subreaper`) is an orphan of some session.
Which one cannot be read from ``/proc``, so it is charged to every session running when it
was first seen (a session surveys as it ends, before it stops counting as running, so its
own orphans always include it), and ended once all of those have ended: at its own
session's end when it ran alone, at worst when the last session that ran beside it ends;
never later than the run.

Not covered: a process whose parents outlive the session outside planrun's tree (a tmux
pane of a server this planrun did not start: its orphans go to init), and anything left
after planrun itself died (re-parented to init; the next apply finds only what carries the
dead run's ``PLANRUN_RUN_ID``).
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Iterator, Mapping

import trio

from planrun.sessions.process import OWNER_VAR, kill_group, kill_group_now, proc_start_time
from planrun.sessions.procfs import PGRP, STATE, read_proc, stat_field, stat_fields

#: The environment variable that marks a session's processes.
TOKEN_VAR = "PLANRUN_SESSION"

#: Rounds of :func:`end_escapees` (an escapee of an escapee needs one more round).
MAX_ROUNDS = 8

_counter = itertools.count(1)
_leaders: set[int] = set()  # pids of running sessions' leaders: never escapees
_running: set[Hunt] = set()  # sessions whose processes run (from lead() to end())
#: Orphans seen, by (pid, start time): the sessions that were running when each was seen.
_orphans: dict[tuple[int, int], set[Hunt]] = {}


class Hunt:
    """One session's side: its token, its leader, and the escapees it ended.

    The token is fresh (pid and counter: no other session of any planrun on this machine
    has it), or, for a tmux pane that an earlier planrun started, the one it was given
    (:meth:`adopt`).
    """

    def __init__(self) -> None:
        self.token: str | None = f"{os.getpid()}.{next(_counter)}"
        self.found = 0  # escapees found and ended
        self._leader: int | None = None
        self._done = False
        self.over = False  # the session ended: its orphans no longer need it running

    @classmethod
    def adopt(cls, token: str | None) -> Hunt:
        """A hunt for a session started with ``token`` (None: unknown; nothing is hunted)."""
        hunt = cls()
        hunt.token = token
        return hunt

    def env(self, env: Mapping[str, str]) -> dict[str, str]:
        """``env`` with the session's token added (and never planrun's own mark)."""
        assert self.token is not None
        return {**{k: v for k, v in env.items() if k != OWNER_VAR}, TOKEN_VAR: self.token}

    def lead(self, pid: int) -> None:
        """The session's leader runs: it is never taken for an escapee (by any session), and
        the session counts as running for the orphans seen from now on."""
        self._leader = pid
        _leaders.add(pid)
        _running.add(self)

    async def end(self, grace: float) -> None:
        """End the session's escapees, once its group is gone. Once is enough (nothing is
        left to make new ones); a hunt that was cancelled is done again."""
        if self._done:
            return
        if self.token is not None:
            self.found += await end_escapees(self.token, grace)
        self.found += await self._end_orphans(grace)
        self._done = True

    async def _end_orphans(self, grace: float) -> int:
        """End the orphans whose sessions have all ended, this one now included."""
        if self not in _running and not self.over:
            return 0  # never ran (nothing started)
        found = 0
        for _ in range(MAX_ROUNDS):
            _survey(_running | {self})
            _running.discard(self)
            self.over = True
            due = [key for key, hunts in _orphans.items() if all(h.over for h in hunts)]
            if not due:
                break
            for key in due:
                del _orphans[key]
            found += await _end_pids([pid for pid, _ in due], grace)
        return found

    def close(self, group: int | None) -> None:
        """The session is over: forget its leader, reap the dead of ``group`` (None: not
        safe yet, the leader's own status is still its waiter's to take)."""
        _running.discard(self)
        self.over = True
        if self._leader is not None:
            _leaders.discard(self._leader)
        if group is not None:
            reap_group(group)

    def notes(self) -> list[str]:
        """The session result's note, if any escapee was ended."""
        if not self.found:
            return []
        if self.found == 1:
            return ["1 process that had left its process group was killed"]
        return [f"{self.found} processes that had left their process group were killed"]


def _children() -> list[int]:
    """planrun's children as the kernel lists them for the main thread (where orphans go)."""
    pid = os.getpid()
    data = read_proc(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in data.split()] if data is not None else []


def _environ(pid: int) -> list[bytes] | None:
    """The environment of ``pid`` (a session's process), if it can be read (not for a
    process that is gone, a zombie, or not ours)."""
    data = read_proc(f"/proc/{pid}/environ")
    return data.split(b"\0") if data is not None else None


def _is_orphan(pid: int) -> bool:
    """A live child of planrun that no session leads and planrun did not start itself."""
    fields = stat_fields(pid)
    if fields is None or stat_field(fields, STATE) in ("Z", "X"):
        return False
    if int(stat_field(fields, PGRP)) == os.getpgrp():
        return False
    environ = _environ(pid)
    return environ is not None and f"{OWNER_VAR}={os.getpid()}".encode() not in environ


def _survey(running: set[Hunt]) -> None:
    """Record the orphans among planrun's children not seen before, charged to ``running``;
    forget those that are gone."""
    if os.environ.get(OWNER_VAR) != str(os.getpid()):
        return  # planrun's own processes are not marked: nothing can be told apart
    children = _children()
    for key in [key for key in _orphans if key[0] not in children]:
        del _orphans[key]
    for pid in children:
        if pid in _leaders or not running:
            continue
        key = (pid, proc_start_time(pid))
        if key not in _orphans and _is_orphan(pid):
            _orphans[key] = set(running)


async def _end_pids(pids: list[int], grace: float) -> int:
    """End the process groups of ``pids`` (planrun's children) and reap them; how many."""
    groups = set(_groups(pids))
    async with trio.open_nursery() as nursery:
        for pgid in groups:
            nursery.start_soon(kill_group, pgid, grace)
    for pgid in groups:
        reap_group(pgid)
    for pid in pids:  # in case one moved to another group between the reads above
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # noqa: ASYNC222 - WNOHANG: never blocks
    return len(pids)


def token_of(pid: int) -> str | None:
    """The token in the environment of ``pid`` (a session's process), if it can be read
    (not for a process that is gone, a zombie, or not ours)."""
    prefix = f"{TOKEN_VAR}=".encode()
    environ = _environ(pid)
    if environ is None:
        return None
    for item in environ:
        if item.startswith(prefix):
            return item[len(prefix) :].decode(errors="replace")
    return None


def escapees(token: str) -> list[int]:
    """Live children of planrun, other than session leaders, that carry ``token``."""
    return [pid for pid in _children() if pid not in _leaders and token_of(pid) == token]


def reap_group(pgid: int) -> int:
    """Reap planrun's dead children in group ``pgid`` (adopted orphans); how many."""
    reaped = 0
    while pgid > 1:
        try:
            found = os.waitid(os.P_PGID, pgid, os.WEXITED | os.WNOHANG)
        except ChildProcessError:
            break
        if found is None:
            break
        reaped += 1
    return reaped


def _groups(pids: list[int]) -> Iterator[int]:
    for pid in pids:
        fields = stat_fields(pid)
        if fields is not None and stat_field(fields, STATE) not in ("Z", "X"):
            yield int(stat_field(fields, PGRP))


def kill_escapees_now() -> int:
    """SIGKILL the group of every child of planrun that carries a token of this planrun, and
    of every orphan charged to a session (the second-signal path); how many groups were
    signalled. The sessions reap them."""
    ours = f"{os.getpid()}."
    _survey(set(_running))
    pids = [pid for pid in _children() if (token_of(pid) or "").startswith(ours)]
    pids += [pid for pid, _ in _orphans]
    groups = set(_groups(pids))
    for pgid in groups:
        kill_group_now(pgid)
    return len(groups)


async def end_escapees(token: str, grace: float) -> int:
    """End every escapee of the session with ``token``; return how many were found.

    Cancellation is honoured at each pause; call it in a shielded scope when cleaning up.
    """
    found = 0
    for _ in range(MAX_ROUNDS):
        pids = escapees(token)
        if not pids:
            break
        found += await _end_pids(pids, grace)
    return found
