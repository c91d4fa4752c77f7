"""Several machines share one run through PostgreSQL (SPEC §5, issue 17), for real: each
"machine" is a planrun process with its own clone of one bare repository and its own
state folder; the shared store is the session's PostgreSQL server.

Every scenario asserts the same invariants: every task done exactly once in the shared
store, and its change landed on the shared target exactly once.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from tests import pg
from tests.gitrepo import git
from tests.runs import alive, environment, planrun, wait_for
from tests.scaleout import (
    TARGET,
    Machine,
    landings,
    machines,
    machines_sharing,
    shared_tasks,
)

pytestmark = pytest.mark.postgres

PLAN = """\
version: 1
name: so
settings: {{max_concurrent: 2}}
projects: {{app: {{path: repo, base_branch: main}}}}
defaults: {{project: app}}
tasks:
{tasks}
"""


def plan_of(tasks: dict[str, str]) -> str:
    return PLAN.format(tasks="\n".join(f"  {k}: {v}" for k, v in tasks.items()))


def writes(name: str, then: str = "") -> str:
    """A task that writes ``name`` (its change), then runs ``then``."""
    script = f"echo {name} > {name}.txt{'; ' + then if then else ''}"
    return '{run: [sh, -c, "' + script + '"]}'


def check_invariants(url: str, run_id: str, origin: Path, keys: list[str]) -> None:
    rows = shared_tasks(url, run_id)
    assert {k: r["status"] for k, r in rows.items()} == dict.fromkeys(keys, "done")
    assert Counter(landings(origin)) == Counter(keys)  # each change landed once
    files = git(origin, "ls-tree", "--name-only", TARGET).split()
    assert {f"{k}.txt" for k in keys} <= set(files)
    for key in keys:
        assert rows[key]["landed_commit"] is not None


def stop_all(found: list[Machine]) -> None:
    for machine in found:
        machine.stop()


def test_two_machines_share_a_run_and_a_dependent_builds_on_work_landed_elsewhere(
    clean_env: Path, tmp_path: Path, pg_url: str
) -> None:
    tasks = {k: writes(k) for k in ("A", "B", "C", "D")}
    tasks["E"] = '{run: [sh, -c, "cat A.txt B.txt C.txt D.txt > E.txt"], needs: [A, B, C, D]}'
    origin, found = machines(tmp_path, plan_of(tasks), 2)
    try:
        for machine in found:
            machine.start(pg_url, "r1")
        ends = [machine.wait() for machine in found]
    finally:
        stop_all(found)
    assert [code for code, _ in ends] == [0, 0], "\n".join(err for _, err in ends)
    check_invariants(pg_url, "r1", origin, list(tasks))
    assert git(origin, "show", f"{TARGET}:E.txt").split() == ["A", "B", "C", "D"]
    # the CI job re-run: a new run id, a fresh machine; what the last run did is done
    fresh = machines_sharing(origin, tmp_path / "again", plan_of(tasks))
    fresh.start(pg_url, "r1-again")
    code, err = fresh.wait()
    assert code == 0, err
    again = shared_tasks(pg_url, "r1-again")
    assert {r["status"] for r in again.values()} == {"done"}
    assert {r["claims"] for r in again.values()} == {0}  # nothing claimed, nothing ran
    assert Counter(landings(origin)) == Counter(list(tasks))  # nothing landed twice
    owners = {row["owner"].rsplit("/", 1)[0] for row in shared_tasks(pg_url, "r1").values()}
    assert all(row["claims"] == 1 for row in shared_tasks(pg_url, "r1").values())
    assert len(owners) >= 1


def slow_first(root: Path, key: str) -> str:
    """A task whose first attempt (anywhere) records its pid, says it started and sleeps;
    any later attempt writes its change at once. (The pid is written first: a test that
    saw the start reads it at once.)"""
    first = root / f"{key}.first"
    pid = root / f"{key}.pid"
    script = (
        f"if [ -e {first} ]; then echo {key} > {key}.txt;"
        f" else echo $$ > {pid}.tmp; mv {pid}.tmp {pid}; pwd > {first}.tmp; mv {first}.tmp {first};"
        " exec sleep 60; fi"
    )
    return '{run: [sh, -c, "' + script + '"]}'


def started_on(root: Path, key: str, timeout: float = 30) -> str:
    """The worktree the first attempt of ``key`` started in."""
    wait_for(lambda: (root / f"{key}.first").exists(), timeout, f"{key} to start")
    return (root / f"{key}.first").read_text().strip()


def kill_leftover(root: Path, key: str) -> None:
    """The first attempt's process, if a dead machine left it running."""
    with contextlib.suppress(FileNotFoundError, ProcessLookupError, ValueError):
        os.killpg(int((root / f"{key}.pid").read_text()), signal.SIGKILL)


