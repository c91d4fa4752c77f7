"""A changeset whose base branch moved: real ``planrun apply``, real git (a bare repository
as "the org", a clone as the project) and the GitHub stand-in over real HTTP.

Rebased without a conflict (the checks and the verify run again on the rebased code, the
PR's branch is updated with a lease, no task's work is done again), a conflict the
project's agent (tests/fake_agent.py) resolves, one nobody resolves (``conflicted``,
nothing pushed), a person's commit on the PR's branch (refused), ``rerun``, and planrun
killed between the rebase and the push (one push after, one PR).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.github_standin import Standin, serve
from tests.gitrepo import commit_file, git, make_repos, tip
from tests.runs import State, apply, kill9, spawn, state_of, stop, wait_for

TOKEN_VAR = "PLANRUN_TEST_GH_TOKEN"
AGENT = str(Path(__file__).resolve().parent / "fake_agent.py")


@contextmanager
def one_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Standin]:
    """The stand-in serving acme/api: a bare repository, cloned as the project."""
    standin = Standin(repo="acme/issues", repos=["acme/api"])
    (tmp_path / "api").mkdir()
    repos = make_repos(tmp_path / "api", {"VERSION": "v1\n", "README": "hello\n"})
    standin.bare["acme/api"] = repos.origin
    monkeypatch.setenv(TOKEN_VAR, standin.token)
    with serve(standin):
        yield standin
    assert standin.problems == []


@pytest.fixture
def org(tmp_path: Path, clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Standin]:
    """:func:`one_repo`, and a person's clone of it."""
    with one_repo(tmp_path, monkeypatch) as standin:
        git(tmp_path, "clone", "-q", str(standin.bare["acme/api"]), str(tmp_path / "person"))
        yield standin


def write_plan(folder: Path, url: str, *, agent: str = "", on_base_change: str = "rebase") -> Path:
    """BUMP writes VERSION v2 (a command, or with ``agent`` the fake agent told to), its
    verify and CHECK note what they saw; ``agent`` is the prompt_command's extra step."""
    seen = folder / "seen"
    lines = [
        "version: 1",
        "name: bump",
        f"settings: {{secrets: [{TOKEN_VAR}]}}",
        "changesets: {fail_on: [failed, conflicted]}",
    ]
    if agent:
        follow = f'["{sys.executable}", "{AGENT}", --yolo, {agent}"{{{{ prompt }}}}"]'
        lines += [
            "providers:",
            "  fixer:",
            f'    command: ["{sys.executable}", "{AGENT}", --yolo]',
            f"    prompt_command: {follow}",
        ]
    lines += [
        "projects:",
        "  api:",
        "    path: api/clone",
        "    base_branch: main",
        f"    changeset: {{repo: acme/api, token: {TOKEN_VAR}, url: '{url}',",
        f"      on_base_change: {on_base_change}}}",
        "tasks:",
        "  BUMP:",
        "    project: api",
    ]
    if agent:
        lines += ["    provider: fixer", "    prompt: edit VERSION v2"]
    else:
        lines += [f"    run: {{shell: 'echo bumped >> {folder}/bumps; echo v2 > VERSION'}}"]
    lines += [
        f"    verify: {{shell: 'echo verify $(ls | tr \"\\n\" ,) >> {seen}'}}",
        "  CHECK:",
        "    project: api",
        "    needs: [BUMP]",
        f'    run: {{shell: \'echo check $(ls | tr "\\n" ,) >> {seen}; '
        "test $(cat VERSION) = v2'}",
    ]
    path = folder / "plan.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def move_base(tmp_path: Path, name: str = "NEWS", text: str = "news\n") -> str:
    """A person pushes a commit to the base branch; the new base commit."""
    person = tmp_path / "person"
    git(person, "pull", "-q", "--ff-only")
    sha = commit_file(person, name, text, f"a person adds {name}")
    git(person, "push", "-q", "origin", "main")
    return sha


def remote(org: Standin, ref: str = "refs/heads/planrun-bump") -> str | None:
    return tip(org.bare["acme/api"], ref)


def show(org: Standin, what: str) -> str:
    return git(org.bare["acme/api"], "show", what)


def test_a_moved_base_rebases_reruns_the_checks_and_updates_the_pr(
    tmp_path: Path, org: Standin
) -> None:
    plan = write_plan(tmp_path, org.url)
    assert apply(plan).returncode == 0
    [pull] = org.pulls_of("acme/api")
    first = remote(org)
    base = move_base(tmp_path)
    seen = (tmp_path / "seen").read_text().splitlines()

    again = apply(plan)
    assert again.returncode == 0, again.stderr
    assert "rebased planrun-bump onto" in again.stderr
    after = remote(org)
    assert after != first
    assert git(org.bare["acme/api"], "merge-base", "--is-ancestor", base, after) == ""
    assert show(org, "planrun-bump:VERSION") == "v2"
    assert show(org, "planrun-bump:NEWS") == "news"
    assert org.pulls_of("acme/api") == [pull]  # the same PR, its head updated
    assert (tmp_path / "bumps").read_text() == "bumped\n"  # the work was not done again
    new = (tmp_path / "seen").read_text().splitlines()[len(seen) :]
    assert sorted(line.split()[0] for line in new) == ["check", "verify"]
    assert all("NEWS" in line for line in new)  # both ran on the rebased code

    writes = len(org.writes())
    quiet = apply(plan)  # nothing moved since: nothing runs, nothing is sent
    assert quiet.returncode == 0, quiet.stderr
    assert len(org.writes()) == writes
    assert remote(org) == after


