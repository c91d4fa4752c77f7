"""Status back to GitHub: real ``planrun apply`` processes against the stand-in (real HTTP).

First run, second run (nothing re-posted), an edited issue (its task alone runs again,
its comment edited in place), a tracker down during a run (the task still succeeds, the
update arrives with the next apply), planrun killed between a task's end and its status
post (posted once after), an item a person closed (never re-labelled), and a hostile
issue (shell syntax, template syntax, escape sequences, a 1 MB body) staying data.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from planrun.core.names import branch_name
from planrun.core.redact import Redactor
from planrun.trackers.status import Intent, comment_body, marker
from tests.github_standin import Standin, serve
from tests.gitrepo import git, make_repos
from tests.runs import apply, kill9, planrun, spawn, stop, wait_for

TOKEN_VAR = "PLANRUN_TEST_GH_TOKEN"
DONE, RUNNING, FAILED = "planrun:done", "planrun:running", "planrun:failed"


@pytest.fixture
def github(monkeypatch: pytest.MonkeyPatch) -> Iterator[Standin]:
    standin = Standin()
    monkeypatch.setenv(TOKEN_VAR, standin.token)
    standin.add_issue(1, "Fix the parser", "It crashes on tabs.", labels=["agent", "bug"])
    standin.add_issue(2, "Not for agents", labels=["bug"])
    standin.add_issue(3, "Add logging", "Use the helper.", labels=["agent"])
    with serve(standin):
        yield standin
    assert standin.problems == []


def write_plan(folder: Path, url: str, *, run: str = "", status: str = "{}") -> Path:
    command = run or 'printf "%s\\n" "$PLANRUN_ITEM_KEY" >> ran.txt'
    text = f"""\
version: 1
settings:
  secrets: [{TOKEN_VAR}]
trackers:
  gh:
    kind: github
    repo: acme/api
    url: {url}
    token: {TOKEN_VAR}
    status: {status}
tasks:
  FIX:
    title: "{{{{ item.title }}}}"
    for_each: {{tracker: gh, select: {{labels: [agent]}}}}
    run: {{shell: {command!r}}}
