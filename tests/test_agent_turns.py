"""Agent tasks through apply: verify with follow-up turns, questions, usage and budgets.

The agent here is a tiny script whose behaviour is spelled out in its prompt, so each test
reads as a conversation. (tests/fake_agent.py covers terminal behaviour for the backends.)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from planrun.cli import main
from planrun.core.outcomes import Status
from planrun.state.sqlite import Store
from tests.runs import last_run_folder, state_of

ROOT = Path(__file__).resolve().parent.parent

AGENT = r"""
import json, sys, time
prompt = sys.argv[-1]
with open("prompts.log", "a") as log:
    log.write(prompt.replace("\n", " ") + "\n")
for word in prompt.split():
    if word.startswith("WRITE="):
        name, text = word[6:].split(":", 1)
        open(name, "w").write(text + "\n")
    elif word == "ASK":  # asks, then waits for an answer that never comes through a pipe
        print("Proceed with the migration? [y/N]", flush=True)
        time.sleep(60)
    elif word.startswith("USAGE="):
        tin, tout, cost = word[6:].split(":")
        print(json.dumps({"type": "result", "subtype": "success", "is_error": False,
                          "result": "ok", "total_cost_usd": float(cost),
                          "usage": {"input_tokens": int(tin), "output_tokens": int(tout)}}))
    elif word == "ERROR":
        print(json.dumps({"type": "result", "subtype": "error_during_execution",
                          "is_error": True, "result": "API key rejected"}))
if "USAGE=" not in prompt and "ERROR" not in prompt.split():
    # like Claude Code's --output-format json: a result object always ends the output
    print(json.dumps({"type": "result", "subtype": "success", "is_error": False,
                      "result": "done", "usage": {"input_tokens": 1, "output_tokens": 1}}))
"""


@pytest.fixture
def agent_plan(tmp_path: Path, clean_env: Path) -> Iterator[Path]:
    (tmp_path / "agent.py").write_text(AGENT)
    return tmp_path


def plan_text(tasks: str, provider_extra: str = "") -> str:
    return f"""\
version: 1
name: agents
settings: {{env: {{inherit: [PATH]}}}}
providers:
  mini:
    command: ["{sys.executable}", agent.py]
    prompt_via: argv
    prompt_command: ["{sys.executable}", agent.py, "{{{{ prompt }}}}"]
    usage: claude-json
    input_pattern: "Proceed with the migration"
{provider_extra}
defaults: {{provider: mini}}
tasks:
{tasks}"""


def report_of(plan: Path) -> dict:  # type: ignore[type-arg]
    report = last_run_folder(plan) / "report.json"
    return json.loads(report.read_text())  # type: ignore[no-any-return]


def task_of(plan: Path, key: str) -> dict:  # type: ignore[type-arg]
    return next(t for t in report_of(plan)["tasks"] if t["key"] == key)


def test_a_failing_verify_gets_a_follow_up_turn(agent_plan: Path) -> None:
    plan = agent_plan / "plan.yaml"
    plan.write_text(
        plan_text("""\
  FIX:
    prompt: "WRITE=out.txt:value=1"
    verify: [sh, -c, "grep value=2 out.txt || { echo 'expected value=2'; exit 1; }"]
""")
    )
    # the follow-up prompt quotes the check's output; make the agent act on it
    (agent_plan / "agent.py").write_text(
        AGENT.replace(
            "for word in prompt.split():",
            'if "expected value=2" in prompt:\n    prompt += " WRITE=out.txt:value=2"\n'
            "for word in prompt.split():",
        )
    )
    assert main(["apply", str(plan), "--progress", "none"]) == 0
    task = task_of(plan, "FIX")
    assert task["status"] == "done"
    assert task["attempts"][0]["turns"] == 2
    prompts = (agent_plan / "prompts.log").read_text().splitlines()
    assert len(prompts) == 2
    assert "expected value=2" in prompts[1]
    assert "fix the problem" in prompts[1].lower()


def test_verify_failing_every_turn_fails_the_task(agent_plan: Path) -> None:
    plan = agent_plan / "plan.yaml"
    plan.write_text(
        plan_text("""\
  NEVER:
    prompt: "WRITE=out.txt:nope"
    max_turns: 2
    verify: [sh, -c, "exit 1"]
