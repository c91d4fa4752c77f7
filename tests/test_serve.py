"""``planrun serve``: new items picked up while a task runs, closed items cancelled, edited
items run again, ``--once``, draining on SIGTERM, kill -9 and serve again, pause/resume.

planrun serve runs as a real process (``python -m planrun``) against the GitHub stand-in
(tests/github_standin.py) over real HTTP on 127.0.0.1, on a real git repository whose
integration branch the tasks land on. Each task is a shell script that records that it
started and then waits for its "go" file, so the test decides when a task ends; every wait
is on a condition with a deadline (tests/runs.py: wait_for), never a bare sleep.
"""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from planrun.errors import StoreError
from tests import boardkit, runs
from tests.github_standin import Standin, serve
from tests.gitrepo import git, make_repos, tip
from tests.runs import State, state_of, wait_for, write_plan

TOKEN_VAR = "PLANRUN_TEST_GH_TOKEN"
INTERVAL = "0.2"
TARGET = "planrun-sv"

SCRIPT = """\
echo "$PLANRUN_ITEM_ID" >> "$OUT/started"
[ "$PLANRUN_ITEM_BODY" != fail ] || exit 3
while [ ! -e "$OUT/go-$PLANRUN_ITEM_ID" ]; do sleep 0.02; done
printf '%s\\n' "$PLANRUN_ITEM_BODY" > "item-$PLANRUN_ITEM_ID.txt"
git add . && { git diff --cached --quiet || $COMMIT -qm "item $PLANRUN_ITEM_ID"; }
"""


@dataclass
class Served:
    plan: Path
    repo: Path
    out: Path
    github: Standin

    def go(self, *ids: int) -> None:
        for n in ids:
            (self.out / f"go-{n}").touch()

    def started(self) -> list[str]:
        path = self.out / "started"
        return path.read_text().split() if path.exists() else []

    def landed(self, n: int) -> int:
        """How many landing commits on the target name task ISSUE[n]."""
        if tip(self.repo, TARGET) is None:
            return 0
        log = git(self.repo, "log", "--first-parent", "--format=%B%x1e", TARGET)
        return sum(f"Planrun-Task: ISSUE[{n}]\n" in b + "\n" for b in log.split("\x1e"))

    def task(self, n: int) -> tuple[str, str]:
        """The task's latest status and reason in the store ("" if never recorded)."""
        try:
            rows = State(state_of(self.plan)).task_states("sv")
        except StoreError:  # serve has not made its store yet
            return "", ""
        row = rows.get(f"ISSUE[{n}]")
        if row is None:
            return "", ""
        runs_ = State(state_of(self.plan)).runs("sv")
        for run in reversed(runs_):
            found = State(state_of(self.plan)).tasks(run.id).get(f"ISSUE[{n}]")
            if found is not None and found.status.is_final:
                return found.status.value, found.reason or ""
        return row.status.value, ""

    def start(self, *args: str) -> subprocess.Popen[str]:
        return runs.spawn(
            "serve", str(self.plan), "--interval", INTERVAL, *args, cwd=self.plan.parent
        )


