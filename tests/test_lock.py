"""The state folder lock: one holder, named when refused, released by the kernel on death."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from planrun.errors import StateLockedError, StoreError
from planrun.state.lock import INFO_NAME, StateLock, describe_holder, read_holder

OLD_LOCK = "lock"  # the lock file of older versions, deleted by users as a stale lock

REPO = Path(__file__).resolve().parents[1]

_HOLD = """
import sys
from pathlib import Path
from planrun.state.lock import StateLock
lock = StateLock.acquire(Path(sys.argv[1]), argv=["planrun", "apply", "held.yaml"])
print("locked", flush=True)
sys.stdin.read()  # hold until killed or stdin closes
"""

_TRY = """
import json, sys
from pathlib import Path
from planrun.errors import StateLockedError
from planrun.state.lock import StateLock
try:
    StateLock.acquire(Path(sys.argv[1])).release()
    print(json.dumps({"acquired": True}))
except StateLockedError as e:
    print(json.dumps({"acquired": False, "lock_path": e.lock_path, "holder": e.holder,
                      "exit_code": e.exit_code, "message": str(e)}))
"""


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def read_line(proc: subprocess.Popen[str], timeout: float = 20.0) -> str:
    """The child's next stdout line, waiting at most ``timeout`` seconds for it."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], deadline - time.monotonic())
        if ready:
            return proc.stdout.readline().strip()
    raise AssertionError(f"no output from pid {proc.pid} within {timeout}s")


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """A child process that holds the lock on ``tmp_path / 'state'``."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(tmp_path / "state")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=child_env(),
    )
    try:
        assert read_line(proc) == "locked"
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=20)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()


def try_in_child(state_dir: Path) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", _TRY, str(state_dir)],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    result: dict[str, object] = json.loads(out.stdout)
    return result


def test_acquire_creates_a_private_folder_and_says_who_holds_it(tmp_path: Path) -> None:
    state = tmp_path / "a" / "b" / ".planrun"
    with StateLock.acquire(state, argv=["planrun", "apply", "p.yaml"]) as lock:
        assert lock.held
        for folder in (tmp_path / "a", tmp_path / "a" / "b", state):
            assert folder.stat().st_mode & 0o777 == 0o700
        info = json.loads((state / INFO_NAME).read_text())
        assert info["pid"] == os.getpid()
        assert info["host"] == socket.gethostname()
        assert info["argv"] == ["planrun", "apply", "p.yaml"]
        assert time.strptime(info["started_at"], "%Y-%m-%dT%H:%M:%SZ")
        assert read_holder(state) == info
    assert not lock.held
    assert not (state / INFO_NAME).exists()
    assert read_holder(state) is None
    lock.release()  # idempotent


def test_a_second_process_is_refused_and_told_who_holds_it(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with StateLock.acquire(state, argv=["planrun", "apply", "mine.yaml"]):
        result = try_in_child(state)
    assert result["acquired"] is False
    assert result["exit_code"] == 3
    assert result["lock_path"] == str(state)
    holder = str(result["holder"])
    assert f"pid {os.getpid()} on {socket.gethostname()} since " in holder
    assert "planrun apply mine.yaml" in holder
    assert "stale" not in holder
    assert try_in_child(state) == {"acquired": True}  # released on exit from the block


def test_the_same_process_cannot_take_it_twice(tmp_path: Path) -> None:
    with StateLock.acquire(tmp_path), pytest.raises(StateLockedError):
        StateLock.acquire(tmp_path)


def test_a_killed_holder_leaves_no_stale_lock(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    state = tmp_path / "state"
    with pytest.raises(StateLockedError) as caught:
        StateLock.acquire(state)
    assert f"pid {holder.pid} on {socket.gethostname()}" in caught.value.holder
    assert "planrun apply held.yaml" in caught.value.holder
    assert read_holder(state) is not None

    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=20)
    assert (state / INFO_NAME).exists()  # left behind by the dead holder ...
    assert read_holder(state) is None  # ... and recognised as stale
    assert "has exited" in describe_holder(json.loads((state / INFO_NAME).read_text()))
    with StateLock.acquire(state):  # immediately, without any force-unlock
        assert json.loads((state / INFO_NAME).read_text())["pid"] == os.getpid()


def test_a_file_where_the_folder_should_be_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("not a folder")
    with pytest.raises(StoreError, match="lock the state folder"):
        StateLock.acquire(tmp_path / "state")


def test_missing_or_garbled_lock_info_is_described_honestly(tmp_path: Path) -> None:
    assert "unknown" in describe_holder(None)
    with StateLock.acquire(tmp_path):
        (tmp_path / INFO_NAME).write_text("{garbled")
        assert read_holder(tmp_path) is None
        with pytest.raises(StateLockedError, match=f"pid {os.getpid()} .*unreadable"):
            StateLock.acquire(tmp_path)  # the kernel still knows who holds it


_DIE_LEAVING_A_COPY = """
import os, subprocess, sys
from pathlib import Path
from planrun.state.lock import StateLock
lock = StateLock.acquire(Path(sys.argv[1]), argv=["planrun", "apply", "gone.yaml"])
# what the kernel does when it puts a dead process's files a moment after its death:
# the flock outlives the holder briefly (here, in a child sharing the descriptor)
subprocess.Popen(["sleep", "0.3"], pass_fds=(lock._fd,))
os._exit(0)  # dies without releasing, like kill -9: lock.info stays behind
"""


def test_a_holder_that_died_is_waited_for_briefly_not_reported(tmp_path: Path) -> None:
    """An apply right after a kill -9 must not fail with 'locked' because the kernel had
    not yet dropped the dead holder's lock: it waits while lock.info names the dead."""
    state = tmp_path / "state"
    subprocess.run(
        [sys.executable, "-c", _DIE_LEAVING_A_COPY, str(state)],
        env=child_env(),
        check=True,
        timeout=30,
    )
    assert "has exited" in describe_holder(json.loads((state / INFO_NAME).read_text()))
    assert try_in_child(state) == {"acquired": True}