"""
    path = folder / "plan.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def run(plan: Path, standin: Standin):  # type: ignore[no-untyped-def]
    return apply(plan)


def status_comments(standin: Standin, number: int) -> list[str]:
    mark = marker("plan", f"FIX[{number}]")
    return [c["body"] for c in standin.comments_on(number) if mark in c["body"]]


def test_first_run_second_run_and_an_edited_issue(tmp_path: Path, github: Standin) -> None:
    plan = write_plan(tmp_path, github.url)
    first = run(plan, github)
    assert first.returncode == 0, first.stderr
    for number in (1, 3):
        assert DONE in github.labels_of(number)
        assert RUNNING not in github.labels_of(number)
        [body] = status_comments(github, number)
        assert "is **done**" in body
    assert github.labels_of(1) == ["agent", "bug", DONE]  # a person's labels are kept
    assert github.comments_on(2) == []
    assert github.labels_of(2) == ["bug"]

    writes = len(github.writes())
    second = run(plan, github)
    assert second.returncode == 0, second.stderr
    assert len(github.writes()) == writes  # nothing re-posted
    assert sorted((tmp_path / "ran.txt").read_text().split()) == ["acme/api#1", "acme/api#3"]

    github.issues[3]["body"] = "Use the helper, and test it."
    third = run(plan, github)
    assert third.returncode == 0, third.stderr
    assert (tmp_path / "ran.txt").read_text().split()[2:] == ["acme/api#3"]
    assert len(status_comments(github, 3)) == 1  # edited in place
    assert len(github.comments) == 2


def test_a_tracker_outage_fails_no_task_and_loses_no_update(
    tmp_path: Path, github: Standin
) -> None:
    plan = write_plan(tmp_path, github.url)
    github.fail_writes = 10_000
    first = run(plan, github)
    assert first.returncode == 0, first.stderr
    assert "status update(s) for tracker gh not delivered yet" in first.stderr
    assert github.comments == {}
    waiting = planrun("status", str(plan), cwd=tmp_path)
    assert "tracker updates waiting: " in waiting.stdout, waiting.stdout
    assert "(the next apply delivers them)" in waiting.stdout
    github.fail_writes = 0
    second = run(plan, github)  # the tasks are up to date; the updates go now
    assert second.returncode == 0, second.stderr
    for number in (1, 3):
        assert len(status_comments(github, number)) == 1
        assert DONE in github.labels_of(number)
    writes = len(github.writes())
    assert run(plan, github).returncode == 0
    assert len(github.writes()) == writes  # delivered once
    assert "tracker updates waiting" not in planrun("status", str(plan), cwd=tmp_path).stdout


def test_status_names_the_tracker_intent_kind_as_the_outbox_writes_it() -> None:
    from planrun.commands.status import TRACKER_INTENT
    from planrun.trackers.outbox import INTENT_EVENT

    assert TRACKER_INTENT == INTENT_EVENT


def test_planrun_killed_before_a_status_post_posts_it_once_after(
    tmp_path: Path, github: Standin
) -> None:
    del github.issues[3]
    plan = write_plan(tmp_path, github.url)
    github.hold_writes, github.hold_when = threading.Event(), DONE
    proc = spawn("apply", str(plan), "--progress", "plain", cwd=tmp_path)
    try:
        wait_for(github.held.is_set, timeout=30, what="the done update reaching GitHub")
        kill9(proc)
    finally:
        stop(proc)
    github.hold_writes.set()  # the held request goes through after planrun died
    github.hold_writes = None
    again = run(plan, github)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "ran.txt").read_text().split() == ["acme/api#1"]  # not run again
    [body] = status_comments(github, 1)
    assert "is **done**" in body
    assert github.labels_of(1).count(DONE) == 1


def test_an_item_a_person_closed_is_not_relabelled(tmp_path: Path, github: Standin) -> None:
    plan = write_plan(tmp_path, github.url, run='test "$PLANRUN_ITEM_NUMBER" = 1')
    github.hold_writes, github.hold_when = threading.Event(), RUNNING
    proc = spawn("apply", str(plan), "--progress", "plain", cwd=tmp_path)
    try:
        wait_for(github.held.is_set, timeout=30, what="the started update")
        github.issues[3]["state"] = "closed"  # a person closes it meanwhile
        github.hold_writes.set()
        proc.communicate(timeout=60)
    finally:
        stop(proc)
    assert proc.returncode == 1
    assert FAILED not in github.labels_of(3)
    assert github.issues[3]["state"] == "closed"
    [body] = status_comments(github, 3)
    assert "is **failed**" in body
    assert "exit code 1" in body


def test_a_hostile_issue_stays_data(tmp_path: Path, github: Standin) -> None:
    body = "$(touch pwned) `touch pwned2`; {{ 7 * 7 }} {% raw %} \x1b]0;title\x07\x1b[2J"
    github.add_issue(4, "\x1b[31mred\x1b[0m $(touch pwned3) {{ 6 * 7 }}", body, labels=["agent"])
    github.add_issue(5, "huge", "x" * 1_000_000, labels=["agent"])
    command = (
        'printf "%s" "$PLANRUN_ITEM_BODY" > body-$PLANRUN_ITEM_NUMBER.txt; '
        "echo {{ item.title }} > title-$PLANRUN_ITEM_NUMBER.txt"
    )
    plan = write_plan(tmp_path, github.url, run=command)
    done = run(plan, github)
    assert done.returncode == 0, done.stderr
    assert not list(tmp_path.glob("pwned*"))
    assert (tmp_path / "body-4.txt").read_text() == body
    assert "{{ 6 * 7 }}" in (tmp_path / "title-4.txt").read_text()
    assert len((tmp_path / "body-5.txt").read_text()) < 40_000  # bounded, not refused
    assert "\x1b" not in done.stderr
    for command in ("status", "plan"):
        shown = planrun(command, str(plan), cwd=tmp_path)
        assert shown.returncode == 0, shown.stderr
        assert "\x1b" not in shown.stdout + shown.stderr


def test_the_status_comment_is_redacted_and_fenced() -> None:
    intent = Intent(
        tracker="gh",
        ref="1",
        item_key="acme/api#1",
        task="FIX[1]",
        plan="plan",
        moment="failed",
        run_id="r1",
        at="2026-12-06T10:00:00Z",
        reason="failed: token s3cr3t-value leaked ``` @octocat",
    )
    text = comment_body(intent, Redactor(["s3cr3t-value"]).redact)
    assert "s3cr3t-value" not in text
    assert text.startswith(marker("plan", "FIX[1]"))
    assert "````text\nfailed: token *** leaked ``` @octocat\n````" in text


def test_the_comment_names_the_branch_and_the_landed_commit(
    tmp_path: Path, github: Standin, clean_env: Path
) -> None:
    (tmp_path / "repos").mkdir()
    repos = make_repos(tmp_path / "repos")
    plan = write_plan(tmp_path, github.url, run="echo fixed > fix-$PLANRUN_ITEM_NUMBER.txt")
    text = plan.read_text().replace(
        "tasks:\n",
        f"projects: {{app: {{path: {repos.clone}, base_branch: main}}}}\n"
        "defaults: {project: app}\ntasks:\n",
    )
    plan.write_text(text)
    github.rate_limited, github.rate_limit_status = 1, 429  # the first read waits it out
    done = run(plan, github)
    assert done.returncode == 0, done.stderr
    target = git(repos.clone, "rev-parse", "planrun-plan")
    [body] = status_comments(github, 1)
    assert f"- branch: `{branch_name('plan', 'FIX[1]')}`" in body
    landed = [line for line in body.splitlines() if line.startswith("- landed commit: ")]
    assert len(landed) == 1
    commit = landed[0].removeprefix("- landed commit: `").rstrip("`")
    assert git(repos.clone, "merge-base", "--is-ancestor", commit, target, check=False) == ""
    assert DONE in github.labels_of(1)
