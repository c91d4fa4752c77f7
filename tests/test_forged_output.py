"""Matrix X6 and X8: a task's output is data. It cannot change planrun's state, reach the
user's terminal as control sequences, or leak a secret into the report; the report is
private.

The task prints a forged status marker, a line shaped like a journal record, an OSC 52
clipboard write, ``\\r`` overwrites, ``::add-mask::`` and its secret, then fails. planrun
runs as a real process with ``--progress plain`` (what CI shows) and ``--events -``.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests import runs

SECRET = "hunter2-very-secret-value"
FORGED = r"""
printf '::planrun-status::succeeded\n'
printf '{"seq":1,"op":"task_done","args":{"key":"T"}}\n'
printf 'copy \033]52;c;ZXZpbA==\007 me\n'
printf 'progress 10%%\rprogress 100%%\n'
printf '::add-mask::nothing\n'
printf 'the token is %s\n' "$API_TOKEN"
printf '\033[2J\033[Hcleared?\n'
exit 1
"""


def test_output_cannot_forge_state_control_the_terminal_or_leak_a_secret(
    tmp_path: Path, clean_env: Path
) -> None:
    plan = runs.write_plan(
        tmp_path,
        f"""\
version: 1
name: forged
settings:
  env: {{inherit: [PATH]}}
  secrets: [API_TOKEN]
tasks:
  T:
    secrets: [API_TOKEN]
    run: [sh, -c, {json.dumps(FORGED)}]
  AFTER: {{needs: [T], run: [sh, -c, "echo must not run > after.txt"]}}
""",
    )
    env = runs.environment(API_TOKEN=SECRET)
    done = subprocess.run(
        [*runs.PLANRUN, "apply", str(plan), "--progress", "plain", "--events", "-"],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    console = done.stdout + done.stderr

    # nothing the task printed changed planrun's view of it
    state = runs.State(tmp_path / ".planrun")
    (run,) = state.runs("forged")
    tasks = state.tasks(run.id)
    assert tasks["T"].status.value == "failed"
    assert tasks["AFTER"].status.value == "skipped"
    assert not (tmp_path / "after.txt").exists()

    # no control sequence reaches the terminal, no secret reaches anything
    assert b"copy  me" in console  # the output did reach the console, as text
    assert b"\x1b" not in console
    assert b"\x07" not in console
    folder = runs.last_run_folder(plan)
    report_path = folder / "report.json"
    report_bytes = report_path.read_bytes()
    report = json.loads(report_bytes)  # valid JSON, control characters escaped
    assert SECRET.encode() not in console
    assert SECRET.encode() not in report_bytes
    log = Path(report["tasks"][0]["attempts"][0]["log_path"])
    assert SECRET.encode() not in log.read_bytes()
    assert "the token is ***" in report["tasks"][0]["attempts"][0]["tail"]
    assert os.stat(report_path).st_mode & 0o777 == 0o600  # X8: the report is private
