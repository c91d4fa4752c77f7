"""Changesets: real ``planrun apply`` processes, real git (bare repositories as "the org",
a clone of each as a project) and the GitHub stand-in over real HTTP on 127.0.0.1.

Draft PRs after the checks pass, nothing published for a failing check, a second apply
that changes nothing, an edited task updating its PR, a PR a person closed never
reopened, planrun killed between the push and the PR (one PR after), the hourly limit
holding a PR for a later apply, and a secret in task output never reaching GitHub.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.github_standin import Standin, serve
from tests.gitrepo import git, make_repos, tip
from tests.runs import apply, environment, kill9, planrun, spawn, stop, wait_for

TOKEN_VAR = "PLANRUN_TEST_GH_TOKEN"
LEAK_VAR = "PLANRUN_TEST_LEAK"
LEAK = "s3cr3t-value-that-must-not-leak"
REPOS = ("api", "web")


@pytest.fixture
def org(tmp_path: Path, clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Standin]:
    """The stand-in serving acme/api and acme/web, each a bare repository with a clone."""
    standin = Standin(repo="acme/issues", repos=[f"acme/{n}" for n in REPOS])
    for name in REPOS:
        (tmp_path / name).mkdir()
        repos = make_repos(tmp_path / name, {"VERSION": "v1\n"})
        standin.bare[f"acme/{name}"] = repos.origin
    monkeypatch.setenv(TOKEN_VAR, standin.token)
    monkeypatch.setenv(LEAK_VAR, LEAK)
    with serve(standin):
        yield standin
    assert standin.problems == []


def write_plan(
    folder: Path,
    url: str,
    version: str = "v2",
    *,
    fail: str = "",
    changesets: str = "{}",
    published: str = "draft",
) -> Path:
    lines = [
        "version: 1",
        "name: bump",
        f"settings: {{secrets: [{TOKEN_VAR}, {LEAK_VAR}]}}",
        f"changesets: {changesets}",
        "projects:",
    ]
    for name in REPOS:
        lines += [
            f"  {name}:",
            f"    path: {name}/clone",
            "    base_branch: main",
            f"    changeset: {{repo: acme/{name}, token: {TOKEN_VAR}, url: '{url}',",
            "      title: 'Bump VERSION in {{ project.name }}', labels: [batch],",
            f"      reviewers: [octocat], published: {published}}}",
        ]
    lines.append("tasks:")
    for name in REPOS:
        check = "false" if name == fail else f'test "$(cat VERSION)" = {version}'
        lines += [
            f"  BUMP-{name}:",
            f"    project: {name}",
            f"    secrets: [{LEAK_VAR}]",
            f"    run: {{shell: 'echo \"token is ${LEAK_VAR}\"; echo {version} > VERSION'}}",
            f"  CHECK-{name}:",
            f"    project: {name}",
            f"    needs: [BUMP-{name}]",
            f"    run: {{shell: '{check}'}}",
        ]
    path = folder / "plan.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def changesets(plan: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``planrun changesets PLAN ARGS``, in this process: it only reads and calls GitHub."""
    from planrun.cli import main

    out = io.StringIO()
    code = main(["changesets", str(plan), *args], out=out)
    return subprocess.CompletedProcess([], code, out.getvalue(), "")


def remote_tip(standin: Standin, name: str, branch: str = "planrun-bump") -> str | None:
    return tip(standin.bare[f"acme/{name}"], f"refs/heads/{branch}")


def no_leak(standin: Standin) -> None:
    sent = json.dumps([r[2] for r in standin.requests])
    assert LEAK not in sent


