"""A question is a prompt the process waits on, not a phrase in its output (issue 13, item 6).

An agent's final result may quote the words of a question ("Do you want to proceed?"); an
agent that then exits successfully was not waiting for input. A match of ``input_pattern``
stands as a question only while the process is alive and has printed nothing more for
``question_quiet`` seconds; its exit, whatever the status, wins over a pending match.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from planrun.core.outcomes import Outcome
from planrun.plan.presets import PRESETS
from planrun.sessions.base import SessionResult, SessionSpec
from planrun.sessions.pty import PtySession
from planrun.sessions.subprocess import SubprocessSession
from planrun.sessions.tmux import TmuxSession
from tests import runs

CLAUDE_INPUT = str(PRESETS["claude"]["input_pattern"])
RESULT = json.dumps(
    {
        "type": "result",
        "subtype": "success",
        "is_error": False,
        "result": 'It printed "Do you want to proceed?" and I answered it: all done.',
        "usage": {"input_tokens": 10, "output_tokens": 5},
        "total_cost_usd": 0.001,
    }
)
#: Prints the final result quoting the question, lingers a little (as a CLI shutting down
#: does), then exits 0.
QUOTING = f"import time; print({RESULT!r}, flush=True); time.sleep(0.3)"
#: Asks, reads its stdin, gives up on end-of-file.
ASKS_THEN_QUITS = (
    "import sys; print('Do you want to proceed? [y/N] ', end='', flush=True);"
    " sys.exit(0 if sys.stdin.readline().strip() == 'y' else 2)"
)


def spec_for(tmp_path: Path, code: str, **overrides: Any) -> SessionSpec:
    fields: dict[str, Any] = {
        "name": "q.T.a1",
        "argv": (sys.executable, "-c", code),
        "cwd": tmp_path,
        "env": dict(os.environ),
        "log_path": tmp_path / "logs" / "T.log",
        "kill_grace": 0.3,
        "timeout": 20.0,
        "input_pattern": re.compile(CLAUDE_INPUT),
    }
    fields.update(overrides)
    return SessionSpec(**fields)


async def run_on(backend: str, spec: SessionSpec, request: pytest.FixtureRequest) -> SessionResult:
    asked: list[str] = []

    async def on_question(line: str) -> str | None:
        asked.append(line)
        return None

    if backend == "tmux":
        session: Any = TmuxSession(request.getfixturevalue("tmux_socket"))
    else:
        session = PtySession() if backend == "pty" else SubprocessSession()
    result = await session.run(spec, on_question=on_question)
    assert asked == [] or result.outcome is Outcome.NEEDS_INPUT
    return result


@pytest.mark.parametrize("backend", ["subprocess", "pty", "tmux"])
async def test_a_result_quoting_the_question_then_exiting_0_succeeds(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    result = await run_on(backend, spec_for(tmp_path, QUOTING), request)
    assert (result.outcome, result.question) == (Outcome.SUCCEEDED, None), result.reason


@pytest.mark.parametrize("backend", ["subprocess", "pty", "tmux"])
async def test_a_phrase_followed_by_more_output_is_no_question(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    """The phrase mid-output, then the program carries on printing and exits 1."""
    code = (
        "import sys, time\n"
        "print('the docs say: Do you want to proceed?', flush=True)\n"
        "for i in range(8):\n"
        "    print('working', i, flush=True); time.sleep(0.1)\n"
        "sys.exit(1)\n"
    )
    result = await run_on(backend, spec_for(tmp_path, code, question_quiet=0.5), request)
    assert (result.outcome, result.reason) == (Outcome.FAILED, "exit code 1")


async def test_a_question_the_process_waits_on_is_still_one(tmp_path: Path) -> None:
    code = "import time; print('Do you want to proceed? ', end='', flush=True); time.sleep(30)"
    started = trio.current_time()
    result = await SubprocessSession().run(spec_for(tmp_path, code, question_quiet=0.3))
    assert (result.outcome, result.question) == (Outcome.NEEDS_INPUT, "Do you want to proceed? ")
    assert trio.current_time() - started < 10


async def test_a_question_answered_by_end_of_file_fails_with_its_exit_and_says_so(
    tmp_path: Path,
) -> None:
    """On the subprocess backend stdin is /dev/null: a CLI that asks reads end-of-file and
    quits. Its exit decides; the reason shows what it asked."""
    result = await SubprocessSession().run(spec_for(tmp_path, ASKS_THEN_QUITS))
    assert result.outcome is Outcome.FAILED
    assert result.reason == (
        "exit code 2; its last output asked: Do you want to proceed? [y/N] "
        "(nothing answered it: the subprocess backend has no terminal)"
    )


def test_the_claude_preset_on_pty_finishes_a_task_whose_result_quotes_the_question(
    tmp_path: Path, clean_env: Path
) -> None:
    """The reported run: claude preset, pty backend, a final JSON result (is_error false,
    exit 0) quoting "Do you want to proceed?" was parked as needs_input, then failed."""
    # it lingers after its result (as a CLI that flushes and shuts down may), longer than
    # question_quiet: only the result being data keeps it from reading as a question
    (tmp_path / "agent.py").write_text(f"import sys, time\nprint({RESULT!r})\ntime.sleep(1.5)\n")
    plan = runs.write_plan(
        tmp_path,
        f"""\
version: 1
name: quoting
settings: {{env: {{inherit: [PATH]}}}}
providers:
  claude:
    preset: claude
    command: ["{sys.executable}", agent.py]
tasks:
  T: {{provider: claude, backend: pty, prompt: go, input_timeout: 500ms, timeout: 30s}}
""",
    )
    result = runs.apply(plan)
    report = json.loads((runs.last_run_folder(plan) / "report.json").read_text())
    [task] = report["tasks"]
    assert (result.returncode, task["status"]) == (0, "done"), task
    assert task["attempts"][0]["usage"]["cost_usd"] == 0.001
