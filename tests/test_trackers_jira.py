"""Jira issues as a fan-out source (JQL, cursor pages, ADF descriptions) and status back as
workflow transitions and one comment, through real ``planrun apply`` processes against the
Jira stand-in (tests/jira_standin.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from planrun.plan.load import load_plan
from planrun.trackers.jira import adf_text
from tests.jira_standin import JiraStandin, serve_jira
from tests.runs import apply

TOKEN_VAR = "PLANRUN_TEST_JIRA_TOKEN"


@pytest.fixture
def jira(monkeypatch: pytest.MonkeyPatch) -> Iterator[JiraStandin]:
    standin = JiraStandin()
    standin.add_issue("ABC-1", "Fix the parser", "It crashes\non tabs.", labels=["agent"])
    standin.add_issue("ABC-2", "Not for agents", labels=["bug"])
    standin.add_issue("ABC-3", "Already done", labels=["agent"], status="Done")
    standin.add_issue("XYZ-1", "Other project", labels=["agent"])
    monkeypatch.setenv(TOKEN_VAR, standin.token)
    with serve_jira(standin):
        yield standin
    assert standin.problems == []


def write_plan(folder: Path, standin: JiraStandin, select: str = "{labels: [agent]}") -> Path:
    path = folder / "plan.yaml"
    path.write_text(
        f"""\
version: 1
settings: {{secrets: [{TOKEN_VAR}]}}
trackers:
  jira:
    kind: jira
    url: {standin.url}
    email: {standin.email}
    project: ABC
    token: {TOKEN_VAR}
    status: {{}}
tasks:
  WORK:
    title: "{{{{ item.title }}}}"
    for_each: {{tracker: jira, select: {select}}}
    run: {{shell: 'printf "%s\\n" "$PLANRUN_ITEM_KEY" >> ran.txt'}}
""",
        encoding="utf-8",
    )
    return path


def test_a_jql_search_becomes_tasks(tmp_path: Path, jira: JiraStandin) -> None:
    for number in range(10, 130):
        jira.add_issue(f"ABC-{number}", f"Issue {number}", labels=["agent"])  # two pages
    plan = load_plan(write_plan(tmp_path, jira))
    assert len(plan.work) == 121
    item = plan.tasks["WORK[ABC-1]"].item
    assert item["body"] == "It crashes\non tabs."
    assert item["url"] == f"{jira.url}/browse/ABC-1"
    [search, *_] = [r for r in jira.requests if r[1].endswith("/search/jql")]
    assert search[2]["jql"] == (
        'project = "ABC" AND statusCategory != Done AND labels = "agent" ORDER BY created ASC'
    )
    written = load_plan(write_plan(tmp_path, jira, select='{jql: "project = XYZ"}'))
    assert list(written.work) == ["WORK[XYZ-1]"]


def test_status_transitions_forward_with_one_comment(tmp_path: Path, jira: JiraStandin) -> None:
    plan = write_plan(tmp_path, jira)
    first = apply(plan)
    assert first.returncode == 0, first.stderr
    assert jira.status_of("ABC-1") == "Done"
    [comment] = jira.comments["ABC-1"]
    assert "is **done**" in comment["body"]
    assert comment["body"].endswith("]")  # the marker, as a last line
    assert jira.status_of("ABC-3") == "Done"
    assert "ABC-3" not in jira.comments
    writes = jira.writes()
    second = apply(plan)  # ABC-1 is Done now: out of the search, nothing written
    assert second.returncode == 0, second.stderr
    assert jira.writes() == writes


def test_a_workflow_without_the_transition_is_said_not_fatal(
    tmp_path: Path, jira: JiraStandin
) -> None:
    plan = write_plan(tmp_path, jira)
    text = plan.read_text().replace("status: {}", "status: {failed: {state: Blocked}}")
    plan.write_text(text.replace("printf", "exit 1; printf"))
    failed = apply(plan)
    assert failed.returncode == 1, failed.stderr
    assert "ABC-1 cannot move to 'Blocked'" in failed.stderr
    assert jira.status_of("ABC-1") != "Blocked"
    [comment] = jira.comments["ABC-1"]  # the comment still says why
    assert "is **failed**" in comment["body"]
    assert "exit code 1" in comment["body"]


def test_adf_is_read_as_text() -> None:
    doc = {
        "type": "doc",
        "content": [
            {"type": "paragraph", "content": [{"type": "text", "text": "one"}]},
            {
                "type": "bulletList",
                "content": [
                    {
                        "type": "listItem",
                        "content": [
                            {
                                "type": "paragraph",
                                "content": [
                                    {"type": "text", "text": "two"},
                                    {"type": "hardBreak"},
                                    {"type": "text", "text": "three"},
                                ],
                            }
                        ],
                    }
                ],
            },
        ],
    }
    assert adf_text(doc) == "one\ntwo\nthree"
