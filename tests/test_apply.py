"""``planrun apply`` end to end, with real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree as ET

import jsonschema
import pytest

from planrun.cli import main
from tests import runs
from tests.runs import wait_for

ROOT = Path(__file__).resolve().parent.parent
REPORT_SCHEMA = json.loads((ROOT / "schemas" / "report.schema.json").read_text())


def write(tmp_path: Path, text: str, name: str = "plan.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def last_report(plan: Path) -> dict:  # type: ignore[type-arg]
    """The report of the plan's last run (by the state store's order of runs)."""
    report = json.loads((runs.last_run_folder(plan) / "report.json").read_text())
    jsonschema.validate(report, REPORT_SCHEMA)
    return report  # type: ignore[no-any-return]


def tasks_of(report: dict) -> dict[str, dict]:  # type: ignore[type-arg]
    return {t["key"]: t for t in report["tasks"]}


_spawned: list[subprocess.Popen[str]] = []


def spawn_apply(plan: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "CI": "true", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "planrun", "apply", str(plan), "--progress", "plain", *args],
        cwd=plan.parent,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _spawned.append(proc)
    return proc


@pytest.fixture(autouse=True)
def _reap_spawned() -> Iterator[None]:
    """A failing test must not leave its planrun (and its tasks) running."""
    yield
    while _spawned:
        runs.stop(_spawned.pop())


PLAN = """\
version: 1
name: e2e
settings: {max_concurrent: 2}
tasks:
  A: {run: [sh, -c, "echo from-a"]}
  B: {run: [sh, -c, "echo from-b >&2; exit 4"]}
  C: {run: [echo, c], needs: [B]}
  D: {run: [echo, d], needs: [A]}
"""


def test_exit_code_report_junit_and_summary(tmp_path: Path, clean_env: Path) -> None:
    plan = write(tmp_path, PLAN)
    junit, summary = tmp_path / "junit.xml", tmp_path / "summary.md"
    summary.write_text("# earlier content\n")
    rc = main(
        [
            "apply",
            str(plan),
            "--progress",
            "none",
            "--junit",
            str(junit),
            "--summary",
            str(summary),
            "--report",
            str(tmp_path / "r.json"),
        ]
    )
    assert rc == 1
    report = last_report(plan)
    assert json.loads((tmp_path / "r.json").read_text()) == report
    tasks = tasks_of(report)
    assert report["status"] == "failed"
    assert report["exit_code"] == 1
    assert tasks["A"]["status"] == "done"
    assert tasks["A"]["attempts"][0]["tail"] == ["from-a"]
    assert tasks["B"]["status"] == "failed"
    assert tasks["B"]["reason"] == "exit code 4"
    assert tasks["B"]["attempts"][0]["exit_code"] == 4
    assert tasks["C"]["status"] == "skipped"
    assert tasks["C"]["reason"] == "need B failed"
    assert report["counts"]["done"] == 2
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    assert suite.get("tests") == "4"
    assert suite.get("failures") == "1"
    failure = suite.find("testcase[@name='B']/failure")
    assert failure is not None
    assert "from-b" in (failure.text or "")
    text = summary.read_text()
    assert text.startswith("# earlier content\n")
    assert "```mermaid" in text
    assert "| `B` |" in text


def test_success_is_exit_zero_and_hooks_see_the_context(tmp_path: Path, clean_env: Path) -> None:
    plan = write(
        tmp_path,
        """\
version: 1
name: hooks
hooks:
  on_run_start: [[sh, -c, 'echo "start $PLANRUN_RUN_ID" >> hooks.txt']]
  on_task_success:
    - shell: 'echo "ok $PLANRUN_TASK_KEY $PLANRUN_STATUS $PLANRUN_ATTEMPT" >> hooks.txt'
  on_run_end: [[sh, -c, 'echo "end $PLANRUN_STATUS" >> hooks.txt']]
tasks:
  ONE: {run: ["true"]}
