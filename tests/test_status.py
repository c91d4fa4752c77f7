"""``planrun status``, ``logs`` and ``report`` against real applies (SPEC §6, §7).

The long task moves on only when the test creates a file (``go``, then ``stop``), so the
test observes each stage without sleeping.
"""

from __future__ import annotations

import io
import json
import queue
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree as ET

import jsonschema
import pytest

from planrun.cli import main
from planrun.report.model import report_json_schema
from tests import runs
from tests.runs import write_plan

PLAN = """\
version: 1
name: watch
tasks:
  QUICK: {run: [sh, -c, "echo quick"]}
  LONG:
    needs: [QUICK]
    run: [sh, -c, "echo first; while [ ! -e go ]; do sleep 0.02; done; echo second;
                   while [ ! -e stop ]; do sleep 0.02; done; echo third"]
  NEXT: {needs: [LONG], run: [echo, next]}
"""


def status_json(plan: Path) -> dict:  # type: ignore[type-arg]
    out = io.StringIO()
    assert main(["status", str(plan), "--json"], out=out) == 0
    return json.loads(out.getvalue())  # type: ignore[no-any-return]


def tasks_in(shown: dict) -> dict[str, dict]:  # type: ignore[type-arg]
    return {t["key"]: t for t in shown["tasks"]}


class Lines:
    """Lines a background process prints, collected by a thread, read with a deadline."""

    def __init__(self, stream: io.TextIOBase) -> None:
        self._queue: queue.Queue[str] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: io.TextIOBase) -> None:
        for line in stream:
            self._queue.put(line.rstrip("\n"))

    def next(self, timeout: float = 20.0) -> str:
        return self._queue.get(timeout=timeout)

    def join(self, timeout: float = 20.0) -> None:
        """Wait for the end of the stream (the process closed it)."""
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the stream did not end"


