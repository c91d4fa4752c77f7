"""The pty backend, driven by tests/fake_agent.py and ``sys.executable -c`` children.

Waits are on conditions with deadlines. Anchors: reliability §11 (drain always, bound every
wait, close always, loop exit races, count descriptors); matrix P1-P3, P5, S6.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from planrun.core.outcomes import Outcome
from planrun.sessions.base import Answer, ProcessInfo, SessionResult, SessionSpec
from planrun.sessions.process import group_alive
from planrun.sessions.pty import PASTE_END, PASTE_START, PtySession, keystrokes
from planrun.sessions.terminal import CursorQueries
from tests import procs
from tests.fake_agent import flood_data

AGENT = str(Path(__file__).with_name("fake_agent.py"))
TRUST = Answer(expect=re.compile(r"Trust this folder"), send="y\n")
# Text that must arrive literally: tmux separators and key names, shell syntax, unicode.
LITERAL = "-n foo; C-c $(touch MARK) `id` \\; Enter ;ünï ✓ 🚀 'q' \"dq\" #{session_name} end;"


def agent_spec(tmp_path: Path, *args: str, **overrides: Any) -> SessionSpec:
    """A spec running the fake agent with ``args`` in ``tmp_path``."""
    fields: dict[str, Any] = {
        "name": "test.T-1.a1",
        "argv": (sys.executable, AGENT, *args),
        "cwd": tmp_path,
        "env": dict(os.environ),
        "log_path": tmp_path / "logs" / "T-1.log",
        "kill_grace": 0.3,
        "timeout": 20.0,
    }
    fields.update(overrides)
    return SessionSpec(**fields)


async def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll an outside condition (a file, /proc) until it holds; fail after ``timeout``."""
    with trio.fail_after(timeout):
        while not condition():  # noqa: ASYNC110 - files and /proc have no trio.Event
            await trio.sleep(0.01)


def log_bytes(spec: SessionSpec) -> bytes:
    try:
        return spec.log_path.read_bytes()
    except FileNotFoundError:
        return b""


def pid_in(lines: list[str], label: str) -> int:
    """The pid from a ``LABEL pid=N`` line."""
    for line in lines:
        if line.startswith(label + " pid="):
            return int(line.split("=")[1])
    raise AssertionError(f"no {label!r} line in {lines}")


async def run(spec: SessionSpec, **kwargs: Any) -> SessionResult:
    return await PtySession().run(spec, **kwargs)


# --- prompts ------------------------------------------------------------------------------


async def test_argv_prompt_edits_a_file_and_logs_newlines_as_written(tmp_path: Path) -> None:
    infos: list[ProcessInfo] = []

    async def on_start(info: ProcessInfo) -> None:
        infos.append(info)

    spec = agent_spec(tmp_path, "--yolo", "edit out.txt hello world")
    result = await run(spec, on_start=on_start)
    assert (result.outcome, result.exit_code, result.reason) == (
        Outcome.SUCCEEDED,
        0,
        "exit code 0",
    )
    assert (tmp_path / "out.txt").read_text() == "hello world\n"
    assert "edited out.txt" in result.tail
    log = log_bytes(spec)
    assert b"edited out.txt\nbye\n" in log
    assert b"\r" not in log  # ONLCR is off: the log holds what the child wrote
    assert stat.S_IMODE(spec.log_path.stat().st_mode) == 0o600
    [info] = infos
    assert info.pid == info.pgid == result.pid
    assert info.start_time > 0
    assert not procs.alive(info.pid)


async def test_stdin_prompt_is_a_pipe_without_the_terminal_line_limit(tmp_path: Path) -> None:
    prompt = "edit s.txt from stdin\n" + "x" * 10_000 + "\nlast line ; no newline"
    spec = agent_spec(
        tmp_path, "--prompt-stdin", "--save-prompt", "p.txt", stdin_text=prompt, answers=(TRUST,)
    )
    result = await run(spec)
    assert result.outcome is Outcome.SUCCEEDED
    assert "trusted" in result.tail  # asked and answered on /dev/tty, the terminal
    assert (tmp_path / "p.txt").read_text() == prompt  # a canonical tty would cut at 4095
    assert (tmp_path / "s.txt").read_text() == "from stdin\n"


