"""No process outlives its task (SPEC §4), escapees included: real `planrun apply` runs.

A process that calls ``setsid`` leaves its task's process group, so no group signal reaches
it; planrun finds it by the session token in its environment once it is re-parented to
planrun (a subreaper), and ends it with the task (matrix S5, S10, R3). One that also cleared
its environment is found as an orphan among planrun's children (issue 13, item 11). A second
signal kills hooks too, and no hook starts after it (matrix S2).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests import procs, runs
from tests.runs import wait_for

#: ``sh escape.sh NAME CMD...``: start CMD in a session of its own and return once it is
#: there, with its pid in NAME (written after setsid: waiting on ``$!`` instead raced the
#: task's exit, and an escapee not yet out of the group is killed with the group).
ESCAPE_SH = """\
name=$1; shift
setsid sh -c 'echo $$ > "$0.tmp" && mv "$0.tmp" "$0"; exec "$@"' "$name" "$@" &
until [ -s "$name" ]; do sleep 0.01; done
"""
ESCAPE = "sh escape.sh {name} sleep 300; "


def _escape_script(folder: Path) -> None:
    (folder / "escape.sh").write_text(ESCAPE_SH)


def _report(plan: Path) -> dict:  # type: ignore[type-arg]
    report = runs.last_run_folder(plan) / "report.json"
    return json.loads(report.read_text())  # type: ignore[no-any-return]


def _attempts(plan: Path, key: str) -> list[dict]:  # type: ignore[type-arg]
    task = next(t for t in _report(plan)["tasks"] if t["key"] == key)
    return task["attempts"]  # type: ignore[no-any-return]


def _pid(path: Path) -> int:
    return int(path.read_text().split()[0])


@contextlib.contextmanager
def _killing(*paths: Path):  # type: ignore[no-untyped-def]
    """Kill the pids written to ``paths`` on the way out, should a test fail."""
    try:
        yield
    finally:
        for path in paths:
            with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
                os.kill(_pid(path), signal.SIGKILL)


@pytest.mark.parametrize("backend", ["subprocess", "pty", "tmux"])
def test_a_setsid_escapee_ends_with_its_task(
    tmp_path: Path, clean_env: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    settings = ""
    if backend == "tmux":
        settings = f"settings: {{tmux_socket: {request.getfixturevalue('tmux_socket')}}}\n"
    escape = ESCAPE.format(name="esc.pid")
    _escape_script(tmp_path)
    plan = runs.write_plan(
        tmp_path,
        f"""\
version: 1
name: escape
{settings}tasks:
  T:
    backend: {backend}
    run: [sh, -c, "{escape}sleep 0.1; echo finished"]
""",
    )
    with _killing(tmp_path / "esc.pid"):
        result = runs.apply(plan)
        assert result.returncode == 0, result.stderr
        escapee = _pid(tmp_path / "esc.pid")
        assert not procs.alive(escapee)
        [attempt] = _attempts(plan, "T")
        assert attempt["outcome"] == "succeeded"
        assert "1 process that had left its process group was killed" in attempt["reason"]


#: ``setsid env -i``: a session of its own and no environment (no PLANRUN_SESSION token);
#: its descriptors lead elsewhere too, so nothing it holds points back at the task.
BARE_ESCAPE = (
    "setsid env -i sh -c 'echo $$ > bare.tmp; mv bare.tmp bare.pid; exec sleep 300'"
    " </dev/null >/dev/null 2>&1 & until [ -s bare.pid ]; do sleep 0.01; done; "
)

#: ``os.environ.clear()`` then a classic double fork (setsid between the forks), the
#: descriptors on /dev/null, and an exec with the emptied environment.
DAEMON_PY = """\
import os, sys, time
os.environ.clear()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        with open("daemon.tmp", "w") as f:
            f.write(str(os.getpid()))
        os.rename("daemon.tmp", "daemon.pid")
        os.execvp("sleep", ["sleep", "300"])
    os._exit(0)
while not os.path.exists("daemon.pid"):
    time.sleep(0.01)