@pytest.mark.slow  # a lease (3 s) must run out
def test_kill_9_of_a_machine_mid_task_its_task_is_taken_over(
    clean_env: Path, tmp_path: Path, pg_url: str
) -> None:
    tasks = {"SLOW": slow_first(tmp_path, "SLOW"), "AFTER": writes("AFTER")}
    tasks["AFTER"] = tasks["AFTER"][:-1] + ", needs: [SLOW]}"
    origin, (m1, m2) = machines(tmp_path, plan_of(tasks), 2)
    try:
        m1.start(pg_url, "r2")
        assert started_on(tmp_path, "SLOW").startswith(str(m1.folder))
        m2.start(pg_url, "r2")
        m1.signal_group(signal.SIGKILL)  # the machine dies (its task's group is its own)
        m1.wait()
        kill_leftover(tmp_path, "SLOW")
        code, err = m2.wait()
    finally:
        stop_all([m1, m2])
        kill_leftover(tmp_path, "SLOW")
    assert code == 0, err
    assert "SLOW: taken over from a machine whose lease expired" in err
    check_invariants(pg_url, "r2", origin, ["AFTER", "SLOW"])
    assert shared_tasks(pg_url, "r2")["SLOW"]["claims"] == 2


@pytest.mark.slow  # a lease (3 s) must run out
def test_a_machine_stopped_past_its_lease_is_fenced_when_it_wakes(
    clean_env: Path, tmp_path: Path, pg_url: str
) -> None:
    tasks = {"SLOW": slow_first(tmp_path, "SLOW")}
    origin, (m1, m2) = machines(tmp_path, plan_of(tasks), 2)
    try:
        m1.start(pg_url, "r3")
        worktree = Path(started_on(tmp_path, "SLOW"))
        assert worktree.is_relative_to(m1.folder)
        m1.signal_group(signal.SIGSTOP)  # a laptop lid, a GC pause, a partition
        m2.start(pg_url, "r3")
        code2, err2 = m2.wait()  # took the task over once the lease expired, and landed it
        assert code2 == 0, err2
        check_invariants(pg_url, "r3", origin, ["SLOW"])
        m1.signal_group(signal.SIGCONT)
        code1, err1 = m1.wait()
    finally:
        stop_all([m1, m2])
        kill_leftover(tmp_path, "SLOW")
    assert "SLOW: the lease was lost; the attempt was stopped, nothing landed" in err1
    assert code1 == 0, err1  # it ends with the task done, elsewhere
    check_invariants(pg_url, "r3", origin, ["SLOW"])  # nothing landed twice
    assert worktree.is_dir()  # the fenced attempt's worktree is kept as it was
    assert not (worktree / "SLOW.txt").exists()
    assert shared_tasks(pg_url, "r3")["SLOW"]["claims"] == 2