@pytest.fixture
def spawned() -> Iterator[list[runs.subprocess.Popen[str]]]:
    procs: list[runs.subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        runs.stop(proc)


def test_status_and_logs_follow_while_a_run_is_going(
    tmp_path: Path, clean_env: Path, spawned: list[runs.subprocess.Popen[str]]
) -> None:
    plan = write_plan(tmp_path, PLAN)
    apply = runs.spawn("apply", str(plan), "--progress", "plain", cwd=tmp_path)
    spawned.append(apply)

    def long_running() -> bool:
        if not (runs.state_of(plan) / "state.db").exists():
            return False
        out = io.StringIO()
        if main(["status", str(plan), "--json"], out=out) != 0:
            return False  # the store exists, the run is not recorded in it yet
        try:
            return tasks_in(json.loads(out.getvalue()))["LONG"]["status"] == "running"
        except (KeyError, json.JSONDecodeError):
            return False

    runs.wait_for(long_running, what="LONG to run")
    shown = status_json(plan)
    assert shown["run"]["status"] == "running"
    assert shown["run"]["ended_at"] is None
    assert shown["lock_holder"]["pid"] == apply.pid
    tasks = tasks_in(shown)
    assert tasks["QUICK"]["status"] == "done"
    assert tasks["QUICK"]["attempt"] == 1
    assert tasks["NEXT"] == {**tasks["NEXT"], "status": "pending", "reason": "new: never ran"}
    assert shown["counts"]["running"] == 1
    assert shown["counts"]["pending"] == 1
    text = io.StringIO()
    assert main(["status", str(plan)], out=text) == 0
    assert f"lock: held by pid {apply.pid}" in text.getvalue()
    assert "running for" in text.getvalue()

    follow = runs.spawn("logs", str(plan), "LONG", "--follow", cwd=tmp_path)
    spawned.append(follow)
    assert follow.stdout is not None
    lines = Lines(follow.stdout)  # type: ignore[arg-type]
    assert lines.next() == "first"
    (tmp_path / "go").touch()
    assert lines.next() == "second"
    assert follow.poll() is None  # LONG still runs: logs keeps following
    quitter = runs.spawn("logs", str(plan), "LONG", "-f", cwd=tmp_path)
    spawned.append(quitter)
    assert quitter.stdout is not None
    assert quitter.stdout.readline() == "first\n"
    quitter.send_signal(signal.SIGINT)
    quitter.communicate(timeout=20)
    assert quitter.returncode == 130  # Ctrl-C
    (tmp_path / "stop").touch()
    assert lines.next() == "third"
    lines.join()
    _, follow_err = follow.communicate(timeout=20)
    assert follow.returncode == 0, follow_err
    assert "attempt 1 of LONG ended: succeeded" in follow_err
    _, err = apply.communicate(timeout=30)
    assert apply.returncode == 0, err

    done = status_json(plan)
    assert done["run"]["status"] == "succeeded"
    assert done["lock_holder"] is None
    assert {t["status"] for t in done["tasks"]} == {"done"}
    out = io.StringIO()
    assert main(["logs", str(plan), "LONG"], out=out) == 0
    assert out.getvalue().split() == ["first", "second", "third"]


def test_report_regenerates_what_apply_wrote(tmp_path: Path, clean_env: Path) -> None:
    plan = write_plan(
        tmp_path,
        """\
version: 1
name: again
tasks:
  EPIC: {title: The epic}
  A: {parent: EPIC, title: "Step <a>", priority: 3, run: [sh, -c, "echo a-out"]}
  B: {needs: [A], run: [sh, -c, "echo b-out; exit 3"]}
  C: {needs: [B], run: [echo, c]}
""",
    )
    ours = tmp_path / "apply-summary.md"
    assert main(["apply", str(plan), "--progress", "none", "--summary", str(ours)]) == 1
    written = json.loads(next((runs.state_of(plan) / "runs").glob("*/report.json")).read_text())
    junit, summary, out = tmp_path / "j.xml", tmp_path / "s.md", tmp_path / "r.json"
    args = ["--json-out", str(out), "--junit", str(junit), "--summary", str(summary)]
    assert main(["report", str(plan), "--run", written["run_id"], *args]) == 0
    again = json.loads(out.read_text())
    jsonschema.validate(again, report_json_schema())
    same = ("run_id", "status", "exit_code", "counts", "plan", "planrun_version")
    assert {k: again[k] for k in same} == {k: written[k] for k in same}
    fields = (
        "key",
        "title",
        "kind",
        "status",
        "reason",
        "cause",
        "priority",
        "needs",
        "parent",
        "provider",
        "project",
    )
    assert [{f: t[f] for f in fields} for t in again["tasks"]] == [
        {f: t[f] for f in fields} for t in written["tasks"]
    ]
    assert all(t["fingerprint"] for t in again["tasks"] if t["kind"] == "work")
    attempt_fields = ("number", "outcome", "reason", "exit_code", "signal", "log_path", "tail")
    assert [[{f: a[f] for f in attempt_fields} for a in t["attempts"]] for t in again["tasks"]] == [
        [{f: a[f] for f in attempt_fields} for a in t["attempts"]] for t in written["tasks"]
    ]
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    assert suite.get("tests") == "3"
    assert suite.get("failures") == "1"
    assert mermaid(summary.read_text()) == mermaid(ours.read_text())
    assert "| `B` | ❌ failed | 1 |" in summary.read_text()


def mermaid(summary: str) -> str:
    return summary[summary.index("```mermaid") :]


def test_unknown_keys_runs_and_stores_are_usage_errors(
    tmp_path: Path, clean_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = write_plan(tmp_path, "version: 1\nname: small\ntasks:\n  ALPHA: {run: [echo, hi]}\n")
    assert main(["status", str(plan)]) == 2
    assert "no state store here yet" in capsys.readouterr().err
    assert main(["apply", str(plan), "--progress", "none"]) == 0
    assert main(["logs", str(plan), "ALPHA"], out=io.StringIO()) == 0
    assert main(["logs", str(plan), "ALPHO"]) == 2
    assert "no task 'ALPHO' in this plan's state (did you mean 'ALPHA'?)" in capsys.readouterr().err
    assert main(["logs", str(plan), "ALPHA", "--attempt", "2"]) == 1
    assert "no attempt 2 of ALPHA recorded yet" in capsys.readouterr().err
    assert main(["report", str(plan), "--run", "nope"]) == 2
    assert "--run nope: no such run" in capsys.readouterr().err
    out = io.StringIO()
    assert main(["status", "--state-dir", str(tmp_path / ".planrun"), "--json"], out=out) == 0
    assert json.loads(out.getvalue())["run"]["plan"] == "small"


def test_logs_of_a_task_that_never_ran_says_so_plainly(
    tmp_path: Path, clean_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = write_plan(
        tmp_path,
        "version: 1\nname: skip\ntasks:\n  A: {run: [sh, -c, 'exit 1']}\n"
        "  B: {needs: [A], run: [echo, b]}\n",
    )
    assert main(["apply", str(plan), "--progress", "none"]) == 1
    capsys.readouterr()
    assert main(["logs", str(plan), "B"]) == 1  # skipped: A failed
    assert capsys.readouterr().err == "planrun: no attempt of B recorded yet\n"


def test_a_tmux_task_outliving_a_dead_planrun_shows_as_running(
    tmp_path: Path,
    clean_env: Path,
    tmux_socket: str,
    spawned: list[runs.subprocess.Popen[str]],
) -> None:
    """planrun was killed; the tmux task's pane still runs (the next apply re-attaches to
    it) while the subprocess task's process is gone with its pipe's reader."""
    plan = write_plan(
        tmp_path,
        f"""\
version: 1
name: away
settings: {{tmux_socket: {tmux_socket}}}
tasks:
  PANE:
    backend: tmux
    run: [sh, -c, "echo $$ > pane.pid; until [ -e stop ]; do sleep 0.02; done"]
  PIPE:
    run: [sh, -c, "touch pipe.up; until [ -e stop ]; do echo tick; sleep 0.02; done"]
""",
    )
    pane = tmp_path / "pane.pid"
    apply = runs.spawn("apply", str(plan), "--progress", "plain", cwd=tmp_path)
    spawned.append(apply)
    runs.wait_for(lambda: pane.exists() and pane.read_text().strip(), what="the pane to run")
    runs.wait_for((tmp_path / "pipe.up").exists, what="the pipe task to run")
    state = runs.State(tmp_path / ".planrun")

    def recorded() -> bool:  # the pane's process is in the store (the pane may run first)
        events = state.events(plan="away")
        return any(e.kind == "attempt_process" and e.key == "PANE" for e in events)

    runs.wait_for(recorded, what="the pane's process to be recorded")
    runs.kill9(apply)
    try:
        shown = status_json(plan)
        assert shown["run"]["status"] == "interrupted"
        tasks = tasks_in(shown)
        assert tasks["PANE"]["status"] == "running"
        assert tasks["PANE"]["reason"] == "running (planrun exited; re-attached by the next apply)"
        assert tasks["PIPE"]["status"] == "cancelled"
        out = io.StringIO()
        assert main(["status", str(plan)], out=out) == 0
        assert "re-attached by the next apply" in out.getvalue()
    finally:
        (tmp_path / "stop").touch()
    runs.wait_for(lambda: not runs.alive(int(pane.read_text())), what="the pane to end")
    assert tasks_in(status_json(plan))["PANE"]["status"] == "cancelled"


def test_an_only_run_shows_the_tasks_it_covered(tmp_path: Path, clean_env: Path) -> None:
    plan = write_plan(
        tmp_path,
        """\
version: 1
name: part
tasks:
  A: {run: [echo, a]}
  B: {needs: [A], run: [echo, b]}
  C: {run: [echo, c]}
""",
    )
    assert main(["apply", str(plan), "--progress", "none", "--only", "B"]) == 0
    assert [t["key"] for t in status_json(plan)["tasks"]] == ["A", "B"]
    out = io.StringIO()
    assert main(["report", str(plan)], out=out) == 0
    assert [t["key"] for t in json.loads(out.getvalue())["tasks"]] == ["A", "B"]
    assert main(["apply", str(plan), "--progress", "none"]) == 0
    shown = tasks_in(status_json(plan))
    assert shown["C"]["status"] == "done"
    assert shown["C"]["reason"] == ""
    assert shown["A"]["reason"].startswith("up to date (done in run ")


@pytest.mark.parametrize(
    "text",
    [
        "version: 1\ntasks: {A: {run: [echo]}}\n",
        "version: 1\nname: n1\nsettings:\n  state_dir: st\ntasks: {A: {run: [echo]}}\n",
        "version: 1\ntasks: {A: {run: [echo]}}\nsettings: {max_concurrent: 2, state_dir: 'x y'}\n",
        '{"version": 1, "name": "flow", "tasks": {"A": {"run": ["echo"]}}}\n',
        "version: 1\n'name': quoted\n\"settings\": {state_dir: q}\ntasks: {A: {run: [echo]}}\n",
        "version: 1\nname: &n anch\nsettings: {state_dir: *n}\ntasks: {A: {run: [echo]}}\n",
        "version: 1\nsettings:\n  <<: {state_dir: merged}\ntasks: {A: {run: [echo]}}\n",
        "version: 1\nname: n2  # a comment\ntasks:\n  A: {run: [echo]}\nsettings: {}\n",
    ],
)
def test_plan_identity_agrees_with_the_loader(tmp_path: Path, text: str) -> None:
    from planrun.plan.load import load_plan
    from planrun.state.locate import plan_identity

    path = write_plan(tmp_path, text, "ident.yaml")
    plan = load_plan(path)
    assert plan_identity(path) == (plan.name, plan.settings.state_dir)