def test_a_conflict_goes_to_one_agent_turn_that_resolves_it(tmp_path: Path, org: Standin) -> None:
    saved = tmp_path / "conflict-prompt"
    plan = write_plan(
        tmp_path, org.url, agent=f'--save-prompt, "{saved}", --do, "edit VERSION v2", '
    )
    assert apply(plan).returncode == 0
    move_base(tmp_path, "VERSION", "v1.5\n")  # the same line: a conflict
    again = apply(plan)
    assert again.returncode == 0, again.stderr
    assert "the agent resolved VERSION" in again.stderr
    assert show(org, "planrun-bump:VERSION") == "v2"
    assert len(org.pulls_of("acme/api")) == 1
    prompt = saved.read_text()  # the file with its markers, quoted as data
    assert "--- VERSION ---\n<<<<<<< " in prompt
    assert "v1.5" in prompt
    [log] = (state_of(plan) / "logs" / "changesets").glob("*.BUMP.rebase.log")
    assert "prompt received" in log.read_text()


def test_a_conflict_nobody_resolves_is_conflicted_and_nothing_is_pushed(
    tmp_path: Path, org: Standin
) -> None:
    plan = write_plan(tmp_path, org.url, agent=" ")  # the agent's turn changes nothing
    assert apply(plan).returncode == 0
    before = remote(org)
    move_base(tmp_path, "VERSION", "v1.5\n")
    again = apply(plan)
    assert again.returncode == 1, again.stderr  # this plan counts `conflicted`
    assert "conflicted in VERSION" in again.stderr
    assert remote(org) == before
    from tests.test_changes import changesets

    [row] = [line for line in changesets(plan).stdout.splitlines() if "acme/api" in line]
    assert "conflicted" in row


def test_a_persons_commit_on_the_pr_branch_is_never_replaced(tmp_path: Path, org: Standin) -> None:
    plan = write_plan(tmp_path, org.url)
    assert apply(plan).returncode == 0
    person = tmp_path / "person"
    git(person, "fetch", "-q", "origin")
    git(person, "checkout", "-q", "-b", "theirs", "origin/planrun-bump")
    theirs = commit_file(person, "THEIRS", "mine\n", "a person's fix on the PR")
    git(person, "push", "-q", "origin", "theirs:planrun-bump")
    git(person, "checkout", "-q", "main")
    move_base(tmp_path)
    again = apply(plan)
    assert again.returncode == 1, again.stderr
    assert remote(org) == theirs  # their commit is still there
    from tests.test_changes import changesets

    [row] = [line for line in changesets(plan).stdout.splitlines() if "acme/api" in line]
    assert "planrun did not push" in row


def test_rerun_runs_the_tasks_again_on_the_new_base(tmp_path: Path, org: Standin) -> None:
    plan = write_plan(tmp_path, org.url, on_base_change="rerun")
    assert apply(plan).returncode == 0
    move_base(tmp_path)
    again = apply(plan)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "bumps").read_text() == "bumped\nbumped\n"
    assert show(org, "planrun-bump:NEWS") == "news"
    assert len(org.pulls_of("acme/api")) == 1
    clone = tmp_path / "api" / "clone"
    assert any(b.startswith("planrun-kept/bump/api/") for b in _branches(clone))


def test_killed_between_the_rebase_and_the_push_pushes_once_after(
    tmp_path: Path, org: Standin
) -> None:
    plan = write_plan(tmp_path, org.url)
    assert apply(plan).returncode == 0
    first = remote(org)
    move_base(tmp_path)
    gate = tmp_path / "gate"
    text = plan.read_text().replace(
        "test $(cat VERSION)", f"test -e {gate} || sleep 60; test $(cat VERSION)"
    )
    plan.write_text(text)  # CHECK changed: it runs, and waits
    proc = spawn("apply", str(plan), "--progress", "plain", cwd=tmp_path)
    try:
        wait_for(
            lambda: (
                _last(tmp_path / "seen").startswith("check") and "NEWS" in _last(tmp_path / "seen")
            ),
            timeout=30,
            what="the check",
        )
        kill9(proc)
    finally:
        stop(proc)
    assert remote(org) == first  # rebased locally, nothing pushed
    gate.touch()
    again = apply(plan)
    assert again.returncode == 0, again.stderr
    assert show(org, "planrun-bump:NEWS") == "news"
    assert len(org.pulls_of("acme/api")) == 1
    assert _pushes(plan) == [True, True]  # the first apply's and this one's: one each


def _pushes(plan: Path) -> list[bool]:
    events = State(state_of(plan)).events(plan="bump")
    return [bool(e.data.get("pushed")) for e in events if e.kind == "changeset_delivered"]


def _last(path: Path) -> str:
    lines = path.read_text().splitlines() if path.exists() else []
    return lines[-1] if lines else ""


def _branches(clone: Path) -> list[str]:
    return git(clone, "for-each-ref", "--format=%(refname:short)", "refs/heads/").splitlines()
