"""The ``tmux`` backend: one attempt in a detached tmux session that outlives planrun.

Every tmux command runs as ``tmux -u -f /dev/null [-L socket] ...`` (no user configuration is
read; a private ``-L`` server in tests and when ``settings.tmux_socket`` is set), with a small
allow-listed environment (PATH, HOME, locale, TMUX_TMPDIR, TMUX, PLANRUN_OWNER), so that the
tmux server never copies planrun's secrets into its global environment. Arguments that come
from the plan are escaped for tmux's command parser (an argument ending in ``;`` would
otherwise end the command).

Names and targets. The session is named ``tmux_name(spec.name)`` (see :func:`tmux_name`) and
always targeted exactly: ``-t =NAME`` for the session, ``=NAME:`` for its window, and the pane by
its ``%id``. tmux otherwise matches targets by prefix and pattern, so ``a`` would find ``ab``.

Starting. ``new-session -d -s NAME -x COLS -y ROWS -P`` runs, without any shell parsing::

    /bin/sh -c PANE_SCRIPT planrun-pane CWD STDIN env -i -- K=V... /abs/command args...

The constant script changes to CWD (not tmux's ``-c``, which expands ``#{...}`` formats in the
path), turns the terminal's echo off (as the pty backend does: typed prompts and answers never
come back as output, where a prompt mentioning the success pattern would end the attempt),
connects stdin to the STDIN FIFO when there is ``stdin_text``, and execs (nothing is typed
before that exec, so echo is already off). ``env -i`` gives the
pane exactly ``spec.env``: tmux's ``-e`` only *adds* to the environment that the tmux server
inherited from whoever started it (planrun's whole environment, secrets included). In the same
tmux command list, ``remain-on-exit`` is set on the window (so that the exit status can be read
from ``#{pane_dead_status}``/``#{pane_dead_signal}``) and ``pipe-pane`` is started; tmux reads no
pane output before the list is done, so nothing printed at once is missed.

Output. ``pipe-pane`` runs ``exec >>FIFO; printf P; exec cat``: the pane's output goes through
``cat`` into a FIFO in a private 0700 folder (no unredacted copy on disk), which this backend
reads without blocking and feeds to the :class:`~planrun.sessions.output.OutputWatcher`. The first
byte ``P`` tells that the writer is connected. tmux keeps a dead pane alive until it has handed
every byte to the pipe (``window_pane_destroy_ready``), so once the pane is dead and the session
killed, reading the FIFO to end-of-file loses nothing. tmux's terminal keeps ``ONLCR``: a person
may attach and watch, so a ``\\n`` written by a line-oriented program reaches the log as
``\\r\\n`` (the pty backend clears ``ONLCR`` and logs ``\\n``).

Typing. Text (``type_text``, answers, ``on_question`` answers) becomes bytes with
:func:`~planrun.sessions.terminal.keystrokes` and is delivered with ``load-buffer -`` (from stdin)
then ``paste-buffer -d -r -t %PANE``: byte for byte, never interpreted as key names, never
through a shell, not limited by ``send-keys`` quirks (leading ``-``, trailing ``;``).
``stdin_text`` is written to a FIFO that the pane command has as stdin, then closed.

The end. The pane's process is watched through a pidfd (it is not planrun's child, but a pidfd
works for any process): its exit is noticed at once. tmux is also asked for the pane's state
every ``poll_interval`` seconds (1 s); that poll is only the safety net for what a pidfd cannot
see (the session killed or the pane respawned from outside) and the fallback where pidfds are
missing, so a slow poll costs nothing in latency and keeps the number of tmux clients low.
Outcomes follow the pty backend's rules (:class:`~planrun.sessions.terminal.TerminalSupervisor`).
Whatever ends the attempt: the process group of every pane of the session gets SIGTERM,
``kill_grace``, SIGKILL (while output is still logged); the exit status is read once tmux marks
the pane dead (or from ``/proc`` while its process is a zombie tmux has not reaped yet: see
``_dead_status``); then ``kill-session -t =NAME``; then the FIFO is drained to its end (at most
``drain_timeout``). Cancellation does the same, shielded, and re-raises; a cancellation while
the session is being created kills whatever was created.

Re-attach. If a session with this exact name already exists when :meth:`TmuxSession.run` is
called (a previous planrun died while it ran), no second copy is started: a new ``pipe-pane``
replaces the old one, the session's history is recovered once with ``capture-pane -p -J -S -``
and fed to the watcher (success and failure patterns found there count; questions and
automatic answers only on its last line, the one the agent may still be waiting on), ``on_start``
gets the pane's process, and the session is supervised to its end. Nothing is typed at start
and ``stdin_text`` is not sent again. A pane whose process had already exited gives its status
and history, but its process group is not signalled: tmux reaped that process while no planrun
watched, so the number may name someone else's group by now. Output printed while planrun was
away is recovered only as far as the screen history holds it (tmux's ``history-limit``) and
without colours; lines shown both on the screen and through the new pipe may appear twice in
the log.
"""

