"""Repositories as a fan-out: real ``planrun`` processes over real bare repositories as
"the org" and the GitHub stand-in (its listing and search routes, tests/github_repos.py).

Listed repositories cloned into the state folder (fetched, never cloned again), a
``.batchignore`` opting one out, a query by organisation and topic, a repository that
stops matching (its PR closed only when the plan opts in), a canary wave that halts the
rest (and a re-apply that continues), bad input refused before any clone, and planrun
killed mid-run then applied again.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.github_standin import Standin, serve
from tests.gitrepo import git, tip
from tests.runs import apply, kill9, planrun, spawn, stop, wait_for

TOKEN_VAR = "PLANRUN_TEST_GH_TOKEN"


def make_org(root: Path, names: list[str], ignored: tuple[str, ...] = ()) -> dict[str, Path]:
    """A bare repository ``root/acme/<name>.git`` per name, on main; ``ignored`` ones hold
    a ``.batchignore``."""
    seed = root / "seed"
    git(root, "init", "-q", "-b", "main", str(seed))
    (seed / "VERSION").write_text("v1\n", encoding="utf-8")
    git(seed, "add", "-A")
    git(seed, "commit", "-qm", "v1")
    git(seed, "checkout", "-qb", "ignored")
    (seed / ".batchignore").write_text("", encoding="utf-8")
    git(seed, "add", "-A")
    git(seed, "commit", "-qm", "opt out")
    found = {}
    for name in names:
        bare = root / "acme" / f"{name}.git"
        git(root, "clone", "-q", "--bare", str(seed), str(bare))
        if name in ignored:
            git(bare, "update-ref", "refs/heads/main", "refs/heads/ignored")
        found[f"acme/{name}"] = bare
    return found


@pytest.fixture
def org(tmp_path: Path, clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Standin]:
    names = ["api", "web", "docs", "cli"]
    standin = Standin(repo="acme/issues", repos=[f"acme/{n}" for n in names])
    standin.bare.update(make_org(tmp_path, names, ignored=("docs",)))
    monkeypatch.setenv(TOKEN_VAR, standin.token)
    with serve(standin):
        yield standin
    assert standin.problems == []


def write_plan(
    folder: Path, url: str, repositories: str, *, changesets: str = "{}", check: str = "true"
) -> Path:
    text = f"""\
version: 1
name: bump
settings: {{secrets: [{TOKEN_VAR}]}}
changesets: {changesets}
projects:
  svc:
    repositories: {repositories}
    base_branch: main
    changeset:
      token: {TOKEN_VAR}
      url: '{url}'
      title: 'Bump {{{{ project.repo }}}}'
tasks:
  BUMP:
    project: svc
    run: {{shell: 'echo "v2 $PLANRUN_REPO_NAME {{{{ repo.repo }}}}" > VERSION'}}
  CHECK:
    project: svc
    needs: [BUMP]
    run: {{shell: '{check}'}}