print("started a daemon")
"""


@pytest.mark.parametrize("backend", ["subprocess", "pty", "tmux"])
def test_an_escapee_without_environment_ends_with_its_task(
    tmp_path: Path, clean_env: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    settings = ""
    if backend == "tmux":
        settings = f"settings: {{tmux_socket: {request.getfixturevalue('tmux_socket')}}}\n"
    plan = runs.write_plan(
        tmp_path,
        f"""\
version: 1
name: bare
{settings}tasks:
  T:
    backend: {backend}
    run: [sh, -c, "{BARE_ESCAPE}echo finished"]
""",
    )
    with _killing(tmp_path / "bare.pid"):
        result = runs.apply(plan)
        assert result.returncode == 0, result.stderr
        assert not procs.alive(_pid(tmp_path / "bare.pid"))
        [attempt] = _attempts(plan, "T")
        assert attempt["outcome"] == "succeeded"
        assert "1 process that had left its process group was killed" in attempt["reason"]


def test_a_double_forked_daemon_that_cleared_its_environment_ends_with_its_task(
    tmp_path: Path, clean_env: Path
) -> None:
    (tmp_path / "daemon.py").write_text(DAEMON_PY)
    plan = runs.write_plan(
        tmp_path,
        f"""\
version: 1
name: daemon
tasks:
  T: {{run: [{sys.executable}, daemon.py]}}
""",
    )
    with _killing(tmp_path / "daemon.pid"):
        result = runs.apply(plan)
        assert result.returncode == 0, result.stderr
        assert not procs.alive(_pid(tmp_path / "daemon.pid"))


def test_an_escapee_without_environment_ends_with_a_task_that_timed_out(
    tmp_path: Path, clean_env: Path
) -> None:
    """The task is still running when it ends (its timeout): the escapee is its child then,
    and is re-parented to planrun only when the task's group is killed."""
    plan = runs.write_plan(
        tmp_path,
        f"""\
version: 1
name: slow
settings: {{kill_grace: 0.5s}}
tasks:
  T: {{timeout: 1s, run: [sh, -c, "{BARE_ESCAPE}sleep 300"]}}
""",
    )
    with _killing(tmp_path / "bare.pid"):
        result = runs.apply(plan)
        assert result.returncode == 1, result.stderr
        assert not procs.alive(_pid(tmp_path / "bare.pid"))
        [attempt] = _attempts(plan, "T")
        assert attempt["outcome"] == "timed_out"


def test_an_orphan_of_one_of_two_concurrent_tasks_ends_with_them_and_spares_the_other(
    tmp_path: Path, clean_env: Path
) -> None:
    """Which running task an orphan without token came from cannot be told: it is ended once
    every task that ran when it was found has ended. The other task's own processes (a
    child of its leader, in its group) are never taken for it."""
    plan = runs.write_plan(
        tmp_path,
        f"""\
version: 1
name: two
tasks:
  LEAVES: {{run: [sh, -c, "{BARE_ESCAPE}echo left"]}}
  WORKS:
    run:
      - sh
      - -c
      - >-
        sleep 300 & echo $! > helper.pid; until [ -s bare.pid ]; do sleep 0.01; done;
        sleep 0.5; kill -0 $(cat helper.pid) && echo helper alive; kill $(cat helper.pid)
""",
    )
    with _killing(tmp_path / "bare.pid", tmp_path / "helper.pid"):
        result = runs.apply(plan)
        assert result.returncode == 0, result.stderr
        assert not procs.alive(_pid(tmp_path / "bare.pid"))
        [works] = _attempts(plan, "WORKS")
        assert works["tail"][-1] == "helper alive"


def test_escapees_of_escapees_end_too(tmp_path: Path, clean_env: Path) -> None:
    _escape_script(tmp_path)
    plan = runs.write_plan(
        tmp_path,
        """\
version: 1
name: nested
tasks:
  T:
    run:
      - sh
      - -c
      - >-
        sh escape.sh outer.pid sh -c 'sh escape.sh inner.pid sleep 300; sleep 300';
        until [ -s inner.pid ]; do sleep 0.01; done
""",
    )
    with _killing(tmp_path / "outer.pid", tmp_path / "inner.pid"):
        result = runs.apply(plan)
        assert result.returncode == 0, result.stderr
        assert not procs.alive(_pid(tmp_path / "outer.pid"))
        assert not procs.alive(_pid(tmp_path / "inner.pid"))


