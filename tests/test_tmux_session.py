"""The tmux backend, on a private tmux server per test (``-L planrun-test-<uuid>``).

The server is killed in teardown (the leak check then sees no process left). Anchors:
reliability §12 (exact targets, literal typing, orphaned pane processes, private sockets);
matrix P4-P6, S6.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio

from planrun.core.outcomes import Outcome
from planrun.sessions.base import ProcessInfo, SessionResult, SessionSpec
from planrun.sessions.process import group_alive
from planrun.sessions.tmux import TmuxSession, attach_argv, list_sessions, tmux_name
from tests import procs
from tests.fake_agent import flood_data
from tests.test_pty_session import (
    LITERAL,
    TRUST,
    agent_spec,
    log_bytes,
    peak_rss,
    pid_in,
    reset_peak_rss,
    wait_until,
)

pytestmark = pytest.mark.skipif(
    subprocess.run(["tmux", "-V"], capture_output=True, check=False).returncode != 0,
    reason="tmux is not installed",
)
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def sock() -> Iterator[str]:
    """A private tmux server name; the server is killed and its socket removed at the end."""
    name = f"planrun-test-{uuid.uuid4().hex[:12]}"
    yield name
    tmux(name, "kill-server")
    socket_dir = Path(os.environ.get("TMUX_TMPDIR", "/tmp")) / f"tmux-{os.getuid()}"
    (socket_dir / name).unlink(missing_ok=True)  # tmux leaves it behind


def tmux(sock: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a tmux command on the test's server (test-side checks and decoys)."""
    argv = ["tmux", "-f", "/dev/null", "-L", sock, *args]
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=10)


def has_session(sock: str, name: str) -> bool:
    return tmux(sock, "has-session", "-t", "=" + name).returncode == 0


async def run(sock: str, spec: SessionSpec, **kwargs: Any) -> SessionResult:
    return await TmuxSession(sock).run(spec, **kwargs)


# --- prompts, ends and exit statuses ------------------------------------------------------


async def test_argv_prompt_exit_status_and_session_gone(sock: str, tmp_path: Path) -> None:
    infos: list[ProcessInfo] = []

    async def on_start(info: ProcessInfo) -> None:
        infos.append(info)
        assert has_session(sock, "test_T-1_a1")

    spec = agent_spec(tmp_path, "--yolo", "edit out.txt hello", "--pidfile", "starts")
    result = await run(sock, spec, on_start=on_start)
    assert (result.outcome, result.exit_code, result.reason) == (
        Outcome.SUCCEEDED,
        0,
        "exit code 0",
    )
    assert (tmp_path / "out.txt").read_text() == "hello\n"
    [info] = infos
    assert info.pid == info.pgid == result.pid == int((tmp_path / "starts").read_text())
    assert info.start_time > 0
    assert b"edited out.txt\r\nbye\r\n" in log_bytes(spec)  # tmux's terminal keeps ONLCR
    assert not has_session(sock, "test_T-1_a1")
    assert not procs.alive(info.pid)


async def test_exit_code_and_signal_are_captured(sock: str, tmp_path: Path) -> None:
    result = await run(sock, agent_spec(tmp_path, "--yolo", "crash"))
    assert (result.outcome, result.exit_code, result.reason) == (
        Outcome.FAILED,
        3,
        "exit code 3",
    )
    code = "import os, signal; print('bye', flush=True); os.kill(os.getpid(), signal.SIGTERM)"
    result = await run(sock, agent_spec(tmp_path, argv=(sys.executable, "-c", code)))
    assert (result.exit_code, result.signal) == (None, signal.SIGTERM)
    assert result.reason == "killed by signal SIGTERM"


async def test_stdin_and_file_prompts(sock: str, tmp_path: Path) -> None:
    prompt = "edit s.txt from stdin\n" + "y" * 6000 + "\nend ;"
    spec = agent_spec(
        tmp_path, "--prompt-stdin", "--save-prompt", "p.txt", stdin_text=prompt, answers=(TRUST,)
    )
    result = await run(sock, spec)
    assert result.outcome is Outcome.SUCCEEDED
    assert "trusted" in result.tail  # asked and answered on /dev/tty, the pane
    assert (tmp_path / "p.txt").read_text() == prompt
    (tmp_path / "prompt.md").write_text("edit f.txt from a file\n")
    spec = agent_spec(tmp_path, "--yolo", "--prompt-file", "prompt.md", name="test.T-1.a2")
    assert (await run(sock, spec)).outcome is Outcome.SUCCEEDED
    assert (tmp_path / "f.txt").read_text() == "from a file\n"