def test_draft_prs_after_checks_then_nothing_then_an_edit_then_a_closed_pr(
    tmp_path: Path, org: Standin
) -> None:
    plan = write_plan(tmp_path, org.url)
    first = apply(plan)
    assert first.returncode == 0, first.stderr
    for name in REPOS:
        [pull] = org.pulls_of(f"acme/{name}")
        assert pull["draft"]
        assert pull["state"] == "open"
        assert pull["title"] == f"Bump VERSION in {name}"
        assert pull["head"]["ref"] == "planrun-bump"
        assert pull["base"]["ref"] == "main"
        assert pull["head"]["sha"] == remote_tip(org, name)
        assert [label["name"] for label in pull["labels"]] == ["batch"]
        assert [u["login"] for u in pull["requested_reviewers"]] == ["octocat"]
        assert f"`CHECK-{name}`" in pull["body"]
        assert "**done**" in pull["body"]
        assert git(org.bare[f"acme/{name}"], "show", "planrun-bump:VERSION") == "v2"
    no_leak(org)

    writes, tips = len(org.writes()), {n: remote_tip(org, n) for n in REPOS}
    second = apply(plan)
    assert second.returncode == 0, second.stderr
    assert len(org.writes()) == writes  # no new PR, no edit
    assert {n: remote_tip(org, n) for n in REPOS} == tips  # no new push

    write_plan(tmp_path, org.url, version="v3")  # an edited task: its PR is updated
    third = apply(plan)
    assert third.returncode == 0, third.stderr
    for name in REPOS:
        [pull] = org.pulls_of(f"acme/{name}")
        assert pull["number"] == 1
        assert git(org.bare[f"acme/{name}"], "show", "planrun-bump:VERSION") == "v3"

    org.close_pull("acme/api", 1)  # a person says no
    before = remote_tip(org, "api")
    write_plan(tmp_path, org.url, version="v4")
    fourth = apply(plan)
    assert fourth.returncode == 0, fourth.stderr
    [pull] = org.pulls_of("acme/api")
    assert pull["state"] == "closed"  # never reopened
    assert remote_tip(org, "api") == before  # nor pushed to
    assert git(org.bare["acme/web"], "show", "planrun-bump:VERSION") == "v4"

    listed = changesets(plan, "list")
    assert listed.returncode == 0, listed.stderr
    assert "acme/api" in listed.stdout
    assert "closed" in listed.stdout
    assert "acme/web" in listed.stdout
    assert "draft" in listed.stdout
    status = planrun("status", str(plan), cwd=tmp_path)
    assert "changesets: 2" in status.stdout, status.stdout
    no_leak(org)


def test_a_failing_check_publishes_nothing_and_fails_the_run(tmp_path: Path, org: Standin) -> None:
    plan = write_plan(tmp_path, org.url, fail="web")
    done = apply(plan)
    assert done.returncode == 1, done.stderr
    assert org.pulls_of("acme/web") == []
    assert remote_tip(org, "web") is None  # nothing pushed
    [pull] = org.pulls_of("acme/api")
    assert pull["draft"]
    listed = changesets(plan, "list", "--state", "failed")
    assert "acme/web" in listed.stdout
    assert "acme/api" not in listed.stdout
    lenient = write_plan(tmp_path, org.url, fail="web", changesets="{fail_on: []}")
    again = apply(lenient, "--rerun-failed")
    assert again.returncode == 0, again.stderr  # a failed repository is not counted
    no_leak(org)


def killed_while_opening(org: Standin, plan: Path, *, drop: bool) -> None:
    """``apply`` killed -9 while the stand-in holds its request to open a PR (``drop``:
    that PR is never made); release it with ``org.hold_writes.set()``."""
    org.hold_writes, org.hold_when, org.drop_held = threading.Event(), '"draft"', drop
    proc = spawn("apply", str(plan), "--progress", "plain", cwd=plan.parent)
    try:
        wait_for(org.held.is_set, timeout=30, what="a PR being opened")
        kill9(proc)
    finally:
        stop(proc)


@pytest.mark.parametrize("reached", [False, True], ids=["lost", "made-after-the-kill"])
def test_planrun_killed_between_push_and_pr_makes_one_pr_after(
    tmp_path: Path, org: Standin, reached: bool
) -> None:
    plan = write_plan(tmp_path, org.url, changesets="{}")
    killed_while_opening(org, plan, drop=not reached)
    assert any(remote_tip(org, n) for n in REPOS)  # pushed before the PR was asked for
    org.hold_writes.set()
    org.hold_writes = None
    wait_for(lambda: org.drop_held or org.pulls, what="the held request")
    again = apply(plan)
    assert again.returncode == 0, again.stderr
    for name in REPOS:
        [pull] = org.pulls_of(f"acme/{name}")
        assert [label["name"] for label in pull["labels"]] == ["batch"]
        assert [u["login"] for u in pull["requested_reviewers"]] == ["octocat"]


