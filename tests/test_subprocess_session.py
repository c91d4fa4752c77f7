"""The subprocess backend, its process-group helpers and the shared OutputWatcher.

Children are real processes (``sys.executable -c ...``); waits are on conditions with
deadlines. Anchors: reliability §14 (process groups, pipes held by grandchildren), §15
(streamed redaction); matrix S6, S8, R3, R5.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import signal
import stat
import sys
import textwrap
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from planrun.core.outcomes import Outcome
from planrun.sessions.base import Answer, ProcessInfo, SessionResult, SessionSpec
from planrun.sessions.output import (
    LINE_CAP,
    AnswerDue,
    FailureMatched,
    InputRequested,
    OutputWatcher,
    SuccessMatched,
)
from planrun.sessions.process import (
    become_subreaper,
    group_alive,
    is_same_process,
    kill_group,
    kill_group_now,
    proc_start_time,
)
from planrun.sessions.subprocess import SubprocessSession
from tests import procs

# --- helpers ------------------------------------------------------------------------------


def make_spec(tmp_path: Path, code: str, **overrides: Any) -> SessionSpec:
    fields: dict[str, Any] = {
        "name": "test.T-1.a1",
        "argv": (sys.executable, "-c", textwrap.dedent(code)),
        "cwd": tmp_path,
        "env": dict(os.environ),
        "log_path": tmp_path / "logs" / "deep" / "T-1.log",
        "kill_grace": 0.3,
    }
    fields.update(overrides)
    return SessionSpec(**fields)


async def run(spec: SessionSpec, **kwargs: Any) -> SessionResult:
    return await SubprocessSession().run(spec, **kwargs)


async def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll an outside condition (a file, /proc) until it holds; fail after ``timeout``."""
    with trio.fail_after(timeout):
        while not condition():  # noqa: ASYNC110 - files and /proc have no trio.Event
            await trio.sleep(0.01)


def stat_pgrp_and_start(pid: int) -> tuple[int, int]:
    """Fields 5 (pgrp) and 22 (starttime) of /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[2]), int(fields[19])


def log_text(spec: SessionSpec) -> str:
    try:
        return spec.log_path.read_text()
    except FileNotFoundError:
        return ""


def pid_from(lines: list[str], label: str) -> int:
    for line in lines:
        if line.startswith(label + " "):
            return int(line.split()[1])
    raise AssertionError(f"no {label!r} line in {lines}")


# A grandchild that ignores SIGTERM, writes its pid then creates <dir>/gc-ready.
GRANDCHILD = """
import os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("gc", os.getpid(), flush=True)
open(os.path.join(sys.argv[1], "gc-ready"), "w").close()
time.sleep(60)
"""

SPAWN_GRANDCHILD = f"""
import os, signal, subprocess, sys, time
if "--ignore-term" in sys.argv:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
gc = subprocess.Popen([sys.executable, "-c", {GRANDCHILD!r}, os.getcwd()])
while not os.path.exists("gc-ready"):
    time.sleep(0.01)