from __future__ import annotations

import os
import shlex
import shutil
import tempfile
from pathlib import Path

import trio

from planrun.sessions.base import OnQuestion, ProcessInfo, SessionSpec
from planrun.sessions.common import REAP_TIMEOUT, Status
from planrun.sessions.escapees import Hunt, token_of
from planrun.sessions.output import Event, FailureMatched, OutputWatcher, SuccessMatched
from planrun.sessions.process import kill_group, proc_start_time, wait_process_exit
from planrun.sessions.skeleton import Backend, StartFailed
from planrun.sessions.terminal import TerminalSupervisor
from planrun.sessions.terminal_attempt import TerminalAttempt, close_fd, resolve_command
from planrun.sessions.tmux_client import (
    PANE_FORMAT,
    Client,
    Pane,
    Reply,
    attach_argv,
    list_sessions,
    pane_argv,
    pgid_of,
    tmux_name,
    until_exec,
    zombie_status,
)

__all__ = ["TmuxSession", "attach_argv", "list_sessions", "tmux_name", "zombie_status"]

#: Seconds to wait for the exit status of a pane that tmux already shows as dead.
STATUS_WAIT = 1.0
_DEAD_POLL_FIRST, _DEAD_POLL_MAX = 0.01, 0.1


class TmuxSession(Backend):
    """The tmux backend (a :class:`~planrun.sessions.skeleton.Backend`).

    ``socket`` is the ``-L`` server name (None: tmux's default server). ``poll_interval`` is
    the safety-net poll of the pane's state; ``tmux`` is the program.
    """

    def __init__(
        self,
        socket: str | None = None,
        *,
        poll_interval: float = 1.0,
        drain_timeout: float = 2.0,
        read_size: int = 64 * 1024,
        tmux: str = "tmux",
    ) -> None:
        super().__init__(drain_timeout=drain_timeout, read_size=read_size)
        self.socket = socket
        self._client = Client(socket, tmux)
        self._poll = poll_interval

    async def _spawn(
        self, spec: SessionSpec, watcher: OutputWatcher, on_question: OnQuestion | None
    ) -> _TmuxAttempt:
        """Start the session, or re-attach to the one of this name (module docstring)."""
        folder = Path(tempfile.mkdtemp(prefix="planrun-tmux-"))
        supervisor = TerminalSupervisor(spec, watcher, on_question)
        attempt = _TmuxAttempt(
            self._client, supervisor, folder, self._poll, self._drain_timeout, self._read_size
        )
        try:
            await attempt.open()
        except BaseException:
            attempt.close()
            raise
        return attempt