_REPLAY_BRIEFLY = """
import sys, time
from pathlib import Path
from planrun.state.lock import REPLAYING, StateLock
lock = StateLock.acquire(Path(sys.argv[1]), argv=["planrun", "status", REPLAYING])
print("locked", flush=True)
time.sleep(0.3)  # what replaying a dead run's journal takes, say
lock.release()
"""


def test_an_apply_waits_for_a_status_that_replays_a_dead_runs_journal(tmp_path: Path) -> None:
    """`planrun status` right after a crash holds the lock for a moment to replay; an apply
    starting then waits for it rather than failing with 'locked' (exit 3)."""
    state = tmp_path / "state"
    status = subprocess.Popen(
        [sys.executable, "-c", _REPLAY_BRIEFLY, str(state)],
        stdout=subprocess.PIPE,
        text=True,
        env=child_env(),
    )
    try:
        assert read_line(status) == "locked"
        assert try_in_child(state) == {"acquired": True}
    finally:
        status.wait(timeout=20)
        assert status.stdout is not None
        status.stdout.close()


def test_deleting_the_lock_file_does_not_let_a_second_apply_in(
    tmp_path: Path, clean_env: Path
) -> None:
    """`rm .planrun/lock`, the reflex for a "stale lock", must not make a live run look dead:
    the second apply exits 3 naming the holder, and the first run's task is left alone."""
    from tests import runs

    plan = runs.write_plan(
        tmp_path,
        """\
version: 1
name: held
tasks:
  LONG:
    retry: {attempts: 1}
    run: [sh, -c, "echo $$ > up.pid; until [ -e go ]; do sleep 0.02; done; echo LONG >> fx"]
""",
    )
    first = runs.spawn("apply", str(plan), "--progress", "plain", cwd=tmp_path)
    try:
        up = tmp_path / "up.pid"
        runs.wait_for(lambda: up.exists() and up.read_text().strip(), what="LONG to start")
        task = int(up.read_text())
        for name in (OLD_LOCK, INFO_NAME):  # `rm -f .planrun/lock*`
            (runs.state_of(plan) / name).unlink(missing_ok=True)
        second = runs.apply(plan)
        assert second.returncode == 3, second.stderr
        assert f"locked by another apply (pid {first.pid} " in second.stderr
        assert runs.alive(task), "the second apply harmed the live run's task"
        (tmp_path / "go").touch()
        _, err = first.communicate(timeout=30)
        assert first.returncode == 0, err
        assert runs.effects(tmp_path / "fx") == {"LONG": 1}
    finally:
        runs.stop(first)


def test_the_kernel_names_the_holder_when_lock_info_is_deleted(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    state = tmp_path / "state"
    (state / INFO_NAME).unlink()
    result = try_in_child(state)
    assert result["acquired"] is False
    assert result["exit_code"] == 3
    assert f"pid {holder.pid} on {socket.gethostname()}" in str(result["holder"])
    assert "/proc/locks" in str(result["holder"])


def test_a_live_holder_named_in_lock_info_is_refused_even_without_the_lock(
    tmp_path: Path,
) -> None:
    """An older planrun locked a ``lock`` file, not the folder: its lock.info still counts."""
    from planrun.state.lock import _proc_start_time

    older = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        info = {
            "pid": older.pid,
            "host": socket.gethostname(),
            "started_at": "?",
            "argv": ["planrun", "apply", "old.yaml"],
            "proc_start_time": _proc_start_time(older.pid),
        }
        (tmp_path / INFO_NAME).write_text(json.dumps(info))
        with pytest.raises(StateLockedError, match=f"pid {older.pid} .*old.yaml"):
            StateLock.acquire(tmp_path)
        assert json.loads((tmp_path / INFO_NAME).read_text()) == info  # left alone
    finally:
        assert older.stdin is not None
        older.stdin.close()
        older.wait(timeout=20)


def test_a_folder_it_may_lock_but_not_write_is_a_store_error(tmp_path: Path) -> None:
    """Locking the folder needs only read access; writing lock.info then fails, which must
    be a clear StoreError (exit 2) that leaves the lock free, not a crash."""
    state = tmp_path / "state"
    (state / INFO_NAME).mkdir(parents=True)  # lock.info cannot be written (as root, too)
    with pytest.raises(StoreError, match="cannot write it"):
        StateLock.acquire(state)
    (state / INFO_NAME).rmdir()
    assert try_in_child(state) == {"acquired": True}