async def test_typed_prompts_arrive_literally(sock: str, tmp_path: Path) -> None:
    """P5: tmux separators, key names and shell syntax reach the agent as text."""
    spec = agent_spec(
        tmp_path, "--yolo", "--prompt-typed", "--save-prompt", "p.txt", type_text=LITERAL
    )
    assert (await run(sock, spec)).outcome is Outcome.SUCCEEDED
    assert (tmp_path / "p.txt").read_text() == LITERAL
    assert not (tmp_path / "MARK").exists()
    assert b"C-c" not in log_bytes(spec)  # echo is off in the pane
    multi = "first ;\nsecond; edit m.txt pasted\n-n third"
    spec = agent_spec(
        tmp_path, "--yolo", "--prompt-typed", "--save-prompt", "m.txt.prompt", type_text=multi
    )
    assert (await run(sock, spec)).outcome is Outcome.SUCCEEDED
    assert (tmp_path / "m.txt.prompt").read_text() == multi
    assert (tmp_path / "m.txt").read_text() == "pasted\n"


async def test_questions_answers_and_needs_input(sock: str, tmp_path: Path) -> None:
    spec = agent_spec(tmp_path, "edit t.txt trusted", answers=(TRUST,))
    assert (await run(sock, spec)).outcome is Outcome.SUCCEEDED
    assert (tmp_path / "t.txt").exists()

    spec = agent_spec(tmp_path, "hang", input_pattern=re.compile("Trust this folder"))
    result = await run(sock, spec)
    assert (result.outcome, result.question) == (Outcome.NEEDS_INPUT, "Trust this folder? [y/N] ")
    assert not group_alive(result.pid or 0)

    async def on_question(line: str) -> str | None:
        return "blue; C-c"

    spec = agent_spec(
        tmp_path, "--yolo", "ask Colour", input_pattern=re.compile(r"\? $"), name="t.q"
    )
    result = await run(sock, spec, on_question=on_question)
    assert result.outcome is Outcome.SUCCEEDED
    assert b"answer: blue; C-c\r\n" in log_bytes(spec)


async def test_success_pattern_idle_timeout_and_timeout(sock: str, tmp_path: Path) -> None:
    spec = agent_spec(tmp_path, "--yolo", "done", success_pattern=re.compile("TASK COMPLETE"))
    result = await run(sock, spec)
    assert (result.outcome, result.signal) == (Outcome.SUCCEEDED, signal.SIGTERM)
    assert not procs.alive(result.pid or 0)
    result = await run(sock, agent_spec(tmp_path, "--yolo", "silent 30", idle_timeout=0.5))
    assert (result.outcome, result.reason) == (Outcome.STALLED, "no output for 0.5s")
    result = await run(sock, agent_spec(tmp_path, "--yolo", "hang", timeout=0.5))
    assert (result.outcome, result.reason) == (Outcome.TIMED_OUT, "timed out after 0.5s")


