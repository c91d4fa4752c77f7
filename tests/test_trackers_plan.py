"""``trackers:`` in a plan and ``for_each: {tracker: ...}``: checks, items, fingerprints.

The items come from the GitHub stand-in (tests/github_standin.py) over real HTTP; the
plan is compiled in this process (``load_plan``), as ``validate``, ``plan`` and ``apply``
compile it.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from planrun.core.fingerprint import fingerprint
from planrun.errors import PlanError
from planrun.plan.load import load_plan
from tests.github_standin import Standin, serve

TOKEN_VAR = "PLANRUN_TEST_GH_TOKEN"


@pytest.fixture
def github(monkeypatch: pytest.MonkeyPatch) -> Iterator[Standin]:
    standin = Standin()
    standin.add_issue(1, "Fix the parser", "It crashes on tabs.", labels=["agent", "bug"])
    standin.add_issue(2, "Not for agents", labels=["bug"])
    standin.add_issue(3, "Add logging", "Use the helper.", labels=["agent"], author="mona")
    with serve(standin):
        monkeypatch.setenv(TOKEN_VAR, standin.token)
        yield standin
    assert standin.problems == []


def plan_text(url: str, *, extra: str = "", select: str = "{labels: [agent]}") -> str:
    return f"""\
version: 1
settings:
  secrets: [{TOKEN_VAR}]
trackers:
  gh:
    kind: github
    repo: acme/api
    url: {url}
    token: {TOKEN_VAR}
{extra}tasks:
  FIX:
    title: "{{{{ item.title }}}}"
    for_each: {{tracker: gh, select: {select}}}
    run: ["sh", "-c", "printf '%s' \\"$PLANRUN_ITEM_BODY\\""]