"""
    path = folder / "plan.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def clone_of(plan: Path, repo: str) -> Path:
    return plan.parent / ".planrun" / "bump" / "repos" / repo


def remote_tip(org: Standin, repo: str) -> str | None:
    return tip(org.bare[repo], "refs/heads/planrun-bump")


def test_listed_repositories_run_and_publish_then_fetch_then_add_one(
    tmp_path: Path, org: Standin
) -> None:
    listed = "{{urls: [acme/api.git, 'file://{}', acme/docs.git]}}".format(org.bare["acme/web"])
    plan = write_plan(tmp_path, org.url, listed)
    shown = planrun("plan", str(plan), cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "acme/docs (svc[acme/docs]): ignored: .batchignore on main" in shown.stderr
    assert "BUMP[acme/api]" in shown.stdout
    assert "CHECK[acme/web]" in shown.stdout
    assert "acme/docs" not in shown.stdout
    assert "changesets: 2\n" in shown.stdout
    assert "acme/web  draft PR planrun-bump → main once its checks pass" in shown.stdout

    first = apply(plan)
    assert first.returncode == 0, first.stderr
    assert "ignored: .batchignore on main" in first.stderr
    for repo in ("acme/api", "acme/web"):
        [pull] = org.pulls_of(repo)
        assert pull["title"] == f"Bump {repo}"
        short = repo.split("/")[1]
        shown_file = git(org.bare[repo], "show", "planrun-bump:VERSION")
        assert shown_file == f"v2 {repo} {short}"
        assert git(clone_of(plan, repo), "config", "remote.origin.partialclonefilter") == (
            "blob:none"
        )
    assert org.pulls_of("acme/docs") == []
    marker = clone_of(plan, "acme/api") / ".git" / "planrun-test-marker"
    marker.write_text("still the first clone", encoding="utf-8")

    writes = len(org.writes())
    second = apply(plan)
    assert second.returncode == 0, second.stderr
    assert len(org.writes()) == writes  # nothing ran, nothing sent
    assert marker.exists()  # fetched, not cloned again

    added = listed.replace("acme/docs.git]", "acme/docs.git, acme/cli.git]")
    write_plan(tmp_path, org.url, added)
    third = apply(plan)
    assert third.returncode == 0, third.stderr
    assert "BUMP[acme/cli]: done" in third.stderr
    assert "BUMP[acme/api]: done: up to date" in third.stderr
    assert len(org.pulls_of("acme/cli")) == 1
    assert len(org.pulls_of("acme/api")) == 1


def test_a_query_selects_repositories_and_one_that_stops_matching_is_closed_if_asked(
    tmp_path: Path, org: Standin
) -> None:
    for repo in ("acme/api", "acme/web", "acme/cli"):
        org.topics[repo] = ["python"]
    org.archived.add("acme/cli")
    query = f"{{org: acme, topic: python, token: {TOKEN_VAR}, url: '{org.url}'}}"
    plan = write_plan(tmp_path, org.url, query)
    first = apply(plan)
    assert first.returncode == 0, first.stderr
    assert {r for (r, _) in org.pulls} == {"acme/api", "acme/web"}  # not archived cli
    searched = f"{{search: 'org:acme topic:python', token: {TOKEN_VAR}, url: '{org.url}'}}"
    write_plan(tmp_path, org.url, searched)
    same = planrun("plan", str(plan), cwd=tmp_path)
    assert same.stdout.startswith("plan bump: 4 up to date"), same.stdout

    org.topics["acme/web"] = []  # web no longer matches
    kept = apply(plan)
    assert kept.returncode == 0, kept.stderr
    assert "acme/web#1 is no longer among the plan's repositories" in kept.stderr
    assert org.pulls_of("acme/web")[0]["state"] == "open"  # never closed unless asked

    write_plan(tmp_path, org.url, searched, changesets="{close_unmatched: true}")
    closing = apply(plan)
    assert closing.returncode == 0, closing.stderr
    [pull] = org.pulls_of("acme/web")
    assert pull["state"] == "closed"
    [comment] = org.comments.values()
    assert "no longer among the repositories of plan bump" in comment["body"]
    assert org.pulls_of("acme/api")[0]["state"] == "open"
    writes = len(org.writes())
    assert apply(plan).returncode == 0
    assert len(org.writes()) == writes  # closed once


def test_bad_repositories_are_refused_before_any_clone(tmp_path: Path, org: Standin) -> None:
    cases = {
        "{urls: []}": "7:26: urls is empty",
        "{urls: [acme/api.git, acme/api.git]}": "7:41: repository acme/api is listed twice",
        "{org: acme}": "7:19: project svc: a repositories query (org, topic, search) needs token",
        "{urls: ['https://host/api.git']}": "7:27: cannot tell owner/name from 'https://host/",
        "{org: acme, token: NOPE}": "7:38: project svc: repositories token 'NOPE' is not declared",
    }
    for written, said in cases.items():
        plan = write_plan(tmp_path, org.url, written)
        done = planrun("apply", str(plan), cwd=tmp_path)
        assert done.returncode == 2, written
        assert f"{plan}:{said}" in done.stderr, done.stderr
        assert not (tmp_path / ".planrun").exists()


def test_a_canary_wave_that_fails_halts_the_rest_and_a_reapply_continues(
    tmp_path: Path, org: Standin
) -> None:
    listed = "{urls: [acme/api.git, acme/web.git, acme/cli.git]}"
    failing = 'test "$PLANRUN_REPO_NAME" != acme/api'
    waves = "{waves: [1], halt_above: 0%}"
    plan = write_plan(tmp_path, org.url, listed, changesets=waves, check=failing)
    first = apply(plan)
    assert first.returncode == 1, first.stderr
    halted = "cancelled: canary wave 1 failed: 1 of 1 repositories failed"
    assert f"BUMP[acme/web]: {halted}" in first.stderr
    assert f"BUMP[acme/cli]: {halted}" in first.stderr
    assert org.pulls == {}
    report = json.loads(planrun("report", str(plan), cwd=tmp_path).stdout)
    assert [(c["repo"], c["state"]) for c in report["changesets"]] == [("acme/api", "failed")]
    reasons = {t["key"]: t["reason"] for t in report["tasks"]}
    assert reasons["CHECK[acme/cli]"] == halted.removeprefix("cancelled: ")

    write_plan(tmp_path, org.url, listed, changesets=waves)  # the check fixed
    second = apply(plan)
    assert second.returncode == 0, second.stderr
    assert {r for (r, _) in org.pulls} == {"acme/api", "acme/web", "acme/cli"}


def test_killed_mid_run_then_applied_again_ends_with_one_pr_each(
    tmp_path: Path, org: Standin
) -> None:
    listed = "{urls: [acme/api.git, acme/web.git]}"
    go, started = tmp_path / "go", tmp_path / "started"
    wait = f"touch {started}; while [ ! -e {go} ]; do sleep 0.02; done"
    plan = write_plan(tmp_path, org.url, listed, check=wait)
    stale = clone_of(plan, "acme/.api.partial-999999")  # a clone cut short by a kill -9
    stale.mkdir(parents=True)
    proc = spawn("apply", str(plan), "--progress", "plain", cwd=tmp_path)
    try:
        wait_for(started.exists, timeout=30, what="a check to start")
        kill9(proc)
    finally:
        stop(proc)
    go.touch()
    again = apply(plan)
    assert again.returncode == 0, again.stderr
    for repo in ("acme/api", "acme/web"):
        assert len(org.pulls_of(repo)) == 1
        assert remote_tip(org, repo) is not None
    assert not stale.exists()
    assert not list(stale.parent.glob(".*partial*"))