async def test_terminal_size_and_exact_environment(sock: str, tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"], "PLANRUN_TEST": "x;y", "LANG": "C.UTF-8"}
    steps = "size; env PLANRUN_TEST; env HOME; env TMUX"
    spec = agent_spec(tmp_path, "--yolo", steps, env=env, terminal_size=(33, 77))
    result = await run(sock, spec)
    assert result.tail[-5:-1] == [
        "size 33 77",
        "env PLANRUN_TEST=x;y",
        "env HOME unset",
        "env TMUX unset",
    ]


async def test_a_cursor_position_query_is_answered_by_tmux(sock: str, tmp_path: Path) -> None:
    """tmux is a terminal: it answers ESC[6n itself (planrun adds nothing)."""
    result = await run(sock, agent_spec(tmp_path, "--yolo", "cursor", terminal_size=(33, 77)))
    assert result.outcome is Outcome.SUCCEEDED
    [line] = [line for line in result.tail if line.startswith("cursor ")]
    assert line != "cursor none"


async def test_startup_failures_are_data(sock: str, tmp_path: Path) -> None:
    result = await run(sock, agent_spec(tmp_path, argv=("/nonexistent/agent",)))
    assert (result.outcome, result.reason) == (
        Outcome.STARTUP_FAILED,
        "cannot start '/nonexistent/agent': No such file or directory",
    )
    result = await run(sock, agent_spec(tmp_path, cwd=tmp_path / "gone"))
    assert result.outcome is Outcome.STARTUP_FAILED
    assert await list_sessions(sock) == []


# --- output -------------------------------------------------------------------------------


async def test_20_mb_flood_loses_no_byte(sock: str, tmp_path: Path) -> None:
    spec = agent_spec(tmp_path, "--yolo", "flood 20", timeout=60)
    before = reset_peak_rss()
    result = await run(sock, spec)
    growth = peak_rss() - before
    assert result.outcome is Outcome.SUCCEEDED
    log = log_bytes(spec)
    flood = log[log.index(b"chars)\r\n") + len(b"chars)\r\n") : len(log) - len(b"bye\r\n")]
    expected = flood_data(20).replace(b"\n", b"\r\n")
    assert hashlib.sha256(flood).digest() == hashlib.sha256(expected).digest()
    assert growth < 30_000_000, f"RSS grew by {growth} bytes"


# --- process trees and cancellation -------------------------------------------------------


async def test_grandchild_ignoring_term_and_hup_is_killed(sock: str, tmp_path: Path) -> None:
    result = await run(sock, agent_spec(tmp_path, "--yolo", "spawn"))
    assert result.outcome is Outcome.SUCCEEDED
    assert result.reason == "exit code 0; processes left in its group were killed"
    assert not procs.alive(pid_in(result.tail, "grandchild"))


async def test_cancellation_kills_everything_and_the_session(sock: str, tmp_path: Path) -> None:
    lines: list[str] = []
    infos: list[ProcessInfo] = []

    async def on_start(info: ProcessInfo) -> None:
        infos.append(info)

    spec = agent_spec(tmp_path, "--yolo", "spawn; hang")
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(run, sock, spec, on_start=on_start, on_line=lines.append))
            await wait_until(lambda: "hanging" in lines)
            scope.cancel()
    assert scope.cancelled_caught
    assert not procs.alive(infos[0].pid)
    assert not procs.alive(pid_in(lines, "grandchild"))
    assert not has_session(sock, tmux_name(spec.name))


async def test_cancelled_while_starting_leaves_nothing(sock: str, tmp_path: Path) -> None:
    spec = agent_spec(tmp_path, "--yolo", "hang")
    for delay in (0.0, 0.02, 0.05, 0.1):
        with trio.move_on_after(delay):
            await run(sock, spec)
        assert await list_sessions(sock) == []


async def test_no_descriptor_or_folder_is_left(sock: str, tmp_path: Path) -> None:
    def folders() -> int:
        return sum(1 for p in Path(tempfile.gettempdir()).glob("planrun-tmux-*"))

    fds, before = len(os.listdir("/proc/self/fd")), folders()
    for i in range(4):
        spec = agent_spec(tmp_path, "--yolo", f"exit {i}", stdin_text="x" if i % 2 else None)
        assert (await run(sock, spec)).exit_code == i
    assert abs(len(os.listdir("/proc/self/fd")) - fds) <= 3
    assert folders() == before


# --- names and exact targets --------------------------------------------------------------


def test_tmux_names() -> None:
    assert tmux_name("demo.LOG-1.a2") == "demo_LOG-1_a2"
    odd = ["demo.x_y.a1", "a:b", "a b", "ünï", "x" * 101, "demo_LOG-1_a2"]
    mapped = [tmux_name(name) for name in odd]
    assert all(re.fullmatch(r"[A-Za-z0-9_-]*\+[0-9a-f]{8}", name) for name in mapped)
    assert len(set(mapped) | {tmux_name("demo.LOG-1.a2")}) == len(odd) + 1
    assert attach_argv("s", "demo_a") == [
        *("tmux", "-f", "/dev/null", "-L", "s", "attach-session", "-t", "=demo_a")
    ]
    assert attach_argv(None, "x")[-3:] == ["attach-session", "-t", "=x"]


