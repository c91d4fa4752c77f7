"""A state store that the reader may not write (another user's, a read-only folder) is read,
never called corrupt.

The folder must be really unwritable for the process that reads it. Tests often run as
root, whom permissions do not stop, so as root the reading planrun runs as ``nobody``
(``setpriv``) with an interpreter ``nobody`` can start; when there is none, the test is
skipped and says why.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

from tests import runs

PLAN = """\
version: 1
name: ro
tasks:
  A: {run: [echo, hi]}
"""


@cache
def reader_command() -> tuple[list[str], dict[str, str]] | str:
    """How to start Python as a user who cannot write the folder, or why there is no way."""
    env = runs.environment(HOME="/tmp")
    if os.geteuid() != 0:
        return [sys.executable], env
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return "running as root and setpriv is not installed"
    as_nobody = [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    site = sysconfig.get_paths()["purelib"]
    env["PYTHONPATH"] = os.pathsep.join([str(runs.ROOT), site])
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for python in (sys.executable, shutil.which(version), "/usr/bin/python3"):
        if python is None:
            continue
        probe = subprocess.run(
            [
                *as_nobody,
                python,
                "-c",
                "import sys, planrun.cli, trio, pydantic_core;"
                f"assert sys.version_info[:2] == {sys.version_info[:2]!r}",
            ],
            env=env,
            capture_output=True,
            timeout=60,
            check=False,
            cwd="/",
        )
        if probe.returncode == 0:
            return [*as_nobody, python], env
    return "running as root and no Python that user nobody may start can import planrun"


@pytest.fixture
def readable_folder() -> Iterator[Path]:
    """A folder under /tmp that other users may enter (pytest's own tmp tree is 0700)."""
    folder = Path(tempfile.mkdtemp(prefix="planrun-ro-", dir="/tmp"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder)


def status_as_reader(plan: Path) -> subprocess.CompletedProcess[str]:
    how = reader_command()
    if isinstance(how, str):
        pytest.skip(how)
    python, env = how
    return subprocess.run(
        [*python, "-m", "planrun", "status", str(plan)],
        cwd=plan.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def unwritable(folder: Path) -> None:
    """Everything readable by all, nothing writable but by its owner (and the folder that
    holds the plans' state folders, ``.planrun``, can be entered)."""
    folder.parent.chmod(0o755)
    for path in (folder, *folder.rglob("*")):
        path.chmod(0o755 if path.is_dir() else 0o644)


def test_status_reads_a_store_in_a_folder_it_cannot_write(
    readable_folder: Path, clean_env: Path
) -> None:
    plan = runs.write_plan(readable_folder, PLAN)
    done = runs.apply(plan)
    assert done.returncode == 0, done.stderr
    state = runs.state_of(plan)
    assert not (state / "state.db-wal").exists()  # a clean end leaves no write-ahead log
    unwritable(state)
    before = (state / "state.db").read_bytes()
    out = status_as_reader(plan)
    assert out.returncode == 0, out.stderr
    assert "corrupt" not in out.stdout + out.stderr
    assert "A" in out.stdout
    assert "done" in out.stdout
    assert (state / "state.db").read_bytes() == before
    assert sorted(p.name for p in state.iterdir() if p.name.startswith("state.db")) == ["state.db"]


def test_status_reads_a_live_write_ahead_log_it_cannot_write(
    readable_folder: Path, clean_env: Path
) -> None:
    """While the owner's run writes (WAL and -shm there), SQLite reads them read-only."""
    plan = runs.write_plan(readable_folder, PLAN)
    assert runs.apply(plan).returncode == 0
    state = runs.state_of(plan)
    writer = sqlite3.connect(state / "state.db")  # holds a WAL open, as a live run does
    try:
        writer.execute("CREATE TABLE IF NOT EXISTS x (y)")
        assert (state / "state.db-shm").exists()
        unwritable(state)
        out = status_as_reader(plan)
    finally:
        writer.close()
    assert out.returncode == 0, out.stderr
    assert "done" in out.stdout


def test_a_store_it_cannot_read_safely_is_not_called_corrupt(
    readable_folder: Path, clean_env: Path
) -> None:
    """A write-ahead log without its -shm in a folder the reader cannot write: SQLite
    cannot read it, planrun says why, and never advises moving state.db aside."""
    plan = runs.write_plan(readable_folder, PLAN)
    assert runs.apply(plan).returncode == 0
    state = runs.state_of(plan)
    writer = sqlite3.connect(state / "state.db")
    writer.execute("CREATE TABLE IF NOT EXISTS x (y)")
    wal = (state / "state.db-wal").read_bytes()
    writer.close()  # checkpoints and removes the WAL and -shm ...
    (state / "state.db-wal").write_bytes(wal)  # ... and one is left as a crash leaves it
    unwritable(state)
    out = status_as_reader(plan)
    assert out.returncode == 2, out.stderr
    assert "cannot read it" in out.stderr
    assert "a run is going on, or one died" in out.stderr
    assert "corrupt" not in out.stderr
    assert "move it aside" not in out.stderr