async def test_file_prompt(tmp_path: Path) -> None:
    (tmp_path / "prompt.md").write_text("edit f.txt from a file\n")
    result = await run(agent_spec(tmp_path, "--yolo", "--prompt-file", "prompt.md"))
    assert result.outcome is Outcome.SUCCEEDED
    assert (tmp_path / "f.txt").read_text() == "from a file\n"


async def test_typed_prompt_arrives_literally_and_is_not_echoed(tmp_path: Path) -> None:
    typed = LITERAL + "\x03\x04\x1b[201~"  # controls are removed: they would act as keys
    spec = agent_spec(
        tmp_path, "--yolo", "--prompt-typed", "--save-prompt", "p.txt", type_text=typed
    )
    result = await run(spec)
    assert result.outcome is Outcome.SUCCEEDED
    assert (tmp_path / "p.txt").read_text() == LITERAL + "[201~"
    assert not (tmp_path / "MARK").exists()
    assert b"C-c" not in log_bytes(spec)  # echo is off


async def test_multiline_typed_prompt_is_one_bracketed_paste(tmp_path: Path) -> None:
    prompt = "first line\nsecond; edit m.txt pasted\nthird line\n\n"
    spec = agent_spec(
        tmp_path, "--yolo", "--prompt-typed", "--save-prompt", "p.txt", type_text=prompt
    )
    result = await run(spec)
    assert result.outcome is Outcome.SUCCEEDED
    assert (tmp_path / "p.txt").read_text() == prompt.rstrip("\n")
    assert (tmp_path / "m.txt").read_text() == "pasted\n"


def test_keystrokes() -> None:
    assert keystrokes("fix it", submit=True) == b"fix it\r"
    assert keystrokes("a\r\nb\n\n", submit=True) == f"{PASTE_START}a\rb{PASTE_END}\r".encode()
    assert keystrokes("y\n", submit=False) == b"y\r"
    assert keystrokes("1", submit=False) == b"1"
    assert keystrokes("\x1b[201~\x03ok\x7f\x9b", submit=False) == b"[201~ok"
    assert keystrokes("é", submit=True) == "é\r".encode()


# --- questions and answers ----------------------------------------------------------------


async def test_trust_question_answered_automatically(tmp_path: Path) -> None:
    spec = agent_spec(
        tmp_path,
        "edit t.txt trusted",
        answers=(TRUST,),
        input_pattern=re.compile("Trust this folder"),  # the automatic answer wins
    )
    result = await run(spec)
    assert result.outcome is Outcome.SUCCEEDED
    assert "trusted" in result.tail
    assert (tmp_path / "t.txt").exists()


async def test_unanswered_trust_question_needs_input(tmp_path: Path) -> None:
    spec = agent_spec(tmp_path, "hang", input_pattern=re.compile("Trust this folder"))
    result = await run(spec)
    assert result.outcome is Outcome.NEEDS_INPUT
    assert result.question == "Trust this folder? [y/N] "
    assert result.reason == "waiting for input: Trust this folder? [y/N] "
    assert not group_alive(result.pid or 0)


async def test_on_question_answer_is_typed_and_limits_pause(tmp_path: Path) -> None:
    asked: list[str] = []

    async def on_question(line: str) -> str | None:
        asked.append(line)
        await trio.sleep(0.8)  # a person thinking: longer than idle_timeout
        return "deep blue"

    spec = agent_spec(
        tmp_path,
        "--yolo",
        "ask Favourite colour",
        input_pattern=re.compile(r"\? $"),
        idle_timeout=0.5,
    )
    result = await run(spec, on_question=on_question)
    assert asked == ["Favourite colour? "]
    assert result.outcome is Outcome.SUCCEEDED
    assert b"answer: deep blue\n" in log_bytes(spec)


async def test_on_question_none_needs_input(tmp_path: Path) -> None:
    async def on_question(line: str) -> str | None:
        return None

    spec = agent_spec(tmp_path, "--yolo", "ask Proceed", input_pattern=re.compile(r"\? $"))
    result = await run(spec, on_question=on_question)
    assert (result.outcome, result.question) == (Outcome.NEEDS_INPUT, "Proceed? ")
    assert not group_alive(result.pid or 0)