def test_a_dependent_on_one_machine_starts_from_a_need_landed_by_another(
    clean_env: Path, tmp_path: Path, pg_url: str
) -> None:
    tasks = {"A": writes("A"), "B": '{run: [sh, -c, "cp A.txt B.txt; echo copied"], needs: [A]}'}
    origin, (m1, m2) = machines(tmp_path, plan_of(tasks), 2)
    try:
        m1.start(pg_url, "r4", "--only", "A")
        code1, err1 = m1.wait()
        m2.start(pg_url, "r4")
        code2, err2 = m2.wait()
    finally:
        stop_all([m1, m2])
    assert (code1, code2) == (0, 0), err1 + err2
    check_invariants(pg_url, "r4", origin, ["A", "B"])
    rows = shared_tasks(pg_url, "r4")
    assert rows["A"]["owner"] != rows["B"]["owner"]
    assert git(origin, "show", f"{TARGET}:B.txt") == "A"
    assert [row["claims"] for row in rows.values()] == [1, 1]  # A never ran again on m2
    # status, logs and report read the shared run from any machine: here m1, which ran A only
    shown = planrun("status", "plan.yaml", "--store", pg_url, cwd=m1.folder)
    assert shown.returncode == 0, shown.stderr
    lines = {line.split()[0]: line for line in shown.stdout.splitlines()[3:]}
    assert lines["A"].split()[1:3] == ["done", rows["A"]["owner"]]
    assert lines["B"].split()[1:3] == ["done", rows["B"]["owner"]]
    logs = planrun("logs", "plan.yaml", "B", "--store", pg_url, cwd=m1.folder)
    assert (logs.returncode, logs.stdout) == (0, "copied\n"), logs.stderr
    assert f"the full log is on {rows['B']['owner']}: {m2.folder}" in logs.stderr
    report = planrun("report", "plan.yaml", "--store", pg_url, cwd=m1.folder)
    doc = json.loads(report.stdout)
    assert (doc["run_id"], doc["status"]) == ("r4", "succeeded")
    assert [(t["key"], t["status"]) for t in doc["tasks"]] == [("A", "done"), ("B", "done")]


def test_machines_racing_their_landings_land_every_task_once(
    clean_env: Path, tmp_path: Path, pg_url: str
) -> None:
    origin, keys = held_back_run(tmp_path, pg_url, "r5", lambda: None)
    check_invariants(pg_url, "r5", origin, keys)
    owners = {row["owner"] for row in shared_tasks(pg_url, "r5").values()}
    assert len(owners) == 2  # 3 slots each: both machines ran (and landed) tasks


def test_postgresql_restarted_mid_run_the_machines_reconnect_and_go_on(
    clean_env: Path, tmp_path: Path, pg_url: str, pg_server: pg.Server
) -> None:
    origin, keys = held_back_run(tmp_path, pg_url, "r6", pg_server.restart)
    check_invariants(pg_url, "r6", origin, keys)
    assert all(row["claims"] == 1 for row in shared_tasks(pg_url, "r6").values())


def held_back_run(
    root: Path, url: str, run_id: str, meanwhile: Callable[[], None]
) -> tuple[Path, list[str]]:
    """Two machines with 3 slots each start 6 tasks that wait for a go; once all run,
    ``meanwhile()``, then go: every task finishes at once, and their landings race."""
    go = root / "go"
    keys = [f"T{n}" for n in range(6)]
    held = (
        "touch {root}/{key}.started; while [ ! -e {go} ]; do sleep 0.02; done;"
        " echo {key} > {key}.txt"
    )
    tasks = {k: '{run: [sh, -c, "' + held.format(root=root, key=k, go=go) + '"]}' for k in keys}
    text = plan_of(tasks).replace("max_concurrent: 2", "max_concurrent: 3")
    origin, found = machines(root, text, 2)
    try:
        for machine in found:
            machine.start(url, run_id)
        started = lambda: all((root / f"{k}.started").exists() for k in keys)  # noqa: E731
        wait_for(started, 30, "every task to start, on both machines")
        meanwhile()
        go.touch()
        ends = [machine.wait() for machine in found]
    finally:
        stop_all(found)
    assert [code for code, _ in ends] == [0, 0], "\n".join(err for _, err in ends)
    return origin, keys


def test_a_bad_store_stops_apply_before_anything_runs_and_never_shows_its_password(
    clean_env: Path, tmp_path: Path
) -> None:
    _, (m1,) = machines(tmp_path, plan_of({"A": writes("A")}), 1)
    unreachable = "postgresql://u:sekret@127.0.0.1:1/db"
    for store in (unreachable, "/not/a/url"):
        done = planrun("apply", "plan.yaml", "--store", store, cwd=m1.folder)
        assert done.returncode == 2, done.stderr
        assert "sekret" not in done.stdout + done.stderr
        assert not (m1.folder / ".planrun").exists()  # nothing ran, no state folder
    assert (
        "postgresql://u:***@127.0.0.1:1/db"
        in planrun("apply", "plan.yaml", "--store", unreachable, cwd=m1.folder).stderr
    )
    alone = planrun("apply", "plan.yaml", "--run-id", "x", cwd=m1.folder)
    assert alone.returncode == 2
    assert "--run-id names a shared run" in alone.stderr


