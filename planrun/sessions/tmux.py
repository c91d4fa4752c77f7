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

import hashlib
import os
import re
import shlex
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import trio

from planrun.procfs import EXIT_CODE, STATE, stat_field, stat_fields
from planrun.sessions.base import (
    OnLine,
    OnQuestion,
    OnStart,
    ProcessInfo,
    SessionResult,
    SessionSpec,
)
from planrun.sessions.common import (
    REAP_TIMEOUT,
    open_watcher,
    reraise_plain,
    startup_failed,
)
from planrun.sessions.escapees import Hunt, token_of
from planrun.sessions.idle import readable
from planrun.sessions.output import Event, FailureMatched, SuccessMatched
from planrun.sessions.process import OWNER_VAR, GroupKill, kill_group, proc_start_time, running
from planrun.sessions.pty import close_fd, resolve_command, wait_process_exit, write_all
from planrun.sessions.terminal import TerminalSupervisor, keystrokes

#: Runs in the pane before the command: $1 working folder, $2 stdin FIFO or "", then the command.
PANE_SCRIPT = (
    'cd -- "$1" || exit 126; stty -echo 2>/dev/null; '
    'if [ -n "$2" ]; then exec <"$2" || exit 126; fi; shift 2; exec "$@"'
)
#: Environment variables the tmux *client* keeps (the pane gets exactly ``spec.env``).
CLIENT_ENV = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TMUX_TMPDIR",
    "TMUX",
    OWNER_VAR,  # the tmux server planrun starts is planrun's, not a session's orphan
)
#: Seconds a tmux client may take before it counts as failed.
COMMAND_TIMEOUT = 10.0
#: Seconds to wait for the exit status of a pane that tmux already shows as dead.
STATUS_WAIT = 1.0
_KEPT = re.compile(r"[A-Za-z0-9.-]{1,100}")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_PANE_FORMAT = (
    "#{pane_id} #{pane_pid} #{pane_dead} #{pane_dead_status} #{pane_dead_signal} #{session_name}"
)
_DEAD_POLL_FIRST, _DEAD_POLL_MAX = 0.01, 0.1


def tmux_name(name: str) -> str:
    """The tmux session name for a planrun session name (injective, no ``.`` or ``:``).

    tmux forbids ``.`` and ``:`` in session names. A name made only of ``A-Z a-z 0-9 . -`` (at
    most 100 characters) keeps its shape with each ``.`` turned into ``_``:
    ``demo.LOG-1.a2`` → ``demo_LOG-1_a2``. Any other name (with ``_``, ``:``, spaces, unicode,
    or too long) becomes a readable prefix (unsafe runs as ``-``, ``.`` as ``_``, at most 60
    characters) + ``+`` + the first 8 hex digits of its sha256. Kept names never contain ``+``
    and hashed ones always do, so two different names map to different tmux names unless
    their 32-bit hashes collide. Not idempotent: apply it once, to ``spec.name``.
    """
    if _KEPT.fullmatch(name):
        return name.replace(".", "_")
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    prefix = _UNSAFE.sub("-", name.replace(".", "_"))[:60]
    return f"{prefix}+{digest}"


def attach_argv(socket: str | None, name: str) -> list[str]:
    """The command that attaches a terminal to the tmux session ``name`` (a tmux name, as
    :func:`list_sessions` returns it, or ``tmux_name(spec.name)``), targeted exactly."""
    server = ["-L", socket] if socket else []
    return ["tmux", "-f", "/dev/null", *server, "attach-session", "-t", "=" + name]


async def list_sessions(socket: str | None, prefix: str = "", *, tmux: str = "tmux") -> list[str]:
    """Names of the sessions on the server that start with ``prefix`` (a tmux name prefix),
    sorted; ``[]`` when no server runs there."""
    client = _Client(socket, tmux)
    reply = await client.call([["list-sessions", "-F", "#{session_name}"]])
    if reply.code != 0:
        return []
    return sorted(name for name in reply.out.splitlines() if name.startswith(prefix))


def _base_argv(tmux: str, socket: str | None) -> list[str]:
    return [tmux, "-u", "-f", "/dev/null", *(["-L", socket] if socket else [])]


