"""A private PostgreSQL server for the tests: started once per session from the machine's
own binaries (Debian's ``postgresql`` package), one database per test, stopped at the end.

The server refuses to run as root, so when the tests run as root its tools run as the
``postgres`` user (``runuser``), in a folder of the system's temporary directory that user
owns (pytest's own temporary folders are private to root); otherwise in pytest's folder.
It listens on 127.0.0.1 on a free port, with ``fsync=off``: fast, and nothing here needs
to survive a power cut. ``tests/conftest.py`` holds the fixtures; tests that use them are
marked ``postgres`` and skipped, with the reason, on a machine without ``pg_ctl``.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from planrun.sessions.process import OWNER_VAR
from tests import procs

#: the superuser initdb creates; the tests connect as it, without a password (trust)
USER = "planrun"
#: who runs the server when the tests run as root
OS_USER = "postgres"
#: the server's settings for the tests: nothing needs to survive a power cut
FAST = "-c fsync=off -c full_page_writes=off -c autovacuum=off -c max_connections=50"
#: PostgreSQL's durable defaults (benchmarks compare them with SQLite's synchronous=FULL)
DURABLE = "-c max_connections=50"


#: the servers started and not stopped yet (the leak check leaves their processes alone)
_RUNNING: list[Server] = []


def running_processes(of: procs.Table | None = None) -> set[int]:
    """The processes of every server of this session that runs (in the process table
    ``of``, else read now)."""
    return {pid for server in _RUNNING for pid in server.processes(of)}


class Unavailable(Exception):
    """No PostgreSQL server can be started here; the message says why (a skip reason)."""


def find_bin() -> Path:
    """The folder of ``pg_ctl``, ``initdb`` and ``postgres``: on PATH, else the newest of
    Debian's ``/usr/lib/postgresql/*/bin``."""
    on_path = shutil.which("pg_ctl")
    if on_path is not None:
        return Path(on_path).resolve().parent
    found = glob.glob("/usr/lib/postgresql/*/bin/pg_ctl")
    if not found:
        raise Unavailable("no pg_ctl on PATH or in /usr/lib/postgresql/*/bin")
    return Path(max(found, key=lambda p: int(Path(p).parts[-3]))).parent


@dataclass
class Server:
    """One running server (see the module docstring)."""

    bin: Path
    folder: Path
    port: int = 0
    owner: str | None = None  # run the tools as this user (when the tests run as root)
    postmaster: int | None = None
    made_folder: bool = False
    settings: str = FAST

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def tool(self, name: str, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin / name), *args]
        if self.owner is not None:
            command = ["runuser", "-u", self.owner, "--", *command]
        # The server's processes are re-parented to pytest (a child subreaper, conftest.py):
        # marked as pytest's own, an in-process apply's escapee hunt never takes them for
        # a session's orphans and kills them.
        env = {**os.environ, OWNER_VAR: str(os.getpid())}
        return subprocess.run(
            command, capture_output=True, text=True, timeout=120, check=False, env=env
        )

    def start(self) -> None:
        """initdb, then ``pg_ctl start`` on a free port (a few tries: a port can be taken
        between choosing it and the server binding it)."""
        made = self.tool("initdb", "-D", str(self.data), "-U", USER, "--auth=trust")
        if made.returncode != 0:
            raise Unavailable(f"initdb failed: {made.stderr.strip() or made.stdout.strip()}")
        failure = ""
        for _ in range(3):
            self.port = free_port()
            options = f"-k {self.folder} -p {self.port} -c listen_addresses=127.0.0.1"
            options += f" {self.settings}"
            log = str(self.folder / "server.log")
            started = self.tool("pg_ctl", "start", "-D", str(self.data), "-o", options, "-l", log)
            if started.returncode == 0:  # pg_ctl waits (-w is its default) until it accepts
                self.postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
                _RUNNING.append(self)
                return
            failure = (self.folder / "server.log").read_text(errors="replace")[-2000:]
        raise Unavailable(f"pg_ctl start failed: {failure}")

    def restart(self) -> None:
        """``pg_ctl restart -m fast``: every connection is closed; the server accepts
        connections again when this returns (scale-out tests: machines reconnect)."""
        log = str(self.folder / "server.log")  # (else the server holds our pipes open)
        done = self.tool("pg_ctl", "restart", "-D", str(self.data), "-m", "fast", "-l", log)
        if done.returncode != 0:
            raise AssertionError(f"pg_ctl restart failed: {done.stderr or done.stdout}")
        self.postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        procs.reap_orphans()

    def stop(self) -> None:
        """``pg_ctl stop -m immediate``, reap the server, remove a folder it made."""
        if self.postmaster is not None:
            self.tool("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w")
            self.postmaster = None
            _RUNNING.remove(self)
            procs.reap_orphans()
        if self.made_folder:
            shutil.rmtree(self.folder, ignore_errors=True)

    def processes(self, of: procs.Table | None = None) -> set[int]:
        """The server's processes (its backends come and go with the tests' connections),
        in the process table ``of``, else read now."""
        if self.postmaster is None:
            return set()
        return {self.postmaster, *procs.descendants(self.postmaster, of)}

    def create_database(self) -> str:
        """A new empty database; its URL."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        self._admin("CREATE DATABASE {}", name)
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Drop the database of ``url``, closing what is still connected to it."""
        self._admin("DROP DATABASE IF EXISTS {} WITH (FORCE)", url.rsplit("/", 1)[1])

    def _admin(self, statement: str, name: str) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.url(), autocommit=True) as con:
            con.execute(sql.SQL(statement).format(sql.Identifier(name)))


def start_server(pytest_folder: Path, settings: str = FAST) -> Server:
    """A running server (see the module docstring), or Unavailable saying why not."""
    try:
        import psycopg  # noqa: F401  (the store's driver: planrun[postgres])
    except ImportError as e:
        raise Unavailable("psycopg is not installed: pip install -e '.[test]'") from e
    server = Server(bin=find_bin(), folder=pytest_folder, settings=settings)
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam(OS_USER)
        except KeyError as e:
            raise Unavailable(f"running as root and there is no {OS_USER!r} user") from e
        server.folder = Path(tempfile.mkdtemp(prefix="planrun-pg-"))
        server.made_folder = True
        os.chown(server.folder, owner.pw_uid, owner.pw_gid)
        server.owner = OS_USER
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    return server


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