def test_a_project_cap_holds_across_machines(clean_env: Path, tmp_path: Path, pg_url: str) -> None:
    spans = tmp_path / "spans"
    keys = [f"C{n}" for n in range(4)]
    script = "echo start >> {spans}; sleep 0.3; echo end >> {spans}; echo {key} > {key}.txt"
    tasks = {k: '{run: [sh, -c, "' + script.format(spans=spans, key=k) + '"]}' for k in keys}
    text = plan_of(tasks).replace("base_branch: main}", "base_branch: main, max_concurrent: 1}")
    origin, found = machines(tmp_path, text, 2)
    try:
        for machine, only in zip(found, ("C0,C1", "C2,C3"), strict=True):
            machine.start(pg_url, "r7", "--only", only)  # each machine has tasks to run
        ends = [machine.wait() for machine in found]
    finally:
        stop_all(found)
    assert [code for code, _ in ends] == [0, 0], "\n".join(err for _, err in ends)
    check_invariants(pg_url, "r7", origin, keys)
    # one task of the project at a time, run-wide: starts and ends alternate
    assert spans.read_text().split() == ["start", "end"] * len(keys)
    assert len({row["owner"] for row in shared_tasks(pg_url, "r7").values()}) == 2


def test_a_machine_dead_between_its_push_and_recording_done_is_not_run_or_landed_again(
    clean_env: Path, tmp_path: Path, pg_url: str
) -> None:
    runs = tmp_path / "A.runs"
    tasks = {"A": writes("A", f"echo run >> {runs}")}
    origin, (m1, m2) = machines(tmp_path, plan_of(tasks), 2)
    try:
        m1.start(pg_url, "r8", PLANRUN_FAULT_AFTER_PUSH="A")
        code1, _ = m1.wait()
        assert code1 == -signal.SIGKILL  # pushed, then died before recording A done
        assert landings(origin) == ["A"]
        assert shared_tasks(pg_url, "r8")["A"]["status"] == "running"
        m2.start(pg_url, "r8")
        code2, err2 = m2.wait()
    finally:
        stop_all([m1, m2])
    assert code2 == 0, err2
    assert "A: already landed" in err2
    check_invariants(pg_url, "r8", origin, ["A"])
    assert runs.read_text() == "run\n"  # the task ran once, on the machine that died
    assert shared_tasks(pg_url, "r8")["A"]["landed_commit"] == git(origin, "rev-parse", TARGET)


ASKER = """\
import sys, time
prompt = sys.argv[-1]
if prompt == "ASK":
    print("Proceed with the migration? [y/N]", flush=True)
    time.sleep(60)
else:
    open("answer.txt", "w").write(prompt + "\\n")
"""


def test_an_answer_given_on_one_machine_reaches_the_task_on_another(
    clean_env: Path, tmp_path: Path, pg_url: str
) -> None:
    asker = tmp_path / "ask.py"
    asker.write_text(ASKER)
    python = sys.executable
    text = plan_of({"Q": "{provider: asker, prompt: ASK, input_timeout: 60s}"}).replace(
        "tasks:\n",
        "providers:\n  asker:\n"
        f'    command: ["{python}", "{asker}"]\n    prompt_via: argv\n'
        f'    prompt_command: ["{python}", "{asker}", "{{{{ prompt }}}}"]\n'
        '    input_pattern: "Proceed with the migration"\n'
        "tasks:\n",
    )
    text = text.replace("settings: {", "settings: {env: {inherit: [PATH]}, ")
    origin, (m1, m2) = machines(tmp_path, text, 2)
    try:
        m1.start(pg_url, "r9")
        wait_for(lambda: shared_tasks(pg_url, "r9").get("Q", {}).get("owner"), 30, "Q claimed")
        given = planrun("answer", "plan.yaml", "Q", "yes", "--store", pg_url, cwd=m2.folder)
        assert given.returncode == 0, given.stderr
        assert "answer queued for Q; machine " in given.stdout
        code, err = m1.wait()
    finally:
        stop_all([m1, m2])
    assert code == 0, err
    assert git(origin, "show", f"{TARGET}:answer.txt") == "yes"
    assert shared_tasks(pg_url, "r9")["Q"]["status"] == "done"


