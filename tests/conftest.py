"""Shared fixtures. The autouse leak check fails any test that leaves a process alive.

pytest makes itself a child subreaper (PR_SET_CHILD_SUBREAPER), so that processes a test
starts stay its descendants even when they double-fork or call setsid; after each test,
every live descendant is a leak.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import procs

_PR_SET_CHILD_SUBREAPER = 36

#: fixtures of the tests that run real agent CLIs (installed, server, home, repo)
pytest_plugins = ["tests.agents.fixtures"]


def pytest_configure(config: pytest.Config) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


@pytest.fixture(autouse=True)
def _no_leaked_processes() -> Iterator[None]:
    before = set(procs.descendants(os.getpid()))
    yield
    deadline = time.monotonic() + 10.0
    leaked: list[int] = []
    while True:
        procs.reap_orphans()
        leaked = [p for p in procs.descendants(os.getpid()) if p not in before]
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
