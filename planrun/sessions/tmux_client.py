"""Talking to tmux: names, targets, the client command, panes and the pane's command line.

The half of the tmux backend (:mod:`planrun.sessions.tmux`) that runs tmux client commands
and reads their answers, and builds the command line a pane starts with; see that module for
how they are used.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import trio

from planrun.core.frozen import frozen
from planrun.sessions.base import SessionSpec
from planrun.sessions.escapees import Hunt
from planrun.sessions.process import OWNER_VAR
from planrun.sessions.procfs import EXIT_CODE, STATE, stat_field, stat_fields

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
_KEPT = re.compile(r"[A-Za-z0-9.-]{1,100}")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
PANE_FORMAT = (
    "#{pane_id} #{pane_pid} #{pane_dead} #{pane_dead_status} #{pane_dead_signal} #{session_name}"
)


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
    client = Client(socket, tmux)
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


@frozen
class Reply:
    code: int  # -1 when tmux did not answer in time
    out: str
    err: str


@frozen
class Pane:
    """A pane as tmux describes it."""

    id: str
    pid: int
    dead: bool
    status: tuple[int | None, int | None] | None  # (exit code, signal) once dead
    session: str

    @staticmethod
    def parse(line: str) -> Pane | None:
        """Parse a line of :data:`PANE_FORMAT`; None if it is not one."""
        fields = line.rstrip("\n").split(" ", 5)
        if len(fields) != 6 or not fields[0].startswith("%") or not fields[1].isdigit():
            return None
        code = int(fields[3]) if fields[3].isdigit() else None
        signum = int(fields[4]) if fields[4].isdigit() else None
        dead = fields[2] == "1"
        status = (code, signum) if dead and (code, signum) != (None, None) else None
        return Pane(fields[0], int(fields[1]), dead, status, fields[5])


class Client:
    """Runs tmux client commands against one server."""

    def __init__(self, socket: str | None, tmux: str, timeout: float = COMMAND_TIMEOUT) -> None:
        self._argv = _base_argv(tmux, socket)
        self._timeout = timeout

    async def call(self, commands: list[list[str]], stdin: bytes = b"") -> Reply:
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
                return Reply(-1, "", f"cannot run {self._argv[0]}: {error.strerror or error}")
            out, err = done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace")
            return Reply(done.returncode, out, err.strip())
        return Reply(-1, "", f"tmux did not answer within {self._timeout:g}s")

    async def pane(self, pane_id: str) -> Pane | None:
        """The pane ``pane_id`` now, or None if it is gone (or tmux does not answer)."""
        reply = await self.call([["display-message", "-p", "-t", pane_id, PANE_FORMAT]])
        pane = Pane.parse(reply.out) if reply.code == 0 else None
        return pane if pane is not None and pane.id == pane_id else None

    async def session_panes(self, name: str) -> list[Pane] | None:
        """The panes of session ``name`` (exact), oldest first; None if there is no such session.

        ``list-panes -t`` takes a *window* target, where ``=name`` alone is not an exact
        session match (tmux 3.3a then lists the panes of some other session): the target is
        ``=name:``, and rows of any other session are dropped all the same.
        """
        command = ["list-panes", "-s", "-t", f"={name}:", "-F", PANE_FORMAT]
        reply = await self.call([command])
        if reply.code != 0:
            return None
        panes = [p for p in map(Pane.parse, reply.out.splitlines()) if p and p.session == name]
        return sorted(panes, key=lambda p: int(p.id[1:])) or None


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


def pgid_of(pid: int) -> int:
    """The process group of ``pid``, or ``pid`` itself if it is gone."""
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return pid


def pane_argv(spec: SessionSpec, command: str, stdin: str, hunt: Hunt) -> list[str]:
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


async def until_exec(pid: int, timeout: float = 5.0) -> None:
    """Wait until the pane's wrapper script has exec'd the command (echo is off by then)."""
    with trio.move_on_after(timeout):
        while _wrapper_running(pid):  # noqa: ASYNC110 - exec sends no event
            await trio.sleep(0.005)