def test_the_next_attempt_starts_after_the_escapee_of_the_last_one_died(
    tmp_path: Path, clean_env: Path
) -> None:
    # attempt 1 leaves an escapee that ignores SIGTERM and fails; attempt 2 looks for it
    _escape_script(tmp_path)
    plan = runs.write_plan(
        tmp_path,
        """\
version: 1
name: retry
settings: {kill_grace: 0.3s}
tasks:
  T:
    retry: {attempts: 2, on: [failed], backoff: {initial: 0.01s}}
    run:
      shell: |
        if [ "$PLANRUN_ATTEMPT" = 1 ]; then
          sh escape.sh esc.pid sh -c 'trap "" TERM; exec sleep 300'
          exit 1
        fi
        if kill -0 "$(cat esc.pid)" 2>/dev/null; then echo alive > seen; else echo gone > seen; fi
""",
    )
    with _killing(tmp_path / "esc.pid"):
        result = runs.apply(plan)
        assert result.returncode == 0, result.stderr
        assert (tmp_path / "seen").read_text().strip() == "gone"
        first, second = _attempts(plan, "T")
        assert "left its process group was killed" in first["reason"]
        assert second["outcome"] == "succeeded"


def test_orphans_a_task_left_are_reaped_while_the_run_goes_on(
    tmp_path: Path, clean_env: Path
) -> None:
    """Processes re-parented to planrun become its zombies when killed; none may stay."""
    census = (
        "import os, pathlib; me = os.getppid(); kids = set();\n"
        "for t in os.listdir(f'/proc/{me}/task'):\n"
        "    kids |= set(pathlib.Path(f'/proc/{me}/task/{t}/children').read_text().split())\n"
        "states = [pathlib.Path(f'/proc/{k}/stat').read_text().rsplit(')', 1)[1].split()[0]"
        " for k in kids if os.path.exists(f'/proc/{k}/stat')]\n"
        "print(states.count('Z'))\n"
    )
    plan = runs.write_plan(
        tmp_path,
        f"""\
version: 1
name: zombies
tasks:
  LITTER:
    run: [sh, -c, "for i in 1 2 3 4 5; do sleep 300 & done; exit 0"]
  COUNT:
    needs: [LITTER]
    run: [{sys.executable}, -c, {json.dumps(census)}]
""",
    )
    result = runs.apply(plan)
    assert result.returncode == 0, result.stderr
    log = next((runs.state_of(plan) / "logs").glob("*/COUNT.attempt-1.log")).read_text()
    assert log.split()[-1] == "0", log


def test_a_second_signal_kills_running_hooks_and_starts_none(
    tmp_path: Path, clean_env: Path
) -> None:
    plan = runs.write_plan(
        tmp_path,
        """\
version: 1
name: hooks
settings: {kill_grace: 60s}
hooks:
  on_run_end: [[sh, -c, "echo ran > run_end_ran; sleep 300"]]
tasks:
  T:
    run: [sh, -c, "echo up > up; sleep 300"]
    hooks:
      on_task_failure: [[sh, -c, "echo $$ > hook.pid; sleep 300"]]
""",
    )
    proc = subprocess.Popen(
        [*runs.PLANRUN, "apply", str(plan), "--progress", "plain"],
        cwd=tmp_path,
        env=runs.environment(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    with _killing(tmp_path / "hook.pid"):
        try:
            wait_for(lambda: (tmp_path / "up").exists(), what="the task to start")
            proc.send_signal(signal.SIGINT)  # T is cancelled (sleep dies of SIGTERM)
            wait_for(lambda: (tmp_path / "hook.pid").exists(), what="the failure hook")
            hook = _pid(tmp_path / "hook.pid")
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=30)  # far less than the hook's 300 s
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == 130, err
        assert not procs.alive(hook)
        assert not (tmp_path / "run_end_ran").exists()
        assert "a second signal" in err
