"""A task's own changeset: real ``planrun apply``, real git (a bare repository as "the
org", a clone as the project) and the GitHub stand-in over real HTTP.

BUMP has a changeset; OTHER lands on the same integration branch; CHECK needs BUMP and
fails the first time: nothing is proposed; once it passes (``--rerun-failed``), BUMP's PR
is opened with BUMP's work alone, one commit on main; a third apply sends nothing; an
edited BUMP updates the PR, still one commit on main. A
task's changeset in a project with one is refused at load.
"""

from __future__ import annotations

from pathlib import Path

from tests.github_standin import Standin
from tests.gitrepo import git
from tests.runs import apply, planrun
from tests.test_changes import changesets
from tests.test_changes_base import TOKEN_VAR, org

__all__ = ["org"]  # the fixture, shared with tests/test_changes_base.py

BRANCH = "planrun/tasks/BUMP"


def write_plan(folder: Path, url: str, *, project_changeset: str = "", version: str = "v2") -> Path:
    changeset = f"{{repo: acme/api, token: {TOKEN_VAR}, url: '{url}', title: Bump VERSION}}"
    lines = [
        "version: 1",
        "name: tasks",
        f"settings: {{secrets: [{TOKEN_VAR}]}}",
        "projects:",
        "  api:",
        "    path: api/clone",
        "    base_branch: main",
        *([f"    changeset: {project_changeset}"] if project_changeset else []),
        "tasks:",
        "  BUMP:",
        "    project: api",
        f"    run: {{shell: 'echo {version} > VERSION'}}",
        f"    changeset: {changeset}",
        "  OTHER:",
        "    project: api",
        "    run: {shell: 'echo other > OTHER'}",
        "  CHECK:",
        "    project: api",
        "    needs: [BUMP]",
        f"    run: {{shell: 'test -e {folder}/ok && test $(cat VERSION) = {version}'}}",
    ]
    path = folder / "plan.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_tasks_changeset_opens_its_own_pr_once_its_checks_pass(
    tmp_path: Path, org: Standin
) -> None:
    plan = write_plan(tmp_path, org.url)
    first = apply(plan)
    assert first.returncode == 1, first.stderr  # CHECK failed: nothing proposed
    assert org.pulls_of("acme/api") == []
    assert git(org.bare["acme/api"], "branch", "--list", BRANCH) == ""

    (tmp_path / "ok").write_text("")
    second = apply(plan, "--rerun-failed")
    assert second.returncode == 0, second.stderr
    [pull] = org.pulls_of("acme/api")
    assert (pull["head"]["ref"], pull["base"]["ref"], pull["title"]) == (
        BRANCH,
        "main",
        "Bump VERSION",
    )
    bare = org.bare["acme/api"]
    assert git(bare, "show", f"{BRANCH}:VERSION") == "v2"
    assert git(bare, "ls-tree", "--name-only", BRANCH).split() == ["README", "VERSION"]
    assert git(bare, "rev-parse", f"{BRANCH}^") == git(bare, "rev-parse", "main")
    assert git(bare, "log", "-1", "--format=%s", BRANCH) == "Bump VERSION"

    [row] = [line for line in changesets(plan).stdout.splitlines() if "acme/api" in line]
    assert row.split()[:3] == ["BUMP", "acme/api", "draft"]

    writes = len(org.writes())
    third = apply(plan)
    assert third.returncode == 0, third.stderr
    assert len(org.writes()) == writes

    write_plan(tmp_path, org.url, version="v3")  # an edit: its PR is updated, one commit
    fourth = apply(plan)
    assert fourth.returncode == 0, fourth.stderr
    [again] = org.pulls_of("acme/api")
    assert again["number"] == pull["number"]
    assert git(bare, "show", f"{BRANCH}:VERSION") == "v3"
    assert git(bare, "rev-parse", f"{BRANCH}^") == git(bare, "rev-parse", "main")


def test_a_tasks_changeset_in_a_project_with_one_is_refused(tmp_path: Path, org: Standin) -> None:
    project = f"{{repo: acme/api, token: {TOKEN_VAR}, url: '{org.url}'}}"
    plan = write_plan(tmp_path, org.url, project_changeset=project)
    done = planrun("validate", str(plan), cwd=tmp_path)
    assert done.returncode == 2
    assert "plan.yaml:" in done.stderr
    assert "its project api has one too" in done.stderr
    assert org.requests == []