async def test_exact_targeting_never_touches_a_prefix_twin(sock: str, tmp_path: Path) -> None:
    """P4: session ``a`` must not find, re-attach to or kill ``ab``."""
    decoy = tmux(sock, "new-session", "-d", "-s", "ab", "-P", "-F", "#{pane_pid}", "sleep 60")
    decoy_pid = int(decoy.stdout)
    spec = agent_spec(tmp_path, "--yolo", "echo mine", "--pidfile", "starts", name="a")
    result = await run(sock, spec)
    assert result.outcome is Outcome.SUCCEEDED
    assert "mine" in result.tail  # a fresh agent, not a re-attach to "ab"
    assert len((tmp_path / "starts").read_text().split()) == 1
    assert has_session(sock, "ab")
    assert procs.alive(decoy_pid)
    assert await list_sessions(sock, "a") == ["ab"]


# --- re-attach after planrun died ---------------------------------------------------------

RUNNER = """
import os, sys, trio
from pathlib import Path
from planrun.sessions.base import SessionSpec
from planrun.sessions.tmux import TmuxSession
sock, name, cwd, log, *argv = sys.argv[1:]
spec = SessionSpec(name=name, argv=tuple(argv), cwd=Path(cwd), env=dict(os.environ),
                   log_path=Path(log), kill_grace=0.3)
trio.run(TmuxSession(sock).run, spec)
"""


async def start_and_kill_planrun(sock: str, spec: SessionSpec, tmp_path: Path) -> int:
    """Run ``spec`` in another planrun process, SIGKILL it once the agent runs; the agent pid."""
    argv = [sys.executable, "-c", textwrap.dedent(RUNNER), sock, spec.name, str(spec.cwd)]
    argv += [str(spec.log_path), *spec.argv]
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    runner = await trio.lowlevel.open_process(argv, cwd=REPO, env=env)
    try:
        await wait_until(lambda: b"before" in log_bytes(spec))
    finally:
        runner.kill()
        await runner.wait()
    return int((tmp_path / "starts").read_text())


async def test_reattach_after_planrun_died(sock: str, tmp_path: Path) -> None:
    steps = "echo before; wait go; echo during; wait go2; echo after; exit 4"
    spec = agent_spec(tmp_path, "--yolo", steps, "--pidfile", "starts")
    agent = await start_and_kill_planrun(sock, spec, tmp_path)
    assert await list_sessions(sock) == ["test_T-1_a1"]  # the session survived planrun
    (tmp_path / "go").touch()  # the agent prints while no planrun watches
    infos: list[ProcessInfo] = []
    results: list[SessionResult] = []

    async def on_start(info: ProcessInfo) -> None:
        infos.append(info)

    async def supervise() -> None:
        results.append(await run(sock, spec, on_start=on_start))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(supervise)
        await wait_until(lambda: bool(infos))
        (tmp_path / "go2").touch()
    [result] = results
    assert (result.outcome, result.exit_code) == (Outcome.FAILED, 4)
    assert infos[0].pid == agent == result.pid
    assert (tmp_path / "starts").read_text().split() == [str(agent)]  # never started twice
    log = log_bytes(spec)
    assert b"during" in log  # recovered from the screen history
    assert b"after" in log
    assert not has_session(sock, "test_T-1_a1")
    assert not procs.alive(agent)


async def test_reattach_to_a_pane_that_already_exited(sock: str, tmp_path: Path) -> None:
    steps = "echo before; wait go; echo after; exit 5"
    spec = agent_spec(tmp_path, "--yolo", steps, "--pidfile", "starts")
    agent = await start_and_kill_planrun(sock, spec, tmp_path)
    (tmp_path / "go").touch()
    await wait_until(lambda: not procs.alive(agent))
    result = await run(sock, spec)
    assert (result.outcome, result.exit_code, result.pid) == (Outcome.FAILED, 5, agent)
    assert b"after" in log_bytes(spec)
    assert await list_sessions(sock) == []