@pytest.mark.slow  # a lease (3 s) must run out
def test_a_machine_that_cannot_renew_for_a_whole_lease_stops_its_own_attempts(
    clean_env: Path, tmp_path: Path, pg_url: str, pg_server: pg.Server
) -> None:
    tasks = {"SLOW": slow_first(tmp_path, "SLOW")}
    origin, (m1,) = machines(tmp_path, plan_of(tasks), 1)
    frozen: set[int] = set()
    try:
        m1.start(pg_url, "r10")
        started_on(tmp_path, "SLOW")
        attempt = int((tmp_path / "SLOW.pid").read_text())
        frozen = pg_server.processes()
        for pid in frozen:  # the database hangs: no renewal can succeed, none fails fast
            os.kill(pid, signal.SIGSTOP)
        wait_for(lambda: not alive(attempt), 15, "the machine to stop its own attempt")
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
        frozen = set()
        code, err = m1.wait()  # it claims the task again once its lease expired, and ends it
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
        stop_all([m1])
        kill_leftover(tmp_path, "SLOW")
    assert code == 0, err
    assert "SLOW: its lease was not renewed for 3s" in err
    check_invariants(pg_url, "r10", origin, ["SLOW"])


def test_without_psycopg_a_store_url_says_how_to_install_it(
    clean_env: Path, tmp_path: Path
) -> None:
    (tmp_path / "plan.yaml").write_text(plan_of({"A": writes("A")}))
    code = (
        "import sys; sys.modules['psycopg'] = None\n"  # as if planrun[postgres] were not installed
        "from planrun.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    url = "postgresql://u:sekret@127.0.0.1:1/db"
    for command in ("apply", "status"):
        done = subprocess.run(
            [sys.executable, "-c", code, command, "plan.yaml", "--store", url],
            cwd=tmp_path,
            env=environment(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 2, done.stderr
        assert "pip install 'planrun[postgres]'" in done.stderr
        assert "sekret" not in done.stderr
    assert not (tmp_path / ".planrun").exists()


def test_a_task_in_review_on_one_machine_holds_its_dependents_on_another(
    clean_env: Path, tmp_path: Path, pg_url: str
) -> None:
    tasks = {
        "R": '{run: [sh, -c, "echo R > R.txt"], review: true}',
        "AFTER": '{run: [sh, -c, "cp R.txt AFTER.txt"], needs: [R]}',
    }
    origin, (m1, m2) = machines(tmp_path, plan_of(tasks), 2)
    try:
        m1.start(pg_url, "r11", "--only", "R")
        code1, err1 = m1.wait()
        m2.start(pg_url, "r11")
        code2, err2 = m2.wait()
    finally:
        stop_all([m1, m2])
    assert (code1, code2) == (4, 4), err1 + err2  # both wait for a person: approve R
    rows = shared_tasks(pg_url, "r11")
    assert (rows["R"]["status"], rows["AFTER"]["status"]) == ("in_review", "open")
    assert git(origin, "branch", "--list", TARGET) == ""  # nothing landed before the review


def test_the_board_of_a_shared_run_shows_every_machine_s_tasks(
    clean_env: Path, tmp_path: Path, pg_url: str
) -> None:
    """planrun board --store: the cards, the machine of each task, the recorded tail of a
    log kept on another machine, and the commands shown never carry the URL's password."""
    from tests.boardkit import board

    tasks = {k: writes(k, f"echo said {k}") for k in ("A", "B")}
    tasks["C"] = '{run: [sh, -c, "cat A.txt B.txt > C.txt; echo said C"], needs: [A, B]}'
    origin, found = machines(tmp_path, plan_of(tasks), 2)
    try:
        for machine in found:
            machine.start(pg_url, "rb")
        assert [machine.wait()[0] for machine in found] == [0, 0]
    finally:
        stop_all(found)
    for machine in found:  # the logs stay on the machines that ran the tasks
        shutil.rmtree(machine.folder / ".planrun" / "so" / "logs", ignore_errors=True)
    viewer = machines_sharing(origin, tmp_path / "viewer", plan_of(tasks))
    with board(viewer.plan, "--store", pg_url, "--run", "rb") as shown:
        page = shown.get("/").body
        for key in tasks:
            assert f'data-key="{key}" data-status="done"' in page
        assert f"on {socket.gethostname()}" in page
        task = shown.get("/task/C").body
        assert "said C" in task  # the recorded tail of a log kept on another machine
        assert "The full log is on" in task