""",
    )
    assert main(["apply", str(plan), "--progress", "none"]) == 0
    lines = (tmp_path / "hooks.txt").read_text().splitlines()
    report = last_report(plan)
    assert lines == [f"start {report['run_id']}", "ok ONE done 1", "end succeeded"]


def test_a_failing_task_start_hook_fails_the_attempt(tmp_path: Path, clean_env: Path) -> None:
    plan = write(
        tmp_path,
        """\
version: 1
tasks:
  T:
    run: [touch, ran]
    hooks: {on_task_start: [[sh, -c, "exit 7"]]}
""",
    )
    assert main(["apply", str(plan), "--progress", "none"]) == 1
    task = tasks_of(last_report(plan))["T"]
    assert task["status"] == "failed"
    assert "on_task_start hook" in task["reason"]
    assert not (tmp_path / "ran").exists()


def test_hook_failures_are_in_the_report_and_leave_the_task_done(
    tmp_path: Path, clean_env: Path
) -> None:
    plan = write(
        tmp_path,
        """\
version: 1
hooks:
  on_run_end: [[sh, -c, "echo end hook broke; exit 4"]]
tasks:
  T:
    run: [touch, ran]
    hooks: {on_task_success: [[sh, -c, "echo success hook broke; exit 3"]]}
""",
    )
    assert main(["apply", str(plan), "--progress", "none"]) == 0
    report = last_report(plan)  # validated against schemas/report.schema.json
    assert tasks_of(report)["T"]["status"] == "done"
    success, end = report["hook_failures"]
    assert (success["moment"], success["task"]) == ("on_task_success", "T")
    assert "exit code 3" in success["reason"]
    assert success["tail"][-1] == "success hook broke"
    assert (end["moment"], end["task"]) == ("on_run_end", None)
    assert "exit code 4" in end["reason"]


def test_environment_is_an_allow_list_and_secrets_are_redacted(
    tmp_path: Path, clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("API_TOKEN", "s3cr3t-t0ken-value")
    monkeypatch.setenv("NOT_ALLOWED", "leak")
    plan = write(
        tmp_path,
        """\
version: 1
settings:
  env: {inherit: [PATH], set: {GREETING: hello}}
  secrets: [API_TOKEN]
tasks:
  T:
    secrets: [API_TOKEN]
    run: [sh, -c, 'env | sort > env.txt; echo "token is $API_TOKEN"']
""",
    )
    assert main(["apply", str(plan), "--progress", "none"]) == 0
    env = dict(line.split("=", 1) for line in (tmp_path / "env.txt").read_text().splitlines())
    assert env["GREETING"] == "hello"
    assert env["API_TOKEN"] == "s3cr3t-t0ken-value"
    assert "NOT_ALLOWED" not in env
    assert "HOME" not in env
    assert env["PLANRUN_TASK_KEY"] == "T"
    assert env["PLANRUN_ATTEMPT"] == "1"
    report = last_report(plan)
    log = Path(tasks_of(report)["T"]["attempts"][0]["log_path"]).read_text()
    assert "s3cr3t-t0ken-value" not in log
    assert "token is ***" in log
    assert "s3cr3t" not in json.dumps(report)


def test_invalid_plan_exits_2_before_any_side_effect(
    tmp_path: Path, clean_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = write(tmp_path, "version: 1\ntasks:\n  A: {run: [x], needz: [B]}\n")
    assert main(["apply", str(plan)]) == 2
    assert "plan.yaml:3:17: unknown key 'needz' (did you mean 'needs'?)" in capsys.readouterr().err
    assert not (tmp_path / ".planrun").exists()


def test_unknown_only_key_is_a_usage_error(
    tmp_path: Path, clean_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = write(tmp_path, PLAN)
    assert main(["apply", str(plan), "--only", "AA"]) == 2
    assert "--only AA: no such task (did you mean 'A'?)" in capsys.readouterr().err


def test_events_stream_as_json_lines(tmp_path: Path, clean_env: Path) -> None:
    plan = write(tmp_path, PLAN)
    events = tmp_path / "events.jsonl"
    main(["apply", str(plan), "--progress", "none", "--events", str(events)])
    kinds = [json.loads(line)["kind"] for line in events.read_text().splitlines()]
    assert kinds[0] == "run_started"
    assert kinds[-1] == "run_finished"
    assert {"attempt_started", "attempt_finished", "task_finished", "output"} <= set(kinds)


def test_dry_run_runs_nothing(tmp_path: Path, clean_env: Path) -> None:
    plan = write(tmp_path, "version: 1\ntasks:\n  T: {run: [touch, made]}\n")
    assert main(["apply", str(plan), "--dry-run", "--progress", "none"]) == 0
    assert not (tmp_path / "made").exists()


def test_timeout_kills_the_whole_group(tmp_path: Path, clean_env: Path) -> None:
    plan = write(
        tmp_path,
        """\