# --- endings ------------------------------------------------------------------------------


async def test_success_pattern_ends_a_never_exiting_agent(tmp_path: Path) -> None:
    spec = agent_spec(tmp_path, "--yolo", "done", success_pattern=re.compile("^TASK COMPLETE$"))
    result = await run(spec)
    assert result.outcome is Outcome.SUCCEEDED
    assert result.reason == "success pattern matched: TASK COMPLETE"
    assert result.signal == signal.SIGTERM
    assert not procs.alive(result.pid or 0)


async def test_idle_timeout_means_stalled(tmp_path: Path) -> None:
    result = await run(agent_spec(tmp_path, "--yolo", "silent 30", idle_timeout=0.5))
    assert (result.outcome, result.reason) == (Outcome.STALLED, "no output for 0.5s")


async def test_timeout(tmp_path: Path) -> None:
    start = trio.current_time()
    result = await run(agent_spec(tmp_path, "--yolo", "hang", timeout=0.5))
    assert (result.outcome, result.reason) == (Outcome.TIMED_OUT, "timed out after 0.5s")
    assert trio.current_time() - start < 3


async def test_crash_exit_code_and_result_line(tmp_path: Path) -> None:
    result = await run(agent_spec(tmp_path, "--yolo", "json-result; crash"))
    assert (result.outcome, result.exit_code, result.reason) == (
        Outcome.FAILED,
        3,
        "exit code 3",
    )
    assert any(line.startswith('{"type": "result"') for line in result.tail)


async def test_startup_failures_are_data(tmp_path: Path) -> None:
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    cases = {
        ("/nonexistent/agent-cli",): "No such file",
        (str(script),): "Permission denied",
        (): "empty command",
    }
    for argv, expected in cases.items():
        result = await run(agent_spec(tmp_path, argv=argv))
        assert result.outcome is Outcome.STARTUP_FAILED
        assert expected in result.reason
    result = await run(agent_spec(tmp_path, cwd=tmp_path / "gone"))
    assert result.outcome is Outcome.STARTUP_FAILED
    assert "working folder" in result.reason


async def test_exit_codes_and_descriptors_over_many_runs(tmp_path: Path) -> None:
    """P2/P3 in small: exit races and descriptor leaks show only when looping."""
    baseline = len(os.listdir("/proc/self/fd"))
    for i in range(40):
        spec = agent_spec(tmp_path, argv=("/bin/sh", "-c", f"printf x; exit {i % 4}"))
        start = trio.current_time()
        result = await run(spec)
        assert (result.exit_code, result.tail) == (i % 4, ["x"])
        assert trio.current_time() - start < 2
    assert abs(len(os.listdir("/proc/self/fd")) - baseline) <= 5


# --- output -------------------------------------------------------------------------------


def reset_peak_rss() -> int:
    """Reset this process's peak RSS (``clear_refs`` 5) and return the current RSS in bytes."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status_kib("VmRSS") * 1024


def peak_rss() -> int:
    """This process's peak RSS in bytes since the last :func:`reset_peak_rss`."""
    return _status_kib("VmHWM") * 1024