def _escape(arg: str) -> str:
    """``arg`` as tmux's command-line parser must see it to pass it on unchanged.

    tmux ends a command at an argument ending in ``;`` (and drops the ``;``); a final ``\\;``
    stands for a literal ``;``, so a trailing ``;`` gets a backslash before it.
    """
    return arg[:-1] + "\\;" if arg.endswith(";") else arg


@dataclass(frozen=True)
class _Reply:
    code: int  # -1 when tmux did not answer in time
    out: str
    err: str


@dataclass(frozen=True)
class _Pane:
    """A pane as tmux describes it."""

    id: str
    pid: int
    dead: bool
    status: tuple[int | None, int | None] | None  # (exit code, signal) once dead
    session: str

    @staticmethod
    def parse(line: str) -> _Pane | None:
        """Parse a line of :data:`_PANE_FORMAT`; None if it is not one."""
        fields = line.rstrip("\n").split(" ", 5)
        if len(fields) != 6 or not fields[0].startswith("%") or not fields[1].isdigit():
            return None
        code = int(fields[3]) if fields[3].isdigit() else None
        signum = int(fields[4]) if fields[4].isdigit() else None
        dead = fields[2] == "1"
        status = (code, signum) if dead and (code, signum) != (None, None) else None
        return _Pane(fields[0], int(fields[1]), dead, status, fields[5])


class _Client:
    """Runs tmux client commands against one server."""

    def __init__(self, socket: str | None, tmux: str, timeout: float = COMMAND_TIMEOUT) -> None:
        self._argv = _base_argv(tmux, socket)
        self._timeout = timeout

    async def call(self, commands: list[list[str]], stdin: bytes = b"") -> _Reply:
        """Run ``commands`` as one tmux command list (arguments escaped)."""
        argv = list(self._argv)
        for index, command in enumerate(commands):
            if index:
                argv.append(";")
            argv.extend(_escape(arg) for arg in command)
        with trio.move_on_after(self._timeout):
            try:
                done = await trio.run_process(
                    argv,
                    stdin=stdin,
                    capture_stdout=True,
                    capture_stderr=True,
                    check=False,
                    env={key: os.environ[key] for key in CLIENT_ENV if key in os.environ},
                )
            except OSError as error:
                return _Reply(-1, "", f"cannot run {self._argv[0]}: {error.strerror or error}")
            out, err = done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace")
            return _Reply(done.returncode, out, err.strip())
        return _Reply(-1, "", f"tmux did not answer within {self._timeout:g}s")

    async def pane(self, pane_id: str) -> _Pane | None:
        """The pane ``pane_id`` now, or None if it is gone (or tmux does not answer)."""
        reply = await self.call([["display-message", "-p", "-t", pane_id, _PANE_FORMAT]])
        pane = _Pane.parse(reply.out) if reply.code == 0 else None
        return pane if pane is not None and pane.id == pane_id else None

    async def session_panes(self, name: str) -> list[_Pane] | None:
        """The panes of session ``name`` (exact), oldest first; None if there is no such session.

        ``list-panes -t`` takes a *window* target, where ``=name`` alone is not an exact
        session match (tmux 3.3a then lists the panes of some other session): the target is
        ``=name:``, and rows of any other session are dropped all the same.
        """
        command = ["list-panes", "-s", "-t", f"={name}:", "-F", _PANE_FORMAT]
        reply = await self.call([command])
        if reply.code != 0:
            return None
        panes = [p for p in map(_Pane.parse, reply.out.splitlines()) if p and p.session == name]
        return sorted(panes, key=lambda p: int(p.id[1:])) or None