version: 1
settings: {kill_grace: 500ms}
tasks:
  T:
    timeout: 1s
    run: [sh, -c, "(trap '' TERM; sleep 60) & echo $! > child.pid; sleep 60"]
""",
    )
    assert main(["apply", str(plan), "--progress", "none"]) == 1
    task = tasks_of(last_report(plan))["T"]
    assert task["attempts"][0]["outcome"] == "timed_out"
    child = int((tmp_path / "child.pid").read_text())
    wait_for(
        lambda: (
            not Path(f"/proc/{child}").exists()
            or "Z" in Path(f"/proc/{child}/stat").read_text().split(")")[-1][:3]
        ),
        what="the TERM-ignoring grandchild to die",
    )


def test_first_signal_stops_gracefully_with_exit_130(tmp_path: Path, clean_env: Path) -> None:
    plan = write(
        tmp_path,
        """\
version: 1
hooks:
  on_run_end: [[sh, -c, 'echo "$PLANRUN_STATUS" > end.txt']]
tasks:
  LONG: {run: [sh, -c, "echo started > started.txt; sleep 60"]}
  NEXT: {run: [touch, next], needs: [LONG]}
""",
    )
    proc = spawn_apply(plan)
    wait_for(lambda: (tmp_path / "started.txt").exists(), what="the task to start")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    report = last_report(plan)
    assert report["status"] == "interrupted"
    assert tasks_of(report)["LONG"]["status"] == "cancelled"
    assert tasks_of(report)["NEXT"]["status"] == "cancelled"
    assert (tmp_path / "end.txt").read_text().strip() == "interrupted"
    assert not (tmp_path / "next").exists()


def test_second_signal_kills_at_once(tmp_path: Path, clean_env: Path) -> None:
    plan = write(
        tmp_path,
        """\
version: 1
settings: {kill_grace: 60s}
tasks:
  STUBBORN:
    run: [sh, -c, "trap 'echo term > term.txt' TERM; echo up > up.txt; while :; do sleep 0.1; done"]
""",
    )
    proc = spawn_apply(plan)
    wait_for(lambda: (tmp_path / "up.txt").exists(), what="the task to start")
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    # trio coalesces a signal repeated before it is read: wait until the first took effect
    wait_for(lambda: (tmp_path / "term.txt").exists(), what="the task to get SIGTERM")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert time.monotonic() - started < 20  # far less than the 60 s grace
    assert tasks_of(last_report(plan))["STUBBORN"]["status"] == "cancelled"


def test_a_second_apply_on_the_same_state_exits_3(tmp_path: Path, clean_env: Path) -> None:
    plan = write(
        tmp_path,
        """\
version: 1
tasks:
  LONG: {run: [sh, -c, "echo up > up.txt; sleep 60"]}
""",
    )
    first = spawn_apply(plan)
    try:
        wait_for(lambda: (tmp_path / "up.txt").exists(), what="the first apply to run")
        second = spawn_apply(plan)
        _, err = second.communicate(timeout=30)
        assert second.returncode == 3, err
        assert f"pid {first.pid}" in err
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=30)
