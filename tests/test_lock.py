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
from planrun.store.lock import INFO_NAME, LOCK_NAME, StateLock, describe_holder, read_holder

REPO = Path(__file__).resolve().parents[1]

_HOLD = """
import sys
from pathlib import Path
from planrun.store.lock import StateLock
lock = StateLock.acquire(Path(sys.argv[1]), argv=["planrun", "apply", "held.yaml"])
print("locked", flush=True)
sys.stdin.read()  # hold until killed or stdin closes
"""

_TRY = """
import json, sys
from pathlib import Path
from planrun.errors import StateLockedError
from planrun.store.lock import StateLock
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
    assert (state / LOCK_NAME).exists()  # never deleted
    assert read_holder(state) is None
    lock.release()  # idempotent


def test_a_second_process_is_refused_and_told_who_holds_it(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with StateLock.acquire(state, argv=["planrun", "apply", "mine.yaml"]):
        result = try_in_child(state)
    assert result["acquired"] is False
    assert result["exit_code"] == 3
    assert result["lock_path"] == str(state / LOCK_NAME)
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
    with pytest.raises(StoreError, match="lock file"):
        StateLock.acquire(tmp_path / "state")


def test_missing_or_garbled_lock_info_is_described_honestly(tmp_path: Path) -> None:
    assert "unknown" in describe_holder(None)
    with StateLock.acquire(tmp_path):
        (tmp_path / INFO_NAME).write_text("{garbled")
        assert read_holder(tmp_path) is None
        with pytest.raises(StateLockedError, match="holder unknown"):
            StateLock.acquire(tmp_path)


_DIE_LEAVING_A_COPY = """
import os, subprocess, sys
from pathlib import Path
from planrun.store.lock import StateLock
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
from planrun.store.lock import REPLAYING, StateLock
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