"""


def compile_text(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "plan.yaml"
    path.write_text(text, encoding="utf-8")
    return load_plan(path)


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(PlanError) as caught:
        compile_text(tmp_path, text)
    return [str(d) for d in caught.value.diagnostics]


def test_items_of_an_issue_search_become_tasks(tmp_path: Path, github: Standin) -> None:
    plan = compile_text(tmp_path, plan_text(github.url))
    assert plan.graph.topological()  # a valid graph
    assert [k for k in plan.work] == ["FIX[1]", "FIX[3]"]
    task = plan.tasks["FIX[3]"]
    assert task.title == "Add logging"
    assert task.item_id == "3"
    assert dict(task.item) == {
        "id": "3",
        "number": 3,
        "key": "acme/api#3",
        "title": "Add logging",
        "body": "Use the helper.",
        "url": "https://github.com/acme/api/issues/3",
        "labels": ["agent"],
        "author": "mona",
        "tracker": "gh",
        "ref": "3",
        "index": 1,
    }
    listed = [r for r in github.requests if r[1].endswith("/issues")]
    assert len(listed) == 1  # one read per compile
    twice = plan_text(github.url) + (
        '  AGAIN:\n    for_each: {tracker: gh, select: {labels: [agent]}}\n    run: ["true"]\n'
    )
    assert len(compile_text(tmp_path, twice).work) == 4
    assert len([r for r in github.requests if r[1].endswith("/issues")]) == 2


def test_the_fingerprint_follows_the_item_but_not_planrun_s_labels(
    tmp_path: Path, github: Standin
) -> None:
    status = "    status: {}\n"
    text = plan_text(github.url).replace(
        f"    token: {TOKEN_VAR}\n", f"    token: {TOKEN_VAR}\n{status}"
    )
    first = compile_text(tmp_path, text)
    before = {k: fingerprint(first, first.tasks[k])[0] for k in first.work}
    github.issues[1]["labels"].append(github.label("planrun:running"))  # planrun's own
    github.issues[3]["body"] = "Use the helper, and test it."  # a person's edit
    second = compile_text(tmp_path, text)
    after = {k: fingerprint(second, second.tasks[k])[0] for k in second.work}
    assert after["FIX[1]"] == before["FIX[1]"]
    assert after["FIX[3]"] != before["FIX[3]"]


def test_pages_are_followed(tmp_path: Path, github: Standin) -> None:
    for number in range(10, 260):
        github.add_issue(number, f"Issue {number}", labels=["agent"])
    plan = compile_text(tmp_path, plan_text(github.url))
    assert len(plan.work) == 252
    pages = [r for r in github.requests if r[1].endswith("/issues")]
    assert len(pages) == 3


def test_no_matching_item_is_an_empty_fan_out(tmp_path: Path, github: Standin) -> None:
    plan = compile_text(tmp_path, plan_text(github.url, select="{labels: [nothing]}"))
    assert plan.work == ()
    assert plan.tasks["FIX"].kind == "group"


def test_a_rate_limit_is_waited_out(tmp_path: Path, github: Standin) -> None:
    github.rate_limited = 1
    plan = compile_text(tmp_path, plan_text(github.url))
    assert len(plan.work) == 2
    github.rate_limited, github.rate_limit_status = 1, 429
    assert len(compile_text(tmp_path, plan_text(github.url)).work) == 2


def test_tracker_mistakes_are_located(tmp_path: Path, github: Standin) -> None:
    text = plan_text(github.url).replace("for_each: {tracker: gh,", "for_each: {tracker: hg,")
    assert problems(tmp_path, text) == [f"{tmp_path / 'plan.yaml'}:13:25: unknown tracker 'hg'"]
    undeclared = plan_text(github.url).replace(f"settings:\n  secrets: [{TOKEN_VAR}]\n", "")
    found = problems(tmp_path, undeclared)
    assert len(found) == 1
    assert ":7:12: tracker gh: token 'PLANRUN_TEST_GH_TOKEN' is not declared" in found[0]
    kind = plan_text(github.url).replace("kind: github", "kind: gitlab")
    [wrong_kind] = problems(tmp_path, kind)
    assert ":6:5: " in wrong_kind
    assert "'gitlab'" in wrong_kind
    assert "'github', 'plane', 'jira'" in wrong_kind
    granted = plan_text(github.url).replace("    run: [", f"    secrets: [{TOKEN_VAR}]\n    run: [")
    found = problems(tmp_path, granted)
    assert found == [
        f"{tmp_path / 'plan.yaml'}:14:15: secret 'PLANRUN_TEST_GH_TOKEN' is the token of "
        "tracker gh; tracker credentials are never given to a task's session"
    ]
    inherited = plan_text(github.url).replace(
        "settings:\n", f"settings:\n  env: {{inherit: [PATH, {TOKEN_VAR}]}}\n"
    )
    [found_inherit] = problems(tmp_path, inherited)
    assert f"plan.yaml:3:25: {TOKEN_VAR} is the token of tracker gh" in found_inherit


def test_an_unset_token_and_an_unreachable_tracker_are_named(
    tmp_path: Path, github: Standin, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TOKEN_VAR)
    found = problems(tmp_path, plan_text(github.url))
    assert found == [
        f"{tmp_path / 'plan.yaml'}:9:12: tracker gh: the environment variable "
        f"{TOKEN_VAR} (its token) is not set"
    ]
    monkeypatch.setenv(TOKEN_VAR, "wrong")
    found = problems(tmp_path, plan_text(github.url))
    assert "tracker gh: GET /repos/acme/api/issues answered 401: Bad credentials" in found[0]
    monkeypatch.setenv(TOKEN_VAR, github.token)
    found = problems(tmp_path, plan_text("http://127.0.0.1:9"))
    assert "tracker gh is unreachable at http://127.0.0.1:9/" in found[0]


def test_validate_exits_2_before_any_side_effect(tmp_path: Path, github: Standin) -> None:
    text = plan_text(github.url).replace("tracker: gh,", "tracker: nope,")
    path = tmp_path / "plan.yaml"
    path.write_text(text, encoding="utf-8")
    out = subprocess.run(
        [sys.executable, "-m", "planrun", "apply", str(path)],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert out.returncode == 2, out.stderr
    assert "unknown tracker 'nope'" in out.stderr
    assert not (tmp_path / ".planrun").exists()


def test_the_base_install_imports_no_http_client(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text('version: 1\ntasks:\n  A: {run: ["true"]}\n', encoding="utf-8")
    code = (
        "import sys, planrun.cli\n"
        "from planrun.plan.load import load_plan\n"
        f"load_plan({str(path)!r})\n"
        "assert 'httpx' not in sys.modules and 'planrun.trackers' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_fields_of_another_kind_are_refused(tmp_path: Path, github: Standin) -> None:
    text = plan_text(github.url, select='{jql: "project = X"}').replace(
        f"    token: {TOKEN_VAR}\n",
        f"    token: {TOKEN_VAR}\n    status: {{done: {{state: Done}}}}\n",
    )
    found = problems(tmp_path, text)
    assert found == [
        f"{tmp_path / 'plan.yaml'}:10:28: tracker gh (github) takes close and label here, "
        "not state",
        f"{tmp_path / 'plan.yaml'}:14:43: select.jql is not for a github tracker (it takes "
        "assignee, labels, limit, state)",
    ]


def test_batch_is_refused_with_a_tracker(tmp_path: Path, github: Standin) -> None:
    text = plan_text(github.url, select="{labels: [agent]}, batch: 2")
    [found] = problems(tmp_path, text)
    assert "batch cannot be combined with tracker" in found
    assert github.requests == []  # an invalid plan reads no tracker
