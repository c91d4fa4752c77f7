"""planrun.sessions.child: children started from the event loop, waited on by pidfd.

Real processes throughout.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import trio

from planrun.sessions import child as child_module
from planrun.sessions.child import Child
from planrun.sessions.process import proc_start_time, start_time_between


async def read_all(stream: trio.lowlevel.FdStream) -> bytes:
    chunks = []
    while chunk := await stream.receive_some(65536):
        chunks.append(chunk)
    return b"".join(chunks)


async def test_output_stdin_and_exit_code(tmp_path: Path) -> None:
    child = Child.start(
        ["sh", "-c", "cat; echo err >&2; pwd; exit 3"],
        cwd=tmp_path,
        env={"PATH": os.environ["PATH"]},
        with_stdin=True,
    )
    assert child.stdin is not None
    await child.stdin.send_all(b"hello\n")
    await child.stdin.aclose()
    output = await read_all(child.stdout)
    assert await child.wait() == 3
    assert child.returncode == 3
    await child.aclose()
    assert output == f"hello\nerr\n{tmp_path}\n".encode()


async def test_stdin_is_dev_null_without_text(tmp_path: Path) -> None:
    child = Child.start(["cat"], cwd=tmp_path, env=os.environ, with_stdin=False)
    assert child.stdin is None
    assert await read_all(child.stdout) == b""
    assert await child.wait() == 0
    await child.aclose()


async def test_the_child_leads_a_new_session(tmp_path: Path) -> None:
    child = Child.start(["sleep", "30"], cwd=tmp_path, env=os.environ, with_stdin=False)
    try:
        assert os.getpgid(child.pid) == child.pid != os.getpgrp()
        assert os.getsid(child.pid) == child.pid
    finally:
        os.kill(child.pid, signal.SIGKILL)
        assert await child.wait() == -signal.SIGKILL
        await child.aclose()


async def test_start_time_without_reading_proc_is_the_kernels(tmp_path: Path) -> None:
    """Read off CLOCK_BOOTTIME around the fork, it matches /proc/<pid>/stat field 22 (a
    few hundred forks, so that some straddle a tick and take the /proc path)."""
    for _ in range(200):
        child = Child.start(["sleep", "30"], cwd=tmp_path, env=os.environ, with_stdin=False)
        try:
            assert child.start_time == proc_start_time(child.pid) > 0
        finally:
            os.kill(child.pid, signal.SIGKILL)
            await child.wait()
            await child.aclose()


def test_start_time_between_straddling_a_tick_reads_proc() -> None:
    me = os.getpid()
    tick = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
    assert start_time_between(me, 5 * tick, 5 * tick + tick - 1) == 5
    assert start_time_between(me, 5 * tick - 1, 5 * tick) == proc_start_time(me)


async def test_waiting_without_pidfd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where pidfd_open is refused (old kernels, some sandboxes), a worker thread waits."""

    def refused(pid: int, flags: int = 0) -> int:
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(child_module.os, "pidfd_open", refused)
    child = Child.start(["sh", "-c", "exit 7"], cwd=tmp_path, env=os.environ, with_stdin=False)
    assert await child.wait() == 7
    await child.aclose()


async def test_a_missing_program_or_folder_is_an_os_error(tmp_path: Path) -> None:
    first = Child.start(["true"], cwd=tmp_path, env=os.environ, with_stdin=False)
    await first.wait()
    await first.aclose()  # /dev/null stays open: it is shared by every child
    open_fds = len(os.listdir("/proc/self/fd"))
    with pytest.raises(FileNotFoundError):
        Child.start(["no-such-program-xyz"], cwd=tmp_path, env=os.environ, with_stdin=False)
    with pytest.raises(FileNotFoundError) as caught:
        Child.start(["true"], cwd=tmp_path / "nope", env=os.environ, with_stdin=False)
    assert str(caught.value.filename) == str(tmp_path / "nope")
    assert len(os.listdir("/proc/self/fd")) == open_fds  # no pipe end left open


def _script(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f"#!/bin/sh\n{text}\n")
    path.chmod(0o755)
    return path


async def _output_of(argv: list[str], cwd: Path, path: str) -> bytes:
    child = Child.start(argv, cwd=cwd, env={"PATH": path}, with_stdin=False)
    output = await read_all(child.stdout)
    assert await child.wait() == 0
    await child.aclose()
    return output


async def test_a_program_is_found_in_the_childs_path_and_keeps_its_name(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    _script(second, "hello", "echo second")
    path = f"{first}:{second}:{os.environ['PATH']}"
    assert await _output_of(["hello"], tmp_path, path) == b"second\n"
    assert await _output_of(["sh", "-c", 'echo "$0"'], tmp_path, path) == b"sh\n"
    assert await _output_of(["hello"], tmp_path, path) == b"second\n"  # remembered
    # one that appears in an earlier folder of PATH wins from then on, as exec would have it
    _script(first, "hello", "echo first")
    assert await _output_of(["hello"], tmp_path, path) == b"first\n"
    # one that is gone is looked up again
    (first / "hello").unlink()
    assert await _output_of(["hello"], tmp_path, path) == b"second\n"
    (second / "hello").unlink()
    _script(tmp_path / "third", "hello", "echo third")
    with pytest.raises(FileNotFoundError):
        await _output_of(["hello"], tmp_path, path)
    # another PATH is another lookup
    _script(second, "hello", "echo second")
    assert await _output_of(["hello"], tmp_path, f"{second}") == b"second\n"


async def test_a_program_not_found_is_reported_as_before(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as caught:
        Child.start(
            ["no-such-program"], cwd=tmp_path, env={"PATH": str(tmp_path)}, with_stdin=False
        )
    assert caught.value.filename == "no-such-program"