def _status_kib(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    assert match is not None
    return int(match.group(1))


async def test_20_mb_flood_loses_no_byte_and_memory_stays_bounded(tmp_path: Path) -> None:
    """P1: drained continuously, so the child never blocks and memory does not follow it."""
    spec = agent_spec(tmp_path, "--yolo", "flood 20", timeout=60)
    before = reset_peak_rss()
    result = await run(spec)
    growth = peak_rss() - before
    assert result.outcome is Outcome.SUCCEEDED
    log = log_bytes(spec)
    flood = log[log.index(b"chars)\n") + len(b"chars)\n") : len(log) - len(b"bye\n")]
    assert hashlib.sha256(flood).digest() == hashlib.sha256(flood_data(20)).digest()
    assert growth < 30_000_000, f"RSS grew by {growth} bytes"


async def test_terminal_size_seen_by_the_child(tmp_path: Path) -> None:
    result = await run(agent_spec(tmp_path, "--yolo", "size", terminal_size=(33, 77)))
    assert "size 33 77" in result.tail


async def test_a_cursor_position_query_is_answered(tmp_path: Path) -> None:
    """TUIs ask the terminal where the cursor is (ESC[6n) and wait for the answer."""
    spec = agent_spec(tmp_path, "--yolo", "cursor; echo after", terminal_size=(33, 77))
    result = await run(spec)
    assert result.outcome is Outcome.SUCCEEDED
    [line] = [line for line in result.tail if line.startswith("cursor ")]
    row, col = map(int, line.split()[1:])
    assert 1 <= row <= 33
    assert 1 <= col <= 77
    assert "after" in result.tail


def test_cursor_queries_are_counted_across_split_reads() -> None:
    queries = CursorQueries()
    assert queries.count(b"hello \x1b[") == 0
    assert queries.count(b"6n and \x1b[6n") == 2
    assert [queries.count(piece) for piece in (b"\x1b", b"[", b"6", b"n")] == [0, 0, 0, 1]
    assert queries.count(b"\x1b[6m \x1b[5n") == 0


async def test_secrets_are_redacted(tmp_path: Path) -> None:
    spec = agent_spec(tmp_path, "--yolo", "echo key=sk-0123456789", secrets=("sk-0123456789",))
    result = await run(spec)
    assert "key=***" in result.tail
    assert b"sk-0123456789" not in log_bytes(spec)


# --- process groups -----------------------------------------------------------------------


async def test_grandchild_ignoring_sigterm_is_killed_after_the_agent_exits(
    tmp_path: Path,
) -> None:
    result = await run(agent_spec(tmp_path, "--yolo", "spawn"))
    assert result.outcome is Outcome.SUCCEEDED
    assert result.reason == "exit code 0; processes left in its group were killed"
    assert not procs.alive(pid_in(result.tail, "grandchild"))


async def test_cancellation_kills_everything_and_reraises(tmp_path: Path) -> None:
    lines: list[str] = []
    infos: list[ProcessInfo] = []
    raised: list[BaseException] = []

    async def on_start(info: ProcessInfo) -> None:
        infos.append(info)

    async def runner() -> None:
        try:
            await run(agent_spec(tmp_path, "--yolo", "spawn; hang"), on_start=on_start,
                      on_line=lines.append)  # fmt: skip
        except BaseException as exc:
            raised.append(exc)
            raise

    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(runner)
            await wait_until(lambda: "hanging" in lines)
            scope.cancel()
    assert [type(exc) for exc in raised] == [trio.Cancelled]
    assert not procs.alive(infos[0].pid)
    assert not procs.alive(pid_in(lines, "grandchild"))
    assert not group_alive(infos[0].pgid)


@pytest.mark.parametrize("when", ["before", "after"])
async def test_output_before_exit_decides_patterns(tmp_path: Path, when: str) -> None:
    """A failure line printed just before a clean exit still fails the attempt."""
    steps = "echo FATAL: broken" if when == "before" else "echo fine"
    spec = agent_spec(tmp_path, "--yolo", steps, failure_pattern=re.compile("^FATAL"))
    result = await run(spec)
    expected = Outcome.FAILED if when == "before" else Outcome.SUCCEEDED
    assert result.outcome is expected


async def test_a_flood_past_log_limit_is_cut_with_a_marker_and_the_task_completes(
    tmp_path: Path,
) -> None:
    """P1 with a cap: 5 MB without newlines against a 1MB log_limit. The child is still
    drained to its end (it completes), the log stops at the limit with a line saying so,
    and the output after it is still watched (the final line reaches the tail)."""
    spec = agent_spec(tmp_path, "--yolo", "flood 5", timeout=60, log_limit=1_000_000)
    result = await run(spec)
    assert result.outcome is Outcome.SUCCEEDED
    log = log_bytes(spec)
    marker = b"[planrun: this log reached its limit of 1MB (settings.log_limit);"
    assert log.index(marker) == 1_000_000 + 1  # the limit, then the marker's own line
    assert len(log) < 1_000_000 + 200
    assert "bye" in result.tail
    assert "the log stops at settings.log_limit (1MB)" in result.reason