""")
    )
    assert main(["apply", str(plan), "--progress", "none"]) == 1
    task = task_of(plan, "NEVER")
    assert task["status"] == "failed"
    assert task["reason"].startswith("verify failed after 2 turns")


def test_a_follow_up_prompt_too_long_for_argv_fails_the_turn_with_its_reason(
    agent_plan: Path,
) -> None:
    """The follow-up quotes the failed check's output: three 60,000-character lines make a
    prompt_command argument over MAX_ARG_STRLEN. The attempt says so (not a bare E2BIG,
    not an error escaping the attempt)."""
    plan = agent_plan / "plan.yaml"
    plan.write_text(
        plan_text(f"""\
  LONG:
    prompt: "WRITE=out.txt:x"
    verify: ["{sys.executable}", -c, "print(('y' * 60000 + chr(10)) * 3); raise SystemExit(1)"]
""")
    )
    assert main(["apply", str(plan), "--progress", "none"]) == 1
    task = task_of(plan, "LONG")
    assert task["status"] == "failed"
    reason = "startup_failed: turn 2 could not start: argument 2 of provider mini's prompt_command"
    assert task["reason"].startswith(reason)
    assert "MAX_ARG_STRLEN" in task["reason"]
    assert len((agent_plan / "prompts.log").read_text().splitlines()) == 1  # no second turn


def test_usage_is_reported_and_a_budget_stops_further_turns(agent_plan: Path) -> None:
    plan = agent_plan / "plan.yaml"
    plan.write_text(
        plan_text("""\
  SPEND:
    prompt: "USAGE=1000:500:0.75"
    budget: {cost_usd: 0.5}
    max_turns: 5
    verify: [sh, -c, "exit 1"]
""")
    )
    assert main(["apply", str(plan), "--progress", "none"]) == 1
    report = report_of(plan)
    task = next(t for t in report["tasks"] if t["key"] == "SPEND")
    assert task["attempts"][0]["usage"] == {
        "input_tokens": 1000,
        "output_tokens": 500,
        "cost_usd": 0.75,
    }
    assert task["attempts"][0]["outcome"] == "budget_exceeded"
    assert "budget of $0.5 reached" in task["reason"]
    assert report["usage"]["cost_usd"] == 0.75
    assert len((agent_plan / "prompts.log").read_text().splitlines()) == 1


#: Like Claude Code with --continue: total_cost_usd is the session's running total.
RUNNING_TOTAL = """
import json, pathlib
state = pathlib.Path("session.json")
spent = json.loads(state.read_text())["spent"] if state.exists() else 0.0
spent += 0.3
state.write_text(json.dumps({"spent": spent}))
print(json.dumps({"type": "result", "subtype": "success", "is_error": False, "result": "ok",
                  "session_id": "s-1", "total_cost_usd": spent,
                  "usage": {"input_tokens": 100, "output_tokens": 10}}))
"""


def test_a_running_total_cost_is_counted_once_per_turn(agent_plan: Path) -> None:
    """Each turn costs $0.30 and reports the session's total (0.3, 0.6, 0.9): three turns
    fit a $0.70 budget (0.6 spent before the third); adding the totals up (0.3 + 0.6) would
    stop after two."""
    (agent_plan / "agent.py").write_text(RUNNING_TOTAL)
    plan = agent_plan / "plan.yaml"
    plan.write_text(
        plan_text("""\
  SPEND:
    prompt: "go"
    budget: {cost_usd: 0.7}
    max_turns: 3
    verify: [sh, -c, "exit 1"]
