"""Ctrl-Z then ``fg``: time planrun itself spent stopped is not a task's idle time.

planrun is stopped (SIGSTOP, as a shell's Ctrl-Z stops it with SIGTSTP) for longer than a
task's ``idle_timeout`` while the task goes on printing into its pipe; after SIGCONT the
task must carry on and succeed, not be judged ``stalled`` (issue 13, item 7). Each test
stops planrun several times: what woke first after a stop (the reader or the idle watcher)
was up to trio's scheduling, so one stop did not always show the bug.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
import trio.testing

from planrun.sessions.idle import IdleClock
from tests import runs

#: Prints a numbered tick every 0.2 s into the log, and the number into ``count``, until
#: ``done`` exists.
TICKER = (
    "i=0; while [ ! -e done ]; do i=$((i+1)); echo tick $i; echo $i > count.tmp;"
    " mv count.tmp count; sleep 0.2; done; echo finished"
)
STOPS = 3


@pytest.fixture
def spawned() -> Iterator[list[runs.subprocess.Popen[str]]]:
    procs: list[runs.subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
        runs.stop(proc)


def _count(folder: Path) -> int:
    try:
        return int((folder / "count").read_text())
    except (FileNotFoundError, ValueError):
        return 0


def _logged(folder: Path, line: str) -> bool:
    """``line`` is in the task's log (as a whole line; tmux logs ``\r\n``)."""
    logs = (folder / ".planrun").glob("*/logs/*/T.*")
    return any(line in log.read_text().replace("\r", "").split("\n") for log in logs)


def _stop_and_continue(apply: runs.subprocess.Popen[str], folder: Path) -> None:
    """Stop planrun while the task ticks 7 times (at least 1.2 s: longer than the 1 s
    idle_timeout, whatever the load), continue it,
    and wait until it logged a tick printed after that (or it ended the task)."""
    os.kill(apply.pid, signal.SIGSTOP)
    stopped_at = _count(folder)
    runs.wait_for(lambda: _count(folder) >= stopped_at + 7, what="ticks while stopped")
    os.kill(apply.pid, signal.SIGCONT)
    line = f"tick {_count(folder) + 1}"
    runs.wait_for(lambda: _logged(folder, line) or apply.poll() is not None, what="planrun")


@pytest.mark.parametrize("backend", ["subprocess", "pty", "tmux"])
def test_a_stopped_planrun_does_not_call_a_busy_task_stalled(
    tmp_path: Path,
    clean_env: Path,
    backend: str,
    spawned: list[runs.subprocess.Popen[str]],
    request: pytest.FixtureRequest,
) -> None:
    settings = ""
    if backend == "tmux":
        settings = f"settings: {{tmux_socket: {request.getfixturevalue('tmux_socket')}}}\n"
    plan = runs.write_plan(
        tmp_path,
        f"""\
version: 1
name: paused
{settings}tasks:
  T:
    backend: {backend}
    idle_timeout: 1s
    timeout: 60s
    run: [sh, -c, "{TICKER}"]
""",
    )
    apply = runs.spawn("apply", str(plan), "--progress", "plain", cwd=tmp_path)
    spawned.append(apply)
    runs.wait_for(lambda: _count(tmp_path) >= 2, what="the task to tick")
    for _ in range(STOPS):
        if apply.poll() is not None:
            break
        _stop_and_continue(apply, tmp_path)
    (tmp_path / "done").touch()
    _, err = apply.communicate(timeout=60)
    report = json.loads((runs.last_run_folder(plan) / "report.json").read_text())
    [attempt] = report["tasks"][0]["attempts"]
    assert (attempt["outcome"], apply.returncode) == ("succeeded", 0), (attempt, err)


async def test_the_idle_count_starts_again_after_planrun_was_stopped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A silent task, planrun stopped for 5 s at t=0.5 (the clock jumps while the watcher
    sleeps): the 1 s idle count restarts when planrun runs again, at 5.5, instead of
    charging the gap to the task and calling it stalled at once."""
    start = trio.current_time()
    idle = IdleClock(1.0, lambda: start, lambda: False)
    stalled_at: list[float] = []

    async def watch() -> None:
        await idle.wait_stalled()
        stalled_at.append(trio.current_time())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch)
        await trio.sleep(0.5)
        autojump_clock.jump(5.0)  # planrun stopped: the watcher wakes 4.5 s after its deadline
        await trio.sleep(0.6)
        assert stalled_at == []
        await trio.sleep(0.5)
    assert idle.stops == 1
    assert stalled_at == [pytest.approx(start + 6.5)]