def test_the_hourly_limit_holds_a_pr_for_a_later_apply(tmp_path: Path, org: Standin) -> None:
    plan = write_plan(tmp_path, org.url, changesets="{per_hour: 1}", published="true")
    first = apply(plan)
    assert first.returncode == 0, first.stderr  # rate-limited is not a failure by default
    assert len(org.pulls) == 1
    assert "not published yet (at most 1 PRs per hour)" in first.stderr
    [pull] = org.pulls.values()
    assert not pull["draft"]
    strict = write_plan(
        tmp_path, org.url, changesets="{per_hour: 1, fail_on: [rate_limited]}", published="true"
    )
    assert apply(strict).returncode == 1  # still held, and this plan counts it
    assert len(org.pulls) == 1
    write_plan(tmp_path, org.url, changesets="{per_hour: 2}", published="true")
    later = apply(plan)
    assert later.returncode == 0, later.stderr
    assert len(org.pulls) == 2  # the held one went out; nothing ran again
    write_plan(tmp_path, org.url, "v3", changesets="{per_hour: 2}", published="true")
    edited = apply(plan)  # two PRs this hour already: the updates wait too
    assert edited.returncode == 0, edited.stderr
    assert "changesets of api, web not published yet" in edited.stderr
    for name in REPOS:
        assert git(org.bare[f"acme/{name}"], "show", "planrun-bump:VERSION") == "v2"


