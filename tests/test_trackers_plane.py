"""Plane work items as a fan-out source and status back as states and one comment, through
real ``planrun apply`` processes against the Plane stand-in (tests/plane_standin.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from planrun.plan.load import load_plan
from tests.plane_standin import PlaneStandin, serve_plane
from tests.runs import apply

TOKEN_VAR = "PLANRUN_TEST_PLANE_KEY"


@pytest.fixture
def plane(monkeypatch: pytest.MonkeyPatch) -> Iterator[PlaneStandin]:
    standin = PlaneStandin()
    standin.add_item(1, "Fix the parser", "It crashes on tabs.", labels=["agent"])
    standin.add_item(2, "Not for agents", labels=["bug"])
    standin.add_item(3, "Shipped already", labels=["agent"], group="completed")
    standin.add_item(4, "Add logging", "{{ 6 * 7 }} $(touch pwned)", labels=["Agent"])
    monkeypatch.setenv(TOKEN_VAR, standin.token)
    with serve_plane(standin):
        yield standin
    assert standin.problems == []


def write_plan(folder: Path, standin: PlaneStandin, status: str = "{}") -> Path:
    path = folder / "plan.yaml"
    path.write_text(
        f"""\
version: 1
settings: {{secrets: [{TOKEN_VAR}]}}
trackers:
  board:
    kind: plane
    url: {standin.url}
    workspace: {standin.workspace}
    project: {standin.project}
    token: {TOKEN_VAR}
    status: {status}
tasks:
  WORK:
    title: "{{{{ item.title }}}}"
    for_each: {{tracker: board, select: {{labels: [agent]}}}}
    run: {{shell: 'printf "%s\\n" "$PLANRUN_ITEM_KEY" >> ran.txt'}}
""",
        encoding="utf-8",
    )
    return path


def test_open_items_with_the_label_become_tasks(tmp_path: Path, plane: PlaneStandin) -> None:
    for number in range(10, 215):
        plane.add_item(number, f"Item {number}", labels=["other"])  # pages
    plan = load_plan(write_plan(tmp_path, plane))
    assert list(plan.work) == ["WORK[ENG-1]", "WORK[ENG-4]"]
    item = plan.tasks["WORK[ENG-4]"].item
    assert item["body"] == "{{ 6 * 7 }} $(touch pwned)"
    assert item["url"] == f"{plane.url}/acme/browse/ENG-4/"
    assert item["labels"] == ["Agent"]


def test_status_moves_states_forward_and_keeps_one_comment(
    tmp_path: Path, plane: PlaneStandin
) -> None:
    plan = write_plan(tmp_path, plane)
    first = apply(plan)
    assert first.returncode == 0, first.stderr
    for key in ("ENG-1", "ENG-4"):
        assert plane.group_of(key) == "completed"
        [comment] = plane.comments_on(key)
        assert "is **done**" in comment["comment_html"]
        assert "planrun:status" not in comment["comment_html"]  # found by external_id
        assert comment["external_source"] == "planrun"
    assert plane.group_of("ENG-2") == "unstarted"
    assert not list(tmp_path.glob("pwned"))

    writes = [r for r in plane.requests if r[0] != "GET"]
    second = apply(plan)  # every item is closed now: nothing to run, nothing to write
    assert second.returncode == 0, second.stderr
    assert [r for r in plane.requests if r[0] != "GET"] == writes
    assert sorted((tmp_path / "ran.txt").read_text().split()) == ["ENG-1", "ENG-4"]


def test_an_outage_is_delivered_by_the_next_apply(tmp_path: Path, plane: PlaneStandin) -> None:
    plan = write_plan(tmp_path, plane, status="{done: {state: In Progress}}")
    plane.fail_writes = 10_000
    first = apply(plan)
    assert first.returncode == 0, first.stderr
    assert "not delivered yet" in first.stderr
    plane.fail_writes = 0
    second = apply(plan)
    assert second.returncode == 0, second.stderr
    for key in ("ENG-1", "ENG-4"):
        assert plane.group_of(key) == "started"
        assert len(plane.comments_on(key)) == 1
