"""No file planrun opens may block it: a task that turns its own log path into a FIFO.

The log of an attempt is created by its first output (``$PLANRUN_LOG`` tells the task where).
A task that makes that path a FIFO first used to block planrun in ``open()`` for ever (no
signal, no timeout could end it). planrun refuses to log into anything but a regular file:
the attempt runs on, its output unlogged, and its reason says so (issue 13, item 4).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests import runs

#: A FIFO at $PLANRUN_LOG before the first output; with a reader, a plain non-blocking open
#: for writing would succeed (only the fstat check refuses it).
MAKE_FIFO = 'mkfifo "$PLANRUN_LOG"; '
WITH_READER = MAKE_FIFO + '(cat "$PLANRUN_LOG" > copied &); '


def _task(plan: Path, key: str) -> dict:  # type: ignore[type-arg]
    report = json.loads((runs.last_run_folder(plan) / "report.json").read_text())
    return next(t for t in report["tasks"] if t["key"] == key)  # type: ignore[no-any-return]


@pytest.mark.parametrize("prelude", [MAKE_FIFO, WITH_READER], ids=["no-reader", "reader"])
def test_a_fifo_at_the_log_path_neither_blocks_nor_gets_the_output(
    tmp_path: Path, clean_env: Path, prelude: str
) -> None:
    plan = runs.write_plan(
        tmp_path,
        f"""\
version: 1
name: fifo
tasks:
  T:
    timeout: 10s
    run: [sh, -c, '{prelude}echo hello; echo bye']
""",
    )
    try:
        result = runs.planrun("apply", str(plan), "--progress", "plain", cwd=tmp_path, timeout=25)
    except subprocess.TimeoutExpired:
        pytest.fail("planrun blocked opening a FIFO at the task's log path")
    assert result.returncode == 0, result.stderr
    task = _task(plan, "T")
    [attempt] = task["attempts"]
    assert attempt["outcome"] == "succeeded"
    assert "log writing failed" in attempt["reason"]
    assert "not a regular file" in attempt["reason"]
    assert attempt["tail"] == ["hello", "bye"]
    assert not (tmp_path / "copied").exists() or (tmp_path / "copied").read_text() == ""


def test_an_agent_log_made_a_fifo_does_not_block_the_usage_reading(
    tmp_path: Path, clean_env: Path
) -> None:
    """Usage is read back from the log after the turn: that open must not block either."""
    plan = runs.write_plan(
        tmp_path,
        """\
version: 1
name: fifo-usage
providers:
  agent:
    command: [sh, -c, 'mkfifo "$PLANRUN_LOG"; echo "{\\"type\\": \\"result\\"}"', agent]
    prompt_via: argv
    usage: claude-json
tasks:
  T: {provider: agent, prompt: hello, timeout: 10s}
""",
    )
    try:
        result = runs.planrun("apply", str(plan), "--progress", "plain", cwd=tmp_path, timeout=25)
    except subprocess.TimeoutExpired:
        pytest.fail("planrun blocked reading usage from a FIFO at the task's log path")
    assert result.returncode == 0, result.stderr
    [attempt] = _task(plan, "T")["attempts"]
    assert attempt["outcome"] == "succeeded"
    assert "not a regular file" in attempt["reason"]


def test_logs_of_a_fifo_log_says_so_instead_of_blocking(tmp_path: Path, clean_env: Path) -> None:
    plan = runs.write_plan(
        tmp_path,
        f"""\
version: 1
name: fifo
tasks:
  T: {{timeout: 10s, run: [sh, -c, '{MAKE_FIFO}echo hello']}}
""",
    )
    assert runs.apply(plan).returncode == 0
    for follow in ([], ["--follow"]):
        try:
            shown = runs.planrun("logs", str(plan), "T", *follow, cwd=tmp_path, timeout=25)
        except subprocess.TimeoutExpired:
            pytest.fail("planrun logs blocked opening a FIFO")
        assert shown.returncode == 2, shown.stderr
        assert "is not a regular file" in shown.stderr


def test_an_answer_path_that_is_a_fifo_is_not_read(tmp_path: Path) -> None:
    import os

    import trio

    from planrun.run.inbox import answer_path, wait_for_answer

    path = answer_path(tmp_path, "Q")
    path.parent.mkdir(parents=True)
    os.mkfifo(path)
    assert trio.run(wait_for_answer, tmp_path, "Q", 0.5) is None  # returns, never blocks
    assert path.exists()  # left as it is