class TmuxSession:
    """The tmux backend (implements :class:`planrun.sessions.base.Session`).

    ``socket`` is the ``-L`` server name (None: tmux's default server). ``poll_interval`` is
    the safety-net poll of the pane's state; ``drain_timeout`` bounds the reading of the output
    that remains at the end; ``tmux`` is the program.
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
        self.socket = socket
        self._client = _Client(socket, tmux)
        self._poll = poll_interval
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
        """Run (or re-attach to) one attempt to its end; see the module docstring."""
        watcher = open_watcher(spec, on_line)
        if isinstance(watcher, SessionResult):
            return watcher
        folder = tempfile.mkdtemp(prefix="planrun-tmux-")
        supervisor = TerminalSupervisor(spec, watcher, on_question)
        attempt = _TmuxAttempt(self._client, supervisor, Path(folder), self._read_size)
        try:
            problem = await attempt.open()
            if problem is not None:
                return startup_failed(spec, problem)
            try:
                return await attempt.run(on_start, self._poll, self._drain_timeout)
            except BaseExceptionGroup as group:
                reraise_plain(group)
        finally:
            attempt.close_fds()
            watcher.close()
            shutil.rmtree(folder, ignore_errors=True)


class _TmuxAttempt:
    """One attempt in one tmux session: start or re-attach, supervise, wind down."""

    def __init__(
        self, client: _Client, supervisor: TerminalSupervisor, folder: Path, read_size: int
    ) -> None:
        self._client = client
        self._sup = supervisor
        self._spec = supervisor.spec
        self._watcher = supervisor.watcher
        self._folder = folder
        self.name = tmux_name(self._spec.name)
        self._reader: int | None = None  # the output FIFO
        self._keeper: int | None = None  # our own writer: no end-of-file before cat connects
        self._stdin: int | None = None  # the stdin FIFO (read-write, so opening never blocks)
        self._read_size = read_size
        self._replayed: list[Event] = []  # events of the recovered history, handled at start
        self._pane: _Pane | None = None
        self._pgid = 0
        self._reattached = False
        self._found_dead = False  # re-attached to a pane whose process had already exited
        self._piped = False
        self._connected = trio.Event()
        self._eof = trio.Event()
        self._pump_failed = False
        self._exited = False
        self._status: tuple[int | None, int | None] | None = None
        self._kill: GroupKill | None = None
        self._hunt = Hunt()  # a re-attached pane's token is read from the pane

    # --- starting -----------------------------------------------------------------------

    async def open(self) -> str | None:
        """Re-attach to the session or start it; return why it could not start, or None.

        If this raises (or is cancelled), whatever was started is killed before it propagates.
        """
        try:
            return await self._open()
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
                    nursery.start_soon(kill_group, _pgid(pane.pid), self._spec.kill_grace)
        await self._end_session()

    async def _open(self) -> str | None:
        output = self._folder / "output"
        try:
            os.mkfifo(output, 0o600)
            self._reader = os.open(output, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            self._keeper = os.open(output, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as error:
            return f"cannot create the output FIFO {output}: {error.strerror or error}"
        panes = await self._client.session_panes(self.name)
        if panes is not None:
            await self._reattach(panes[0])
            return None
        try:
            command = resolve_command(self._spec.argv, self._spec.env, self._spec.cwd)
        except ValueError as error:
            return str(error)
        if "=" in command:
            return f"cannot start {self._spec.argv[0]!r}: '=' in its path (env -i would misread it)"
        return await self._start(command)

    def _pipe_command(self) -> str:
        """The pipe-pane shell command (tmux expands ``#`` formats in it: ``#`` is doubled)."""
        fifo = shlex.quote(str(self._folder / "output")).replace("#", "##")
        return f"exec >>{fifo}; printf P; exec cat"

    async def _start(self, command: str) -> str | None:
        """Create the session (see the module docstring); return why it failed, or None."""
        spec = self._spec
        stdin = ""
        if spec.stdin_text is not None:
            stdin = str(self._folder / "stdin")
            os.mkfifo(stdin, 0o600)
            self._stdin = os.open(stdin, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        # Shielded: a tmux client killed by a cancellation may still have created the session,
        # which the caller can only abandon (kill) if it learns about it.
        with trio.CancelScope(shield=True):
            reply = await self._start_call(command, stdin)
        self._pane = _Pane.parse(reply.out)
        if self._pane is None or reply.code != 0:
            if self._pane is not None:  # created, but not set up: do not leave it running
                await self._abandon()
            return f"cannot start {spec.argv[0]!r} in tmux: {reply.err or 'no pane created'}"
        self._piped = True
        self._pgid = self._pane.pid
        await _until_exec(self._pane.pid)
        return None

    async def _start_call(self, command: str, stdin: str) -> _Reply:
        """One tmux command list: the session, ``remain-on-exit``, the output pipe."""
        rows, cols = self._spec.terminal_size
        size = ["-x", str(cols), "-y", str(rows)]
        pane = _pane_argv(self._spec, command, stdin, self._hunt)
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
                    _PANE_FORMAT,
                    "--",
                    *pane,
                ],
                ["set-option", "-w", "-t", window, "remain-on-exit", "on"],
                ["pipe-pane", "-t", window, self._pipe_command()],
            ]
        )

    async def _reattach(self, pane: _Pane) -> None:
        """Take over a session left by an earlier planrun: pipe, recover history."""
        self._reattached, self._pane, self._found_dead = True, pane, pane.dead
        self._pgid = _pgid(pane.pid)
        self._hunt = Hunt.adopt(None if pane.dead else token_of(pane.pid))
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
            events = self._watcher.feed((head + "\n").encode())
            self._replayed += [e for e in events if isinstance(e, SuccessMatched | FailureMatched)]
        self._replayed += self._watcher.feed(last.encode())

    # --- running ------------------------------------------------------------------------

    async def run(self, on_start: OnStart | None, poll: float, drain: float) -> SessionResult:
        """Supervise to the end, clean up (always, shielded), and describe the outcome."""
        assert self._pane is not None
        pid = self._pane.pid
        self._hunt.lead(pid)  # not planrun's child, but its orphans may come to planrun
        try:
            if on_start is not None:
                info = ProcessInfo(pid=pid, pgid=self._pgid, start_time=proc_start_time(pid))
                await on_start(info)
            if not self._pane.dead:
                await self._until_end(poll)
            else:
                self._sup.handle(self._replayed)
                self._exited = True
        finally:
            with trio.CancelScope(shield=True):
                await self._wind_down(drain)
        return self._sup.result(
            self._status,
            pid=pid,
            exited=self._exited,
            kill=self._kill,
            hunt=self._hunt,
            unknown_status="the exit status is unknown (the tmux pane is gone)",
        )

    async def _until_end(self, poll: float) -> None:
        async with trio.open_nursery() as nursery:
            pane = self._pane.pid if self._pane is not None else 0
            self._sup.start(nursery, self._type, self._pending, lambda: running(pane))
            self._sup.handle(self._replayed)
            nursery.start_soon(self._pump)
            nursery.start_soon(self._watch_pane, poll)
            if not self._reattached:
                if self._stdin is not None and self._spec.stdin_text is not None:
                    nursery.start_soon(self._feed_stdin, self._spec.stdin_text)
                if self._spec.type_text is not None:
                    self._sup.type(keystrokes(self._spec.type_text, submit=True))
            await self._sup.end.wait()
            nursery.cancel_scope.cancel()

    async def _watch_pane(self, poll: float) -> None:
        """Return once the pane's process exits (pidfd) or tmux says the pane is dead or gone."""
        assert self._pane is not None
        while True:
            with trio.move_on_after(poll):
                await wait_process_exit(self._pane.pid)
                break
            pane = await self._client.pane(self._pane.id)
            if pane is None or pane.dead:
                break
        self._exited = True
        self._sup.end.set()

    async def _wind_down(self, drain: float) -> None:
        """Kill the groups while logging, read the status, kill the session, drain the FIFO."""
        self._sup.stop()
        pumping = not self._eof.is_set() and not self._pump_failed
        async with trio.open_nursery() as nursery:
            if pumping:
                nursery.start_soon(self._pump)
            await self._kill_groups()
            await self._hunt.end(self._spec.kill_grace)
            # the pane's leader is tmux's child, so what planrun reaps there are orphans
            self._hunt.close(self._pgid if self._pgid and not self._found_dead else None)
            self._status = await self._dead_status()
            await self._end_session()
            if self._piped and pumping:
                with trio.move_on_after(drain):
                    await self._connected.wait()
            close_fd(self._keeper)
            self._keeper = None
            if pumping:
                with trio.move_on_after(drain):
                    await self._eof.wait()
            nursery.cancel_scope.cancel()
        self.close_fds()
        self._sup.handle(self._watcher.close())

    async def _kill_groups(self) -> None:
        """SIGTERM/grace/SIGKILL the group of every live pane of the session, and ours.

        Not ours if the pane was already dead when this planrun re-attached: tmux reaped its
        process while no planrun watched, so the number may since name another process group
        (leftovers of such a pane are for the scheduler's sweep of recorded processes).
        """
        panes = await self._client.session_panes(self.name) or []
        groups = {_pgid(p.pid) for p in panes if not p.dead} - {self._pgid}
        async with trio.open_nursery() as nursery:
            for pgid in groups:
                nursery.start_soon(kill_group, pgid, self._spec.kill_grace)
            if not self._found_dead:
                self._kill = await kill_group(self._pgid, self._spec.kill_grace)

    async def _dead_status(self) -> tuple[int | None, int | None] | None:
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
        for fd in (self._reader, self._keeper, self._stdin):
            close_fd(fd)
        self._reader = self._keeper = self._stdin = None

    # --- tasks --------------------------------------------------------------------------

    async def _pump(self) -> None:
        """Read the output FIFO into the watcher until end-of-file (every writer closed)."""
        fd = self._reader
        assert fd is not None
        try:
            while True:
                try:
                    data = os.read(fd, self._read_size)
                except BlockingIOError:
                    await trio.lowlevel.wait_readable(fd)
                    continue
                if not data:
                    self._eof.set()
                    return
                if not self._connected.is_set():
                    self._connected.set()
                    data = data[1:]  # the writer's "P"
                self._sup.handle(self._watcher.feed(data))
                await trio.lowlevel.checkpoint()  # let the other tasks run during a flood
        except Exception:
            self._pump_failed = True
            raise

    def _pending(self) -> bool:
        """Output is ready to be read from the FIFO."""
        return not self._eof.is_set() and readable(self._reader)

    async def _type(self, keys: bytes) -> None:
        assert self._pane is not None
        buffer = f"planrun-{self._pane.id}"
        load = ["load-buffer", "-b", buffer, "-"]
        paste = ["paste-buffer", "-d", "-r", "-b", buffer, "-t", self._pane.id]
        await self._client.call([load, paste], stdin=keys)

    async def _feed_stdin(self, text: str) -> None:
        """Write ``text`` into the stdin FIFO, then close it (the pane then reads end-of-file)."""
        fd = self._stdin
        assert fd is not None
        try:
            await write_all(fd, text.encode("utf-8", errors="replace"))
        finally:
            close_fd(fd)
            self._stdin = None