print("ready", flush=True)
"""


# --- ends and outcomes --------------------------------------------------------------------


async def test_success_logs_to_a_private_file(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, "print('hello'); print('world')")
    result = await run(spec)
    assert result.outcome is Outcome.SUCCEEDED
    assert (result.exit_code, result.signal, result.reason) == (0, None, "exit code 0")
    assert result.tail == ["hello", "world"]
    assert result.output_bytes == len(b"hello\nworld\n")
    assert log_text(spec) == "hello\nworld\n"
    assert stat.S_IMODE(spec.log_path.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("codes", "outcome"), [(frozenset({0}), Outcome.FAILED), (frozenset({0, 3}), Outcome.SUCCEEDED)]
)
async def test_exit_code_decides(tmp_path: Path, codes: frozenset[int], outcome: Outcome) -> None:
    spec = make_spec(tmp_path, "import sys; print('x'); sys.exit(3)", success_exit_codes=codes)
    result = await run(spec)
    assert (result.outcome, result.exit_code, result.reason) == (outcome, 3, "exit code 3")


async def test_death_by_signal(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, "import os, signal; os.kill(os.getpid(), signal.SIGTERM)")
    result = await run(spec)
    assert result.outcome is Outcome.FAILED
    assert (result.exit_code, result.signal) == (None, signal.SIGTERM)
    assert result.reason == "killed by signal SIGTERM"


@pytest.mark.parametrize("problem", ["missing", "not-executable", "no-cwd"])
async def test_startup_failures_are_data(tmp_path: Path, problem: str) -> None:
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    argv, cwd = {
        "missing": (("/nonexistent/agent-cli", "--go"), tmp_path),
        "not-executable": ((str(script),), tmp_path),
        "no-cwd": ((sys.executable, "-c", "pass"), tmp_path / "gone"),
    }[problem]
    spec = make_spec(tmp_path, "", argv=argv, cwd=cwd)
    result = await run(spec)
    assert result.outcome is Outcome.STARTUP_FAILED
    assert repr(argv[0]) in result.reason
    expected = {"missing": "No such file", "not-executable": "Permission denied", "no-cwd": "gone"}
    assert expected[problem] in result.reason


async def test_stdin_text_is_delivered_then_closed(tmp_path: Path) -> None:
    code = "import sys; print('got', sys.stdin.read().split())"
    result = await run(make_spec(tmp_path, code, stdin_text="hello\nworld\n"))
    assert result.tail == ["got ['hello', 'world']"]
    result = await run(make_spec(tmp_path, "import sys; print(repr(sys.stdin.read()))"))
    assert result.tail == ["''"]  # no stdin_text: /dev/null


async def test_stdin_text_larger_than_the_pipe_and_unread(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, "print('ignoring stdin')", stdin_text="x" * 1_000_000)
    result = await run(spec)
    assert result.outcome is Outcome.SUCCEEDED


async def test_timeout(tmp_path: Path) -> None:
    spec = make_spec(
        tmp_path, "import time; print('start', flush=True); time.sleep(30)", timeout=0.5
    )
    start = trio.current_time()
    result = await run(spec)
    assert result.outcome is Outcome.TIMED_OUT
    assert result.reason == "timed out after 0.5s"
    assert result.signal == signal.SIGTERM
    assert trio.current_time() - start < 0.5 + spec.kill_grace + 1.5


async def test_idle_timeout_means_stalled(tmp_path: Path) -> None:
    code = """
    import time
    for i in range(5):
        print("tick", i, flush=True)
        time.sleep(0.1)
    time.sleep(30)
    """
    spec = make_spec(tmp_path, code, idle_timeout=0.5, timeout=10)
    result = await run(spec)
    assert result.outcome is Outcome.STALLED
    assert result.reason == "no output for 0.5s"
    assert result.tail[-1] == "tick 4"  # steady output did not count as idle


async def test_success_pattern_ends_a_long_running_child(tmp_path: Path) -> None:
    code = "import time; print('working'); print('ALL DONE', flush=True); time.sleep(30)"
    spec = make_spec(tmp_path, code, success_pattern=re.compile(r"^ALL DONE$"), timeout=10)
    result = await run(spec)
    assert result.outcome is Outcome.SUCCEEDED
    assert result.reason == "success pattern matched: ALL DONE"
    assert result.tail == ["working", "ALL DONE"]


@pytest.mark.parametrize("then", ["time.sleep(30)", "sys.exit(0)"])
async def test_failure_pattern_wins(tmp_path: Path, then: str) -> None:
    code = f"import sys, time; print('ERROR: boom', flush=True); {then}"
    spec = make_spec(tmp_path, code, failure_pattern=re.compile("ERROR"), timeout=10)
    result = await run(spec)
    assert result.outcome is Outcome.FAILED
    assert result.reason == "failure pattern matched: ERROR: boom"


async def test_input_pattern_on_a_prompt_without_newline(tmp_path: Path) -> None:
    code = "import time; print('Proceed? [y/N] ', end='', flush=True); time.sleep(30)"
    spec = make_spec(tmp_path, code, input_pattern=re.compile(r"\[y/N\]"), timeout=10)
    result = await run(spec)
    assert result.outcome is Outcome.NEEDS_INPUT
    assert result.question == "Proceed? [y/N] "
    assert result.tail == ["Proceed? [y/N] "]


async def test_lines_are_redacted_and_stripped_of_escapes(tmp_path: Path) -> None:
    code = r"print('\x1b[31mtoken=SUPERSECRET\x1b[0m'); print('plain')"
    lines: list[str] = []
    spec = make_spec(tmp_path, code, secrets=("SUPERSECRET",))
    result = await run(spec, on_line=lines.append)
    assert lines == ["token=***", "plain"]
    assert result.tail == lines
    assert log_text(spec) == "\x1b[31mtoken=***\x1b[0m\nplain\n"


# --- process groups -----------------------------------------------------------------------


async def test_on_start_matches_proc(tmp_path: Path) -> None:
    seen: list[tuple[ProcessInfo, int, int]] = []

    async def on_start(info: ProcessInfo) -> None:
        seen.append((info, *stat_pgrp_and_start(info.pid)))

    spec = make_spec(tmp_path, "import sys; sys.stdin.read()", stdin_text="")
    result = await run(spec, on_start=on_start)
    [(info, pgrp, start_time)] = seen
    assert info.pid == info.pgid == pgrp == result.pid
    assert info.start_time == start_time > 0


async def test_grandchild_ignoring_sigterm_is_killed_at_timeout(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, SPAWN_GRANDCHILD + "time.sleep(60)\n", timeout=1.0)
    start = trio.current_time()
    result = await run(spec)
    assert result.outcome is Outcome.TIMED_OUT
    assert "ready" in result.tail  # the grandchild ignored SIGTERM before the timeout
    gc = pid_from(result.tail, "gc")
    assert not procs.alive(gc)
    assert not group_alive(result.pid or 0)
    assert trio.current_time() - start >= 1.0 + spec.kill_grace  # SIGKILL was needed


async def test_grandchild_is_killed_after_its_parent_exits(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, SPAWN_GRANDCHILD, timeout=30)
    start = trio.current_time()
    result = await run(spec)
    gc = pid_from(result.tail, "gc")
    assert result.outcome is Outcome.SUCCEEDED
    assert result.reason == "exit code 0; processes left in its group were killed"
    assert not procs.alive(gc)
    # the grandchild held the pipe open: the session did not wait for EOF forever
    assert trio.current_time() - start < 10


async def test_escapee_holding_the_pipe_does_not_hang_the_session(tmp_path: Path) -> None:
    code = """
    import subprocess, sys
    esc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                           start_new_session=True)
    print("esc", esc.pid, flush=True)
    """
    spec = make_spec(tmp_path, code)
    start = trio.current_time()
    result = await SubprocessSession(drain_timeout=0.3).run(spec)
    escapee = pid_from(result.tail, "esc")
    try:
        assert result.outcome is Outcome.SUCCEEDED
        assert trio.current_time() - start < 5
        # pytest is a subreaper, as planrun apply is: the escapee was found and ended
        assert not procs.alive(escapee)
        assert "1 process that had left its process group was killed" in result.reason
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(escapee, signal.SIGKILL)


async def test_cancellation_kills_the_group_and_reraises(tmp_path: Path) -> None:
    code = SPAWN_GRANDCHILD + "time.sleep(60)\n"
    spec = make_spec(tmp_path, code)
    spec = make_spec(tmp_path, code, argv=(*spec.argv, "--ignore-term"))
    infos: list[ProcessInfo] = []
    lines: list[str] = []
    raised: list[BaseException] = []

    async def on_start(info: ProcessInfo) -> None:
        infos.append(info)

    async def runner() -> None:
        try:
            await run(spec, on_start=on_start, on_line=lines.append)
        except BaseException as exc:
            raised.append(exc)
            raise

    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(runner)
            await wait_until(lambda: "ready" in lines)
            scope.cancel()
    assert scope.cancelled_caught
    assert [type(exc) for exc in raised] == [trio.Cancelled]
    assert not procs.alive(infos[0].pid)
    assert not procs.alive(pid_from(lines, "gc"))
    assert not group_alive(infos[0].pgid)


async def test_a_failing_callback_propagates_after_cleanup(tmp_path: Path) -> None:
    code = SPAWN_GRANDCHILD + "time.sleep(60)\n"
    lines: list[str] = []

    def on_line(line: str) -> None:
        lines.append(line)
        if line == "ready":
            raise KeyError("scheduler bug")

    with pytest.raises(KeyError, match="scheduler bug"):
        await run(make_spec(tmp_path, code), on_line=on_line)
    assert not procs.alive(pid_from(lines, "gc"))


# --- output -------------------------------------------------------------------------------


async def test_secret_split_across_two_writes(tmp_path: Path) -> None:
    secret = "sk-live-0123456789abcdef"
    half1, half2 = secret[:10], secret[10:]
    code = f"""
    import os, sys, time
    sys.stdout.write("before " + {half1!r}); sys.stdout.flush()
    while not os.path.exists("go"):
        time.sleep(0.01)
    sys.stdout.write({half2!r} + " after\\n"); sys.stdout.flush()
    """
    spec = make_spec(tmp_path, code, secrets=(secret,), timeout=10)
    lines: list[str] = []
    results: list[SessionResult] = []

    async def runner() -> None:
        results.append(await run(spec, on_line=lines.append))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(runner)
        await wait_until(lambda: log_text(spec) == "before ")
        assert half1 not in log_text(spec)  # held back: it may be the start of the secret
        (tmp_path / "go").touch()
    assert log_text(spec) == "before *** after\n"
    assert lines == ["before *** after"]
    assert results[0].tail == lines


async def test_20_mb_without_newline_keeps_memory_bounded_and_logs_every_byte(
    tmp_path: Path,
) -> None:
    code = """
    import sys
    block = bytes(range(32, 127)) * 11000  # ~1 MB of printable ASCII
    for i in range(20):
        sys.stdout.buffer.write(block + b"%02d" % i)
    sys.stdout.buffer.flush()
    """
    block = bytes(range(32, 127)) * 11000
    expected = b"".join(block + b"%02d" % i for i in range(20))
    spec = make_spec(tmp_path, code, timeout=30)
    tracemalloc.start()
    try:
        result = await run(spec)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.outcome is Outcome.SUCCEEDED
    assert result.output_bytes == len(expected) > 20_000_000
    digest = hashlib.sha256(spec.log_path.read_bytes()).hexdigest()
    assert digest == hashlib.sha256(expected).hexdigest()
    assert len(result.tail) == 1
    assert len(result.tail[0]) <= LINE_CAP
    assert result.tail[0].endswith("19")
    assert peak < 6_000_000, f"peak traced memory {peak} bytes"


# --- process helpers ----------------------------------------------------------------------


async def test_own_group_is_never_signalled() -> None:
    kill = await kill_group(os.getpgrp(), grace=0.1)
    assert (kill.terminated, kill.escalated, kill.gone) == (False, False, False)
    assert kill_group_now(os.getpgrp()) is False
    assert kill_group_now(0) is False


async def test_kill_group_escalates_and_waits_until_empty(tmp_path: Path) -> None:
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-c", GRANDCHILD, str(tmp_path)], start_new_session=True
    )
    try:
        await wait_until(lambda: (tmp_path / "gc-ready").exists())
        assert group_alive(proc.pid)
        kill = await kill_group(proc.pid, grace=0.2)
        assert (kill.terminated, kill.escalated, kill.gone) == (True, True, True)
        assert not group_alive(proc.pid)
    finally:
        with trio.CancelScope(shield=True):
            await proc.wait()
    assert (await kill_group(proc.pid, grace=0.2)).gone


async def test_process_identity() -> None:
    me = os.getpid()
    start = proc_start_time(me)
    assert start > 0
    assert is_same_process(me, start)
    assert not is_same_process(me, start + 1)
    assert not is_same_process(me, 0)
    assert proc_start_time(2**22 + 12345) == 0  # above pid_max: never a process
    assert become_subreaper()


# --- OutputWatcher (shared by every backend) ----------------------------------------------


def watcher(tmp_path: Path, **overrides: Any) -> tuple[OutputWatcher, list[str]]:
    lines: list[str] = []
    spec = make_spec(tmp_path, "", **overrides)
    return OutputWatcher(spec, clock=lambda: 0.0, on_line=lines.append), lines


def test_watcher_decodes_split_characters_and_tracks_lines(tmp_path: Path) -> None:
    w, lines = watcher(tmp_path, tail_lines=2)
    data = "héllo wörld\nsecond\nthird\npartial".encode()
    for i in range(len(data)):
        w.feed(data[i : i + 1])
    assert lines == ["héllo wörld", "second", "third"]
    assert w.tail == ["third", "partial"]
    assert w.output_bytes == len(data)
    w.close()
    assert lines[-1] == "partial"
    assert (tmp_path / "logs" / "deep" / "T-1.log").read_bytes() == data


def test_watcher_shows_the_last_redraw_of_a_line(tmp_path: Path) -> None:
    w, lines = watcher(tmp_path)
    w.feed(b"\x1b]0;title\x07 10%\r 50%\r\x1b[1mdone\x1b[0m\r\n")
    assert lines == ["done"]


def test_watcher_pattern_events(tmp_path: Path) -> None:
    w, _ = watcher(
        tmp_path,
        success_pattern=re.compile("OK"),
        failure_pattern=re.compile("FAIL"),
        input_pattern=re.compile(r"\? $"),
        answers=(Answer(expect=re.compile(r"\[y/N\]"), send="y\n"),),
    )
    assert w.feed(b"FAIL and OK\n") == [
        FailureMatched("FAIL and OK"),
        SuccessMatched("FAIL and OK"),
    ]
    assert w.feed(b"Proceed [y/N]") == [AnswerDue(send="y\n", line="Proceed [y/N]")]
    assert w.feed(b"? ") == [InputRequested("Proceed [y/N]? ")]
    assert w.feed(b"y\r\n") == []  # the same occurrences, now completed: nothing new
    again = [InputRequested("Again [y/N]? "), AnswerDue(send="y\n", line="Again [y/N]? ")]
    assert w.feed(b"Again [y/N]? ") == again
    assert w.feed(b"\rAgain [y/N]? ") == again  # a redraw is a new occurrence
    assert w.feed(b"\r\x1b[KAgain [y/N]? \rAgain [y/N]? ") == again  # one per chunk seen
    assert w.feed(b"\nOK") == []  # success is matched on complete lines only...
    assert w.close() == [SuccessMatched("OK")]  # ...including the last one


def test_watcher_matches_redacted_text(tmp_path: Path) -> None:
    w, lines = watcher(tmp_path, secrets=("OKAY-SECRET",), success_pattern=re.compile("OKAY"))
    assert w.feed(b"OKAY-SECRET\n") == []
    assert lines == ["***"]


def test_watcher_caps_a_line_without_newline(tmp_path: Path) -> None:
    w, _ = watcher(tmp_path, input_pattern=re.compile(r"\[y/N\] $"))
    for _ in range(40):
        assert w.feed(b"z" * 65536) == []
    assert w.feed(b" Proceed? [y/N] ") == [
        InputRequested("z" * (LINE_CAP - 16) + " Proceed? [y/N] ")
    ]
    assert len(w.tail[-1]) == LINE_CAP
    w.close()


def test_watcher_records_idle_clock_and_log_failures(tmp_path: Path) -> None:
    now = [5.0]
    spec = make_spec(tmp_path, "")
    w = OutputWatcher(spec, clock=lambda: now[0])
    assert w.last_output_at == 5.0
    now[0] = 7.0
    w.feed(b"x")
    assert w.last_output_at == 7.0
    w.close()
    assert w.feed(b"late") == []
    (tmp_path / "blocker").write_text("")
    with pytest.raises(OSError):  # noqa: PT011 - any OS error: the backend reports it as data
        OutputWatcher(make_spec(tmp_path, "", log_path=tmp_path / "blocker" / "x.log"))


def test_watcher_stops_logging_at_log_limit_and_goes_on_watching(tmp_path: Path) -> None:
    w, lines = watcher(tmp_path, log_limit=25, tail_lines=2)
    w.feed(b"0123456789\n" * 3)
    w.feed(b"done\n")
    events = w.close()
    assert events == []
    log = (tmp_path / "logs" / "deep" / "T-1.log").read_bytes()
    assert log.startswith(b"0123456789\n0123456789\n012\n[planrun: this log reached its limit")
    assert log.endswith(b"(settings.log_limit); the rest of the output is not logged]\n")
    assert lines == ["0123456789"] * 3 + ["done"]
    assert w.tail == ["0123456789", "done"]
    assert w.log_notes() == ["the log stops at settings.log_limit (25B)"]


async def test_unopenable_log_is_a_startup_failure(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("")
    spec = make_spec(tmp_path, "print(1)", log_path=tmp_path / "blocker" / "x.log")
    result = await run(spec)
    assert result.outcome is Outcome.STARTUP_FAILED
    assert "cannot open the log" in result.reason


async def test_a_silent_attempt_leaves_no_log_and_the_first_output_creates_it(
    tmp_path: Path,
) -> None:
    """No file creation for an attempt that prints nothing (a cost per task on ext4,
    bench/RESULTS.md, session 4): the log appears with the first output instead."""
    silent = make_spec(tmp_path, "pass", log_path=tmp_path / "logs" / "run" / "silent.log")
    assert (await run(silent)).outcome is Outcome.SUCCEEDED
    assert (tmp_path / "logs" / "run").is_dir()  # the folder is made, the file is not
    assert not silent.log_path.exists()
    talking = make_spec(tmp_path, "print('hi')", log_path=tmp_path / "logs" / "run" / "t.log")
    assert (await run(talking)).outcome is Outcome.SUCCEEDED
    assert talking.log_path.read_bytes() == b"hi\n"
    assert os.stat(talking.log_path).st_mode & 0o777 == 0o600


async def test_a_log_that_cannot_be_created_at_the_first_output_stops_logging_only(
    tmp_path: Path,
) -> None:
    """The folder was there at the start; the file cannot be made when output comes (here
    a folder sits where the log would go). The attempt goes on and says so."""
    spec = make_spec(tmp_path, "print('hi')")
    spec.log_path.mkdir(parents=True)
    result = await run(spec)
    assert result.outcome is Outcome.SUCCEEDED
    assert result.tail == ["hi"]
    assert "log writing failed: not a regular file (a folder)" in result.reason


async def test_no_descriptor_outlives_its_session(tmp_path: Path) -> None:
    """Matrix P3 for pipes: pipes, pidfds and logs of 200 sessions, ended every way (exit,
    stdin text, success pattern, timeout, a program that is not there), are all closed."""
    endings: list[dict[str, Any]] = [
        {"argv": ("true",)},
        {"argv": ("cat",), "stdin_text": "hello\n"},
        {"argv": ("sh", "-c", "echo done; sleep 30"), "success_pattern": re.compile("done")},
        {"argv": ("sleep", "30"), "timeout": 0.05},
        {"argv": ("no-such-program-here",)},
    ]
    await run(make_spec(tmp_path, "", argv=("true",)))  # what is opened once (/dev/null)
    baseline = len(os.listdir("/proc/self/fd"))
    outcomes = set()
    for i in range(200):
        spec = make_spec(tmp_path, "", log_path=tmp_path / "logs" / f"{i}.log", **endings[i % 5])
        outcomes.add((await run(spec)).outcome)
    assert outcomes == {
        Outcome.SUCCEEDED,
        Outcome.TIMED_OUT,
        Outcome.STARTUP_FAILED,
    }
    assert len(os.listdir("/proc/self/fd")) == baseline