class _TmuxAttempt(TerminalAttempt):
    """One attempt in one tmux session: start or re-attach, supervise, wind down."""

    def __init__(
        self,
        client: Client,
        supervisor: TerminalSupervisor,
        folder: Path,
        poll: float,
        drain_timeout: float,
        read_size: int,
    ) -> None:
        hunt = Hunt()  # replaced by the pane's own when this re-attaches
        super().__init__(supervisor, hunt, drain_timeout=drain_timeout, read_size=read_size)
        self._client = client
        self._folder = folder
        self.name = tmux_name(self.spec.name)
        # _output is the output FIFO; _stdin the stdin FIFO (read-write: opening never blocks)
        self._keeper: int | None = None  # our own writer: no end-of-file before cat connects
        self._poll = poll
        self._replayed: list[Event] = []  # events of the recovered history, handled at start
        self._pane: Pane | None = None
        self.pgid_of = 0
        self._reattached = False
        self._found_dead = False  # re-attached to a pane whose process had already exited
        self._piped = False
        self._connected = trio.Event()

    # --- starting -----------------------------------------------------------------------

    async def open(self) -> None:
        """Re-attach to the session or start it; raise :class:`StartFailed` if it cannot start.

        If anything else raises (or this is cancelled), whatever was started is killed before
        it propagates.
        """
        try:
            await self._open()
        except StartFailed:
            raise  # nothing of it runs
        except BaseException:
            with trio.CancelScope(shield=True):
                await self._abandon()
            raise

    async def _abandon(self) -> None:
        """Kill the session of this name, if it exists, and its live panes' process groups."""
        panes = await self._client.session_panes(self.name) or []
        async with trio.open_nursery() as nursery:
            for pane in panes:
                if not pane.dead:
                    nursery.start_soon(kill_group, pgid_of(pane.pid), self.spec.kill_grace)
        await self._end_session()

    async def _open(self) -> None:
        output = self._folder / "output"
        try:
            os.mkfifo(output, 0o600)
            self._output = os.open(output, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            self._keeper = os.open(output, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as error:
            problem = error.strerror or error
            raise StartFailed(f"cannot create the output FIFO {output}: {problem}") from None
        panes = await self._client.session_panes(self.name)
        if panes is not None:
            await self._reattach(panes[0])
            return
        command = resolve_command(self.spec.argv, self.spec.env, self.spec.cwd)
        if "=" in command:
            why = "'=' in its path (env -i would misread it)"
            raise StartFailed(f"cannot start {self.spec.argv[0]!r}: {why}")
        await self._start(command)

    def _pipe_command(self) -> str:
        """The pipe-pane shell command (tmux expands ``#`` formats in it: ``#`` is doubled)."""
        fifo = shlex.quote(str(self._folder / "output")).replace("#", "##")
        return f"exec >>{fifo}; printf P; exec cat"

    async def _start(self, command: str) -> None:
        """Create the session (see the module docstring); :class:`StartFailed` if it fails."""
        spec = self.spec
        stdin = ""
        if spec.stdin_text is not None:
            stdin = str(self._folder / "stdin")
            os.mkfifo(stdin, 0o600)
            self._stdin = os.open(stdin, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        # Shielded: a tmux client killed by a cancellation may still have created the session,
        # which the caller can only abandon (kill) if it learns about it.
        with trio.CancelScope(shield=True):
            reply = await self._start_call(command, stdin)
        self._pane = Pane.parse(reply.out)
        if self._pane is None or reply.code != 0:
            if self._pane is not None:  # created, but not set up: do not leave it running
                await self._abandon()
            why = reply.err or "no pane created"
            raise StartFailed(f"cannot start {spec.argv[0]!r} in tmux: {why}")
        self._piped = True
        self.pgid_of = self._pane.pid
        await until_exec(self._pane.pid)

    async def _start_call(self, command: str, stdin: str) -> Reply:
        """One tmux command list: the session, ``remain-on-exit``, the output pipe."""
        rows, cols = self.spec.terminal_size
        size = ["-x", str(cols), "-y", str(rows)]
        pane = pane_argv(self.spec, command, stdin, self.hunt)
        window = f"={self.name}:"
        return await self._client.call(
            [
                [
                    "new-session",
                    "-d",
                    "-s",
                    self.name,
                    *size,
                    "-P",
                    "-F",
                    PANE_FORMAT,
                    "--",
                    *pane,
                ],
                ["set-option", "-w", "-t", window, "remain-on-exit", "on"],
                ["pipe-pane", "-t", window, self._pipe_command()],
            ]
        )

    async def _reattach(self, pane: Pane) -> None:
        """Take over a session left by an earlier planrun: pipe, recover history."""
        self._reattached, self._pane, self._found_dead = True, pane, pane.dead
        self.pgid_of = pgid_of(pane.pid)
        self.hunt = Hunt.adopt(None if pane.dead else token_of(pane.pid))
        if not pane.dead:
            reply = await self._client.call([["pipe-pane", "-t", pane.id, self._pipe_command()]])
            self._piped = reply.code == 0
        reply = await self._client.call([["capture-pane", "-p", "-J", "-S", "-", "-t", pane.id]])
        if reply.code == 0:
            self._replay(reply.out)

    def _replay(self, history: str) -> None:
        """Feed recovered history; only its last line may still be an open question."""
        body = history.rstrip("\n")
        head, newline, last = body.rpartition("\n")
        if newline:
            events = self.watcher.feed((head + "\n").encode())
            self._replayed += [e for e in events if isinstance(e, SuccessMatched | FailureMatched)]
        self._replayed += self.watcher.feed(last.encode())

    # --- running ------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._pane.pid if self._pane is not None else None

    def process(self) -> ProcessInfo:
        pid = self.pid  # not planrun's child, but its orphans may come to planrun
        assert pid is not None
        return ProcessInfo(pid=pid, pgid=self.pgid_of, start_time=proc_start_time(pid))

    async def supervise(self) -> None:
        """Run until an ending is decided or the pane's process exits; a pane found dead
        has only its recovered history to decide it."""
        assert self._pane is not None
        if not self._pane.dead:
            await super().supervise()
        else:
            self._sup.handle(self._replayed)
            self._exited = True

    _unknown_status = "the exit status is unknown (the tmux pane is gone)"

    def _begin(self, nursery: trio.Nursery) -> None:
        """Act on the recovered history; give input only to a session this started."""
        self._sup.handle(self._replayed)
        if not self._reattached:
            super()._begin(nursery)

    async def _wait_exit(self) -> None:
        """Return once the pane's process exits (pidfd) or tmux says the pane is dead or gone."""
        assert self._pane is not None
        while True:
            with trio.move_on_after(self._poll):
                await wait_process_exit(self._pane.pid)
                break
            pane = await self._client.pane(self._pane.id)
            if pane is None or pane.dead:
                break

    async def _end_processes(self, pumping: bool) -> None:
        """Kill the groups, read the status, kill the session; the FIFO's writer connected."""
        await self._kill_groups()
        await self.hunt.end(self.spec.kill_grace)
        # the pane's leader is tmux's child, so what planrun reaps there are orphans
        self.hunt.close(self.pgid_of if self.pgid_of and not self._found_dead else None)
        self._status = await self._dead_status()
        await self._end_session()
        if self._piped and pumping:
            with trio.move_on_after(self._drain_timeout):
                await self._connected.wait()
        close_fd(self._keeper)  # now only cat holds the FIFO open: its end is the output's
        self._keeper = None

    async def _release(self) -> None:
        self.close_fds()

    async def _kill_groups(self) -> None:
        """SIGTERM/grace/SIGKILL the group of every live pane of the session, and ours.

        Not ours if the pane was already dead when this planrun re-attached: tmux reaped its
        process while no planrun watched, so the number may since name another process group
        (leftovers of such a pane are for the scheduler's sweep of recorded processes).
        """
        panes = await self._client.session_panes(self.name) or []
        groups = {pgid_of(p.pid) for p in panes if not p.dead} - {self.pgid_of}
        async with trio.open_nursery() as nursery:
            for pgid in groups:
                nursery.start_soon(kill_group, pgid, self.spec.kill_grace)
            if not self._found_dead:
                self._kill = await kill_group(self.pgid_of, self.spec.kill_grace)

    async def _dead_status(self) -> Status | None:
        """The pane's (exit code, signal) once it is known; None if that never comes.

        tmux may show the pane dead (its terminal closed) before it has reaped the process,
        and tmux 3.3a was seen to leave such a zombie unreaped for seconds (pane_dead=1 with
        an empty pane_dead_status; tmux/tmux#4841 is the same race). While the process is a
        zombie its status is read from ``/proc/<pid>/stat`` (field 52) instead; a dead pane
        with neither is asked again for at most :data:`STATUS_WAIT` seconds.
        """
        assert self._pane is not None
        pause = _DEAD_POLL_FIRST
        dead_since: float | None = None
        with trio.move_on_after(REAP_TIMEOUT):
            while True:
                pane = await self._client.pane(self._pane.id)
                if pane is None or pane.status is not None:
                    return None if pane is None else pane.status
                if pane.dead:
                    status = zombie_status(pane.pid)
                    if status is not None:
                        return status
                    dead_since = dead_since or trio.current_time()
                    if trio.current_time() - dead_since > STATUS_WAIT:
                        return None
                await trio.sleep(pause)
                pause = min(pause * 2, _DEAD_POLL_MAX)
        return None

    async def _end_session(self) -> None:
        await self._client.call([["kill-session", "-t", "=" + self.name]])

    def close_fds(self) -> None:
        """Close every descriptor of the attempt (idempotent)."""
        for fd in (self._output, self._keeper, self._stdin):
            close_fd(fd)
        self._output = self._keeper = self._stdin = None

    def close(self) -> None:
        """Close the descriptors and remove the FIFOs' folder (idempotent)."""
        self.close_fds()
        shutil.rmtree(self._folder, ignore_errors=True)

    # --- tasks --------------------------------------------------------------------------

    def _received(self, data: bytes) -> None:
        if not self._connected.is_set():
            self._connected.set()
            data = data[1:]  # the writer's "P"
        super()._received(data)

    async def _type(self, keys: bytes) -> None:
        assert self._pane is not None
        buffer = f"planrun-{self._pane.id}"
        load = ["load-buffer", "-b", buffer, "-"]
        paste = ["paste-buffer", "-d", "-r", "-b", buffer, "-t", self._pane.id]
        await self._client.call([load, paste], stdin=keys)
