"""When a changeset is proposed, from a run's events (planrun.changes.propose), in-process:
its checks are the project's tasks and every task that needs one, wherever it runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from planrun.changes.propose import Watch
from planrun.changes.record import default_body
from planrun.core.events import AttemptStarted, Landed, TaskFinished
from planrun.plan.load import load_plan
from tests.gitrepo import make_repos

PLAN = """\
version: 1
name: p
settings: {secrets: [TOK]}
projects:
  api:
    path: api/clone
    changeset: {repo: acme/api, token: TOK, title: "{{ tasks | length }} tasks in api"}
  web: {path: web/clone}
tasks:
  A: {project: api, run: ["true"]}
  B: {project: web, run: ["true"]}
  CHECK: {needs: [A, B], run: ["true"]}
"""


@pytest.fixture
def watch(tmp_path: Path, clean_env: Path) -> Watch:
    for name in ("api", "web"):
        (tmp_path / name).mkdir()
        make_repos(tmp_path / name)
    (tmp_path / "plan.yaml").write_text(PLAN, encoding="utf-8")
    return Watch(load_plan(tmp_path / "plan.yaml"), "run-1", str)


def finished(key: str, status: str = "done", reason: str = "") -> TaskFinished:
    return TaskFinished(key=key, status=status, reason=reason, task_kind="work")


def test_a_project_waits_for_its_checks_wherever_they_run(watch: Watch) -> None:
    assert watch.checks == {"api": ("A", "CHECK")}  # B is web's, CHECK needs A
    assert watch.event(finished("B")) == []  # not one of api's
    assert watch.event(AttemptStarted(key="A", attempt=1, log_path="x")) == []
    assert watch.event(Landed(key="A", commit="c0ffee")) == []
    assert watch.event(finished("A")) == []  # CHECK has not finished
    [proposal] = watch.event(finished("CHECK"))
    assert proposal.verified
    assert proposal.commit == "c0ffee"
    assert proposal.title == "2 tasks in api"
    assert proposal.branch == "planrun-p"
    assert proposal.tasks == ("A", "CHECK")
    assert watch.event(finished("CHECK")) == []  # once per run


def test_a_failed_check_proposes_nothing_to_publish(watch: Watch) -> None:
    watch.event(AttemptStarted(key="CHECK", attempt=1, log_path="x"))
    watch.event(finished("A", reason="up to date"))
    [proposal] = watch.event(finished("CHECK", "failed", "exit code 1"))
    assert not proposal.verified
    assert proposal.reason == "CHECK failed: exit code 1"


def test_nothing_that_ran_proposes_nothing(watch: Watch) -> None:
    watch.event(finished("A", reason="up to date"))
    assert watch.event(finished("CHECK", reason="up to date")) == []


def test_the_default_body_pings_no_one_and_opens_no_html() -> None:
    body = default_body([{"key": "K`1", "title": "@team <!-- x -->\nrest", "status": "done"}])
    assert "@team" not in body
    assert "<!--" not in body
    assert "`K?1`" in body