""")
    )
    assert main(["apply", str(plan), "--progress", "none"]) == 1
    task = task_of(plan, "SPEND")
    [attempt] = task["attempts"]
    assert attempt["turns"] == 3
    assert task["reason"].startswith("verify failed after 3 turns")
    assert attempt["usage"]["cost_usd"] == pytest.approx(0.9)
    assert attempt["usage"]["input_tokens"] == 300
    assert report_of(plan)["usage"]["cost_usd"] == pytest.approx(0.9)


def test_an_error_result_fails_an_agent_that_exits_zero(agent_plan: Path) -> None:
    plan = agent_plan / "plan.yaml"
    plan.write_text(plan_text('  OOPS: {prompt: "ERROR"}\n'))
    assert main(["apply", str(plan), "--progress", "none"]) == 1
    assert task_of(plan, "OOPS")["reason"] == (
        "the agent reported an error: error_during_execution: API key rejected"
    )


def test_a_missing_agent_command_is_a_startup_failure(agent_plan: Path) -> None:
    plan = agent_plan / "plan.yaml"
    plan.write_text(
        plan_text(
            '  GHOST: {provider: ghost, prompt: "hi"}\n',
            "  ghost: {command: [no-such-agent-cli], prompt_via: argv}",
        )
    )
    assert main(["apply", str(plan), "--progress", "none"]) == 1
    task = task_of(plan, "GHOST")
    assert task["attempts"][0]["outcome"] == "startup_failed"
    assert "no-such-agent-cli" in task["reason"]


def test_unanswered_question_fails_with_needs_input(agent_plan: Path) -> None:
    plan = agent_plan / "plan.yaml"
    plan.write_text(plan_text('  Q: {prompt: "ASK", input_timeout: 300ms}\n'))
    assert main(["apply", str(plan), "--progress", "none"]) == 1
    task = task_of(plan, "Q")
    assert task["status"] == "failed"
    assert task["attempts"][0]["outcome"] == "needs_input"
    assert "no answer within input_timeout" in task["reason"]


def test_a_question_is_answered_from_another_process(
    agent_plan: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = agent_plan / "plan.yaml"
    plan.write_text(
        plan_text(
            '  Q: {prompt: "ASK", input_timeout: 60s}\n  OTHER: {prompt: "WRITE=o.txt:x"}\n',
        ).replace("max_concurrent", "max_concurrent")
    )
    env = {**os.environ, "CI": "true", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "planrun", "apply", str(plan), "--progress", "plain", "-j", "1"],
        cwd=agent_plan,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_until_needs_input(state_of(plan) / "state.db", "Q")
        assert main(["answer", str(plan), "Q", "WRITE=answered.txt:yes"]) == 0
        said = capsys.readouterr().out
        assert said == f"answer queued for Q; the running apply (pid {proc.pid}) delivers it\n"
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert (agent_plan / "answered.txt").read_text() == "yes\n"
    assert (agent_plan / "o.txt").exists()  # ran in the slot Q gave up while it waited
    assert task_of(plan, "Q")["attempts"][0]["turns"] == 2


def test_an_answer_while_no_apply_runs_says_so_and_the_next_apply_gives_it(
    agent_plan: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = agent_plan / "plan.yaml"
    plan.write_text(plan_text('  Q: {prompt: "ASK", input_timeout: 60s}\n'))
    env = {**os.environ, "CI": "true", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "planrun", "apply", str(plan), "--progress", "none"],
        cwd=agent_plan,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_until_needs_input(state_of(plan) / "state.db", "Q")
    finally:
        proc.kill()  # planrun dies while Q waits for its answer
        proc.wait(timeout=30)
    assert main(["answer", str(plan), "Q", "WRITE=answered.txt:yes"]) == 0
    said = capsys.readouterr().out
    assert "the running apply" not in said
    assert said == (
        "answer queued for Q; no apply is running it (its apply is gone): the next "
        "`planrun apply plan.yaml` runs Q again and gives it this answer when it asks\n"
    )
    assert main(["apply", str(plan), "--progress", "none"]) == 0  # what was promised
    assert (agent_plan / "answered.txt").read_text() == "yes\n"


def _wait_until_needs_input(db: Path, key: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if db.exists():
            with Store.open(db, readonly=True) as store:
                row = store.task_states("agents").get(key)
            if row is not None and row.status is Status.NEEDS_INPUT:
                return
        time.sleep(0.05)
    raise AssertionError(f"{key} never reached needs_input")


def test_answer_refuses_a_task_that_is_not_waiting(
    agent_plan: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = agent_plan / "plan.yaml"
    plan.write_text(plan_text('  DONE: {prompt: "WRITE=d.txt:x"}\n'))
    assert main(["apply", str(plan), "--progress", "none"]) == 0
    assert main(["answer", str(plan), "DONE", "yes"]) == 2
    assert "DONE is done, not waiting for input" in capsys.readouterr().err