def _pane_argv(spec: SessionSpec, command: str, stdin: str, hunt: Hunt) -> list[str]:
    """The pane's command line: the wrapper script, its arguments, ``env -i``, the command."""
    env = hunt.env(spec.env)
    return [
        *("/bin/sh", "-c", PANE_SCRIPT, "planrun-pane", os.path.abspath(spec.cwd), stdin),
        *("env", "-i", "--", *(f"{key}={value}" for key, value in env.items())),
        *(command, *spec.argv[1:]),
    ]


def _wrapper_running(pid: int) -> bool:
    """True while ``pid`` still runs the pane's wrapper script (False once gone or exec'd)."""
    try:
        return PANE_SCRIPT.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def zombie_status(pid: int) -> tuple[int | None, int | None] | None:
    """(exit code, signal) of ``pid`` if it is an unreaped zombie, from ``/proc`` (Linux 3.5+).

    Field 52 of ``/proc/<pid>/stat`` is the wait status of an exited process. None if the
    process is not a zombie (running, reaped, or the field is missing).
    """
    fields = stat_fields(pid)
    if fields is None or stat_field(fields, STATE) != "Z" or len(fields) < EXIT_CODE - 2:
        return None
    status = int(stat_field(fields, EXIT_CODE))
    if os.WIFSIGNALED(status):
        return None, os.WTERMSIG(status)
    return os.WEXITSTATUS(status), None


def _pgid(pid: int) -> int:
    """The process group of ``pid``, or ``pid`` itself if it is gone."""
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return pid


async def _until_exec(pid: int, timeout: float = 5.0) -> None:
    """Wait until the pane's wrapper script has exec'd the command (echo is off by then)."""
    with trio.move_on_after(timeout):
        while _wrapper_running(pid):  # noqa: ASYNC110 - exec sends no event
            await trio.sleep(0.005)