@pytest.fixture
def served(tmp_path: Path, clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    standin = Standin()
    repos = make_repos(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    script = tmp_path / "task.sh"
    script.write_text(SCRIPT)
    with serve(standin):
        monkeypatch.setenv(TOKEN_VAR, standin.token)
        text = f"""\
version: 1
name: sv
settings: {{secrets: [{TOKEN_VAR}], max_concurrent: 4}}
trackers:
  gh: {{kind: github, repo: acme/api, url: "{standin.url}", token: {TOKEN_VAR}}}
projects: {{app: {{path: {repos.clone}, base_branch: main}}}}
tasks:
  ISSUE:
    for_each: {{tracker: gh, select: {{labels: [agent]}}}}
    title: "{{{{ item.title }}}}"
    project: app
    env: {{OUT: "{out}", COMMIT: "git -c user.name=t -c user.email=t@t commit"}}
    run: [sh, "{script}"]
"""
        plan = write_plan(tmp_path, text)
        yield Served(plan, repos.clone, out, standin)
    assert standin.problems == []


def stop(proc: subprocess.Popen[str]) -> None:
    """End a serve a failing test left running: two different signals (two SIGTERMs sent
    at once may reach it as one), so that it cancels its tasks rather than draining."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.send_signal(signal.SIGINT)
    runs.stop(proc)


def finish(proc: subprocess.Popen[str], timeout: float = 30.0) -> tuple[int, str]:
    """SIGTERM (drain) and wait; returns the exit code and stderr."""
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(proc)
        raise
    return proc.returncode, err


def test_a_new_item_runs_while_another_task_runs_and_an_edited_one_runs_again(
    served: Served,
) -> None:
    served.github.add_issue(1, "Slow", "first", labels=["agent"])
    proc = served.start()
    try:
        wait_for(lambda: served.started() == ["1"], what="ISSUE[1] to start")
        served.go(2)
        served.github.add_issue(2, "Quick", "second", labels=["agent"])
        wait_for(lambda: served.landed(2) == 1, what="ISSUE[2] to land while ISSUE[1] runs")
        assert served.landed(1) == 0
        assert served.started() == ["1", "2"]
        shown = runs.planrun("status", str(served.plan), cwd=served.plan.parent)
        rows = dict(
            line.split()[:2] for line in shown.stdout.splitlines() if line.startswith("ISSUE[")
        )
        assert rows.get("ISSUE[1]") == "running", shown.stdout  # in the first pass
        assert rows.get("ISSUE[2]") == "done", shown.stdout  # the latest pass
        with boardkit.board(served.plan) as page:  # the board reads the same store
            front = page.get("/")
        assert front.status == 200
        assert "ISSUE[2]" in front.body
        served.github.issues[1]["body"] = "first, edited"  # edited while its task runs
        served.go(1)
        wait_for(lambda: served.landed(1) == 2, what="ISSUE[1] to land, then again")
        assert (served.repo / "item-1.txt").exists() is False  # landed on the target only
        assert git(served.repo, "show", f"{TARGET}:item-1.txt") == "first, edited"
        code, err = finish(proc)
    finally:
        stop(proc)
    assert code == 0, err
    assert sorted(served.started()) == ["1", "1", "2"]  # ISSUE[2] was never run again
    assert served.landed(2) == 1


def test_a_closed_item_s_running_task_is_cancelled_and_its_worktree_kept(
    served: Served,
) -> None:
    served.github.add_issue(1, "Doomed", labels=["agent"])
    proc = served.start()
    try:
        wait_for(lambda: served.started() == ["1"], what="ISSUE[1] to start")
        served.github.issues[1]["state"] = "closed"
        wait_for(lambda: served.task(1)[0] == "cancelled", what="ISSUE[1] to be cancelled")
        assert "no longer selected" in served.task(1)[1]
        code, err = finish(proc)
    finally:
        stop(proc)
    assert code == 0, err
    worktrees = git(served.repo, "worktree", "list", "--porcelain")
    assert worktrees.count("worktree ") == 2, worktrees  # the clone and ISSUE[1]'s, kept
    assert served.landed(1) == 0


def test_once_runs_what_is_new_and_exits_with_apply_s_codes(served: Served) -> None:
    served.github.add_issue(1, "One", labels=["agent"])
    served.github.add_issue(2, "Two", labels=["agent"])
    served.go(1, 2)
    first = runs.planrun("serve", str(served.plan), "--once", cwd=served.plan.parent)
    assert first.returncode == 0, first.stderr
    assert served.landed(1) == 1
    assert served.landed(2) == 1
    again = runs.planrun("serve", str(served.plan), "--once", cwd=served.plan.parent)
    assert again.returncode == 0, again.stderr
    assert sorted(served.started()) == ["1", "2"]  # up to date: nothing ran again
    served.github.add_issue(3, "Broken", "fail", labels=["agent"])
    failing = runs.planrun("serve", str(served.plan), "--once", cwd=served.plan.parent)
    assert failing.returncode == 1, failing.stderr
    assert sorted(served.started()) == ["1", "2", "3"]  # only the new item ran


def test_sigterm_drains_running_tasks_finish_and_nothing_new_starts(served: Served) -> None:
    served.github.add_issue(1, "Running", labels=["agent"])
    proc = served.start()
    try:
        wait_for(lambda: served.started() == ["1"], what="ISSUE[1] to start")
        proc.send_signal(signal.SIGTERM)
        served.github.add_issue(2, "Too late", labels=["agent"])
        served.go(1, 2)
        _, err = proc.communicate(timeout=30)
    finally:
        stop(proc)
    assert proc.returncode == 0, err
    assert "draining" in err
    assert served.landed(1) == 1
    assert served.started() == ["1"]


def test_kill_9_then_serve_again_resumes_and_nothing_lands_twice(served: Served) -> None:
    served.github.add_issue(1, "Done before", labels=["agent"])
    served.github.add_issue(2, "Cut short", labels=["agent"])
    served.go(1)
    proc = served.start()
    try:
        # recorded done, not only landed: a kill between the two is apply's adoption case
        wait_for(lambda: served.task(1)[0] == "done", what="ISSUE[1] to be done")
        wait_for(lambda: "2" in served.started(), what="ISSUE[2] to start")
        runs.kill9(proc)
    finally:
        stop(proc)
    served.go(2)
    again = served.start()
    try:
        wait_for(lambda: served.landed(2) == 1, what="ISSUE[2] to land after the restart")
        code, err = finish(again)
    finally:
        stop(again)
    assert code == 0, err
    assert "recovered" in err
    assert served.landed(1) == 1
    assert served.landed(2) == 1
    assert sorted(served.started()) == ["1", "2", "2"], err  # ISSUE[1] never ran again


def test_pause_and_resume_dispatch_shown_by_status(served: Served) -> None:
    pause = runs.planrun("serve", str(served.plan), "--pause", cwd=served.plan.parent)
    assert pause.returncode == 0, pause.stderr
    served.github.add_issue(1, "Waits", labels=["agent"])
    served.go(1)
    proc = served.start()
    try:
        status_file = state_of(served.plan) / "serve.json"

        def polled_twice() -> bool:
            try:
                data = json.loads(status_file.read_text())
            except (OSError, ValueError):
                return False
            polled.append(data.get("last_poll"))
            return len({p for p in polled if p}) >= 2

        polled: list[str | None] = []
        wait_for(polled_twice, what="two polls while paused")
        assert served.started() == []
        shown = runs.planrun("status", str(served.plan), cwd=served.plan.parent)
        assert shown.returncode == 0, shown.stderr
        assert "served by planrun serve" in shown.stdout
        assert "paused" in shown.stdout
        resume = runs.planrun("serve", str(served.plan), "--resume", cwd=served.plan.parent)
        assert resume.returncode == 0, resume.stderr
        wait_for(lambda: served.landed(1) == 1, what="ISSUE[1] to land once resumed")
        code, err = finish(proc)
    finally:
        stop(proc)
    assert code == 0, err
    assert not status_file.exists()


def test_status_goes_back_to_each_item_once_across_passes(served: Served) -> None:
    text = served.plan.read_text()
    served.plan.write_text(
        text.replace(f"token: {TOKEN_VAR}}}", f"token: {TOKEN_VAR}, status: {{}}}}")
    )
    served.github.add_issue(1, "Slow", labels=["agent"])
    proc = served.start()
    try:
        wait_for(lambda: served.started() == ["1"], what="ISSUE[1] to start")
        served.go(2)
        served.github.add_issue(2, "Quick", labels=["agent"])
        wait_for(lambda: "planrun:done" in served.github.labels_of(2), what="ISSUE[2] done")
        served.go(1)
        wait_for(lambda: "planrun:done" in served.github.labels_of(1), what="ISSUE[1] done")
        code, err = finish(proc)
    finally:
        stop(proc)
    assert code == 0, err
    for n in (1, 2):
        comments = served.github.comments_on(n)
        assert len(comments) == 1, comments  # one status comment, edited in place
        assert "done" in comments[0]["body"]


def test_a_failed_poll_is_tried_again_and_apply_is_locked_out_meanwhile(
    served: Served,
) -> None:
    served.github.add_issue(1, "First", labels=["agent"])
    served.go(1, 2)
    proc = served.start()
    try:
        wait_for(lambda: served.landed(1) == 1, what="ISSUE[1] to land")
        locked = runs.apply(served.plan)
        assert locked.returncode == 3, locked.stderr  # serve holds the state lock
        served.github.fail_reads = 2  # the tracker is down for the next reads
        served.github.add_issue(2, "Second", labels=["agent"])
        wait_for(lambda: served.landed(2) == 1, what="ISSUE[2] to land once GitHub is back")
        code, err = finish(proc)
    finally:
        stop(proc)
    assert code == 0, err
    assert "this poll failed, the next one tries again" in err
    assert served.github.token not in err


def test_resume_is_seen_before_the_next_poll_is_due(served: Served) -> None:
    pause = runs.planrun("serve", str(served.plan), "--pause", cwd=served.plan.parent)
    assert pause.returncode == 0, pause.stderr
    served.github.add_issue(1, "Waits", labels=["agent"])
    served.go(1)
    proc = served.start("--interval", "600")  # the last --interval wins
    status_file = state_of(served.plan) / "serve.json"
    try:
        wait_for(status_file.exists, what="the first poll (paused)")
        assert served.started() == []
        resume = runs.planrun("serve", str(served.plan), "--resume", cwd=served.plan.parent)
        assert resume.returncode == 0, resume.stderr
        wait_for(lambda: served.landed(1) == 1, timeout=10, what="a poll at once on resume")
        code, err = finish(proc)
    finally:
        stop(proc)
    assert code == 0, err