def test_a_plan_without_changesets_imports_nothing_of_them(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text('version: 1\ntasks:\n  A: {run: ["true"]}\n', encoding="utf-8")
    code = (
        "import sys\n"
        "from planrun.cli import main\n"
        f"assert main(['apply', {str(path)!r}, '--progress', 'none'], out=sys.stderr) == 0\n"
        "assert 'httpx' not in sys.modules, 'httpx'\n"
        "assert not [m for m in sys.modules if m.startswith('planrun.changes')]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path, env=environment())


def test_a_wrong_changeset_is_refused_at_load_before_anything_runs(
    tmp_path: Path, clean_env: Path
) -> None:
    (tmp_path / "api").mkdir()
    make_repos(tmp_path / "api")
    text = f"""\
version: 1
settings: {{secrets: [{LEAK_VAR}]}}
projects:
  api:
    path: api/clone
    integrate: none
    changeset:
      repo: acme/api
      token: {TOKEN_VAR}
      branch: "bad..{{{{ plan.name }}}}"
      title: "{{{{ project.nam }}}}"
      published: maybe
tasks:
  A: {{project: api, run: [touch, ran], secrets: [{LEAK_VAR}]}}
"""
    path = tmp_path / "plan.yaml"
    path.write_text(text, encoding="utf-8")
    done = planrun("apply", str(path), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert f"{path}:12:18: " in done.stderr  # published: maybe
    assert "published is false, draft or true" in done.stderr
    assert not (tmp_path / ".planrun").exists()
    path.write_text(text.replace("      published: maybe\n", ""), encoding="utf-8")
    done = planrun("validate", str(path), cwd=tmp_path)
    assert done.returncode == 2
    found = done.stderr
    assert f"{path}:6:16: project api has a changeset: its tasks must land" in found
    assert f"{path}:9:14: project api: changeset token {TOKEN_VAR!r} is not declared" in found
    assert f"{path}:10:15: changeset branch 'bad..plan'" in found
    assert f"{path}:11:" in found
    assert "project.nam" in found


def test_changesets_lists_github_state_and_acts_in_bulk(tmp_path: Path, org: Standin) -> None:
    from tests.github_pulls import check_run, review

    plan = write_plan(tmp_path, org.url, published="true")
    assert apply(plan).returncode == 0
    sha = org.pulls[("acme/api", 1)]["head"]["sha"]
    org.check_runs[sha] = [check_run(sha, "ci", "failure")]
    org.reviews[("acme/api", 1)] = [review("acme/api", 1, "octocat", "CHANGES_REQUESTED")]
    listed = changesets(plan, "--repo", "acme/api")
    assert listed.returncode == 0, listed.stderr
    [row] = [line for line in listed.stdout.splitlines() if "acme/api" in line]
    assert row.split()[2:5] == ["open", "failing", "changes_requested"]
    assert "acme/web" not in listed.stdout
    failing = changesets(plan, "--checks", "failing")
    assert "acme/api" in failing.stdout
    assert "acme/web" not in failing.stdout
    unchecked = changesets(plan, "--checks", "none", "--state", "open")
    assert "acme/web" in unchecked.stdout
    assert "acme/api" not in unchecked.stdout

    said = changesets(plan, "comment", f"see {LEAK} and more")
    assert said.returncode == 0, said.stderr
    assert said.stdout.count("commented") == 2
    comments = list(org.comments.values())
    assert len(comments) == 2
    assert all(LEAK not in c["body"] and "see " in c["body"] for c in comments)

    merged = changesets(plan, "merge", "--repo", "acme/web")
    assert merged.returncode == 0, merged.stderr
    assert org.pulls[("acme/web", 1)]["merged"]
    assert not org.pulls[("acme/api", 1)]["merged"]
    listed = changesets(plan, "list", "--state", "merged")
    assert "acme/web" in listed.stdout
    assert "acme/api" not in listed.stdout

    before = remote_tip(org, "web")
    write_plan(tmp_path, org.url, version="v3", published="true")
    assert apply(plan).returncode == 0
    assert remote_tip(org, "web") == before  # merged: done, nothing pushed to it again
    assert git(org.bare["acme/api"], "show", "planrun-bump:VERSION") == "v3"
    closed = changesets(plan, "close")
    assert closed.returncode == 0, closed.stderr
    assert org.pulls[("acme/api", 1)]["state"] == "closed"
    assert "acme/web#1: merged, not closed" in closed.stdout
    no_leak(org)


def test_unpublished_no_diff_and_a_pr_someone_else_opened(tmp_path: Path, org: Standin) -> None:
    plan = write_plan(tmp_path, org.url, version="v1", published='{"acme/api": true}')
    done = apply(plan)  # v1 is already there: no diff anywhere
    assert done.returncode == 0, done.stderr
    assert org.requests == []
    strict = write_plan(tmp_path, org.url, version="v1", changesets="{fail_on: [no_diff]}")
    assert apply(strict, "--force-all").returncode == 1

    web = tmp_path / "web" / "clone"  # a person's own PR for the branch planrun would use
    git(web, "push", "-q", "origin", "main:refs/heads/planrun-bump")
    from tests.github_pulls import pull_data

    person = {"head": "planrun-bump", "base": "main", "title": "mine", "body": "by hand"}
    org.pulls[("acme/web", 7)] = pull_data(org, "acme/web", 7, person)
    changed = write_plan(
        tmp_path,
        org.url,
        published='{"acme/api": false, "*": true}',
        changesets="{fail_on: [failed, exists]}",
    )
    done = apply(changed)
    assert done.returncode == 1, done.stderr  # this plan counts `exists` as a failure
    assert org.pulls_of("acme/api") == []  # unpublished: nothing left the machine
    assert remote_tip(org, "api") is None
    assert [p["number"] for p in org.pulls_of("acme/web")] == [7]
    assert org.pulls[("acme/web", 7)]["body"] == "by hand"  # left alone
    listed = changesets(changed).stdout
    assert "unpublished" in listed
    assert "exists" in listed


def test_a_branch_someone_pushed_to_is_never_forced(tmp_path: Path, org: Standin) -> None:
    api = tmp_path / "api" / "clone"
    git(api, "checkout", "-q", "-b", "theirs")
    (api / "THEIRS").write_text("a person's work\n")
    git(api, "add", "THEIRS")
    git(api, "commit", "-q", "-m", "theirs")
    git(api, "push", "-q", "origin", "theirs:refs/heads/planrun-bump")
    git(api, "checkout", "-q", "main")
    theirs = remote_tip(org, "api")
    plan = write_plan(tmp_path, org.url)
    done = apply(plan)
    assert done.returncode == 1, done.stderr  # a failed repository fails the run
    assert remote_tip(org, "api") == theirs  # their commit is still there
    assert org.pulls_of("acme/api") == []
    assert len(org.pulls_of("acme/web")) == 1
    [row] = [line for line in changesets(plan).stdout.splitlines() if "acme/api" in line]
    assert " failed " in row
    assert "rejected" in row or "fetch first" in row or "non-fast-forward" in row
    status = planrun("status", str(plan), cwd=tmp_path)
    assert "changesets: 2 (1 failed, 1 opened)" in status.stdout


def test_github_down_fails_the_run_and_the_plan_as_it_is_now_decides(
    tmp_path: Path, org: Standin
) -> None:
    org.fail_writes = 10_000
    plan = write_plan(tmp_path, org.url)
    done = apply(plan)
    assert done.returncode == 1, done.stderr  # undelivered at the end: a failed repository
    assert "changesets of api, web not published yet" in done.stderr
    assert org.pulls == {}
    org.fail_writes = 0
    write_plan(tmp_path, org.url, published='{"acme/api": false, "*": draft}')
    again = apply(plan)  # nothing runs again; the waiting changesets go as the plan says now
    assert again.returncode == 0, again.stderr
    assert org.pulls_of("acme/api") == []
    assert len(org.pulls_of("acme/web")) == 1
