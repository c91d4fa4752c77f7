"""Shared fixtures. The autouse leak check fails any test that leaves a process alive.

pytest makes itself a child subreaper (PR_SET_CHILD_SUBREAPER), so that processes a test
starts stay its descendants even when they double-fork or call setsid; after each test,
every live descendant is a leak, but for the processes of the session's PostgreSQL server
(tests/pg.py), whose backends come and go with connections.
"""

from __future__ import annotations

import compileall
import contextlib
import ctypes
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import planrun
from tests import pg, procs

_PR_SET_CHILD_SUBREAPER = 36
_PLAN_CACHE = pytest.StashKey[tempfile.TemporaryDirectory[str]]()

#: fixtures of the tests that run real agent CLIs (installed, server, home, repo)
pytest_plugins = ["tests.agents.fixtures"]


def pytest_configure(config: pytest.Config) -> None:
    # A suite started in the background by a non-interactive shell inherits SIGINT as
    # ignored (POSIX), and so would every planrun a test starts: the tests that press
    # Ctrl-C (a signal to a child) need it handled, as it is in a terminal.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    # the compiled-plan cache of every planrun the tests run, in process or not: theirs,
    # never the user's; on, so that every second load in a test goes through it
    config.stash[_PLAN_CACHE] = tempfile.TemporaryDirectory(prefix="planrun-plan-cache-")
    os.environ["PLANRUN_PLAN_CACHE"] = config.stash[_PLAN_CACHE].name
    # The tests start planrun in a new interpreter well over a thousand times. Where
    # PYTHONDONTWRITEBYTECODE is set (this project's CI machines set it), a checkout
    # without bytecode would compile every module at each start: +0.09 s each, minutes
    # in all. Compiling once here (about a second) is what an installed planrun has.
    compileall.compile_dir(Path(planrun.__file__).parent, quiet=1)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _PLAN_CACHE in config.stash:
        config.stash[_PLAN_CACHE].cleanup()


#: The test process's live descendants when the last leak check ended; None when unknown
#: (none yet, or a fixture wider than a test was set up or finished since: a PostgreSQL
#: server, say). The next test's "before" is then read from /proc again; else it is this
#: set, which saves a read of the process table per test (~4 ms on a busy machine).
_DESCENDANTS_AFTER_LAST_CHECK: list[set[int] | None] = [None]


@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef[object]) -> Iterator[None]:
    if fixturedef.scope != "function":
        _DESCENDANTS_AFTER_LAST_CHECK[0] = None
    yield


def pytest_fixture_post_finalizer(fixturedef: pytest.FixtureDef[object]) -> None:
    if fixturedef.scope != "function":
        _DESCENDANTS_AFTER_LAST_CHECK[0] = None


@pytest.fixture(autouse=True)
def _no_leaked_processes() -> Iterator[None]:
    known = _DESCENDANTS_AFTER_LAST_CHECK[0]
    before = set(procs.descendants(os.getpid())) if known is None else known
    _DESCENDANTS_AFTER_LAST_CHECK[0] = None  # (if the test fails before the check ends)
    yield
    deadline = time.monotonic() + 10.0
    leaked: list[int] = []
    while True:
        table = procs.table()  # one read of /proc for the three questions
        procs.reap_orphans(table)  # (a zombie is no descendant below either)
        server = pg.running_processes(table)
        alive = procs.descendants(os.getpid(), table)
        leaked = [p for p in alive if p not in before | server]
        if not leaked or time.monotonic() > deadline:
            break
        time.sleep(0.02)  # polling a condition with a deadline, not a bare sleep
    if leaked:
        described = [f"{pid}: {procs.cmdline(pid)}" for pid in leaked]
        for pid in leaked:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        procs.reap_orphans()
        pytest.fail("processes outlived the test:\n  " + "\n  ".join(described))
    _DESCENDANTS_AFTER_LAST_CHECK[0] = set(alive)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An isolated HOME and git identity so that tests never read the user's config."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_AUTHOR_NAME", "planrun tests")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "tests@planrun.invalid")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "planrun tests")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "tests@planrun.invalid")
    monkeypatch.delenv("PLANRUN_FAULT_AT", raising=False)
    return home


@pytest.fixture
def tmux_socket() -> Iterator[str]:
    """A private tmux server, killed at the end."""
    import shutil
    import uuid

    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    name = f"planrun-test-{uuid.uuid4().hex[:12]}"
    yield name
    subprocess.run(
        ["tmux", "-f", "/dev/null", "-L", name, "kill-server"], capture_output=True, check=False
    )
    folder = Path(os.environ.get("TMUX_TMPDIR", "/tmp")) / f"tmux-{os.getuid()}"
    (folder / name).unlink(missing_ok=True)


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[pg.Server]:
    """A private PostgreSQL server for the session (tests/pg.py); the tests that use it
    are skipped, with the reason, where none can be started (no pg_ctl, no psycopg)."""
    try:
        server = pg.start_server(tmp_path_factory.mktemp("postgres"))
    except pg.Unavailable as exc:
        pytest.skip(f"no PostgreSQL server for the postgres tests: {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(pg_server: pg.Server) -> Iterator[str]:
    """The URL of a new, empty database of its own, dropped after the test."""
    url = pg_server.create_database()
    yield url
    pg_server.drop_database(url)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_location(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """Where a store of each kind opens (planrun.state.open.open_store): a state folder
    (SQLite), or a database of its own on the session's PostgreSQL server."""
    if request.param == "postgres":
        url: str = request.getfixturevalue("pg_url")
        return url
    return tmp_path / "state"
