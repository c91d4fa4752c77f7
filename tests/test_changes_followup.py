"""``apply --follow-up``, draft → ready, and a budget that keeps partial work: real
``planrun apply``, real git, the fake agent (tests/fake_agent.py: it acts on the steps its
prompt spells out) and the GitHub stand-in over real HTTP (reviews, review comments,
check runs, GraphQL).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.github_reviews import failing_check, review, review_comment
from tests.github_standin import Standin
from tests.gitrepo import git, make_repos, tip
from tests.runs import apply, planrun
from tests.test_changes_base import TOKEN_VAR, one_repo, remote

LEAK_VAR = "PLANRUN_TEST_LEAK"
LEAK = "s3cr3t-value-that-must-not-leak"
AGENT = str(Path(__file__).resolve().parent / "fake_agent.py")


@pytest.fixture
def org(tmp_path: Path, clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Standin]:
    monkeypatch.setenv(LEAK_VAR, LEAK)
    with one_repo(tmp_path, monkeypatch) as standin:
        yield standin


def write_plan(folder: Path, url: str, published: str = "draft", squash: str = "") -> Path:
    saved = folder / "prompt"
    text = f"""\
version: 1
name: bump
settings: {{secrets: [{TOKEN_VAR}, {LEAK_VAR}]}}
providers:
  fixer:
    command: ["{sys.executable}", "{AGENT}", --yolo]
    prompt_command: ["{sys.executable}", "{AGENT}", --yolo, --save-prompt, "{saved}",
                     "{{{{ prompt }}}}"]
projects:
  api:
    path: api/clone
    base_branch: main
    changeset: {{repo: acme/api, token: {TOKEN_VAR}, url: '{url}', published: {published}{squash}}}
tasks:
  BUMP: {{project: api, provider: fixer, prompt: edit VERSION v2}}
  CHECK:
    project: api
    needs: [BUMP]
    run: {{shell: 'echo check >> {folder}/checks; test $(cat VERSION) = v2'}}
"""
    path = folder / "plan.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_follow_up_on_changes_requested_then_nothing_then_failing_ci(
    tmp_path: Path, org: Standin
) -> None:
    plan = write_plan(tmp_path, org.url)
    assert apply(plan).returncode == 0
    [pull] = org.pulls_of("acme/api")
    body = f"edit FIXED by-review\nAlso: the token {LEAK} must not be here."
    org.reviews[("acme/api", 1)] = [
        review("acme/api", 1, "octocat", "CHANGES_REQUESTED", body, 501)
    ]
    org.review_comments[("acme/api", 1)] = [
        review_comment("acme/api", 1, 501, 601, "VERSION", 1, "this line, too")
    ]
    plain = apply(plan)  # without --follow-up: nothing happens
    assert plain.returncode == 0, plain.stderr
    assert not (tmp_path / "prompt").exists()

    done = apply(plan, "--follow-up")
    assert done.returncode == 0, done.stderr
    prompt = (tmp_path / "prompt").read_text()
    assert "Review by octocat" in prompt
    assert "Comment on VERSION:1:\nthis line, too" in prompt
    assert LEAK not in prompt
    bare = org.bare["acme/api"]
    assert git(bare, "show", "planrun-bump:FIXED") == "by-review"
    assert git(bare, "show", "planrun-bump:VERSION") == "v2"
    assert (tmp_path / "checks").read_text().count("check") == 2  # the checks ran again
    assert org.pulls_of("acme/api") == [pull]

    (tmp_path / "prompt").unlink()
    writes, head = len(org.writes()), remote(org)
    again = apply(plan, "--follow-up")  # the same review, already answered: nothing
    assert again.returncode == 0, again.stderr
    assert not (tmp_path / "prompt").exists()
    assert len(org.writes()) == writes
    assert remote(org) == head

    sha = str(head)
    org.check_runs[sha] = [
        failing_check(sha, "ci", 901, "Tests failed", "1 failed", "edit FIXED by-ci")
    ]
    fixed = apply(plan, "--follow-up")
    assert fixed.returncode == 0, fixed.stderr
    prompt = (tmp_path / "prompt").read_text()
    assert "Check run ci failed (failure):\nTests failed\n1 failed" in prompt
    assert "Review by" not in prompt  # answered before
    assert git(bare, "show", "planrun-bump:FIXED") == "by-ci"
    assert (tmp_path / "checks").read_text().count("check") == 3


SQUASH = ", branch: pr-bump, commit_message: 'Bump VERSION ({{ project.name }})'"


def test_a_draft_becomes_ready_for_review_and_never_goes_back(tmp_path: Path, org: Standin) -> None:
    plan = write_plan(tmp_path, org.url, squash=SQUASH)  # one squashed commit proposed
    assert apply(plan).returncode == 0
    assert org.pulls[("acme/api", 1)]["draft"]
    bare = org.bare["acme/api"]
    assert git(bare, "log", "--format=%s", "main..pr-bump") == "Bump VERSION (api)"
    assert git(bare, "show", "pr-bump:VERSION") == "v2"
    squashed = tip(bare, "refs/heads/pr-bump")
    write_plan(tmp_path, org.url, published="true", squash=SQUASH)
    ready = apply(plan)  # no task runs: the changeset alone goes out again
    assert ready.returncode == 0, ready.stderr
    assert not org.pulls[("acme/api", 1)]["draft"]
    [asked] = org.graphql
    assert asked["variables"] == {"id": org.pulls[("acme/api", 1)]["node_id"]}
    assert "markPullRequestReadyForReview" in asked["query"]
    writes = len(org.writes())
    write_plan(tmp_path, org.url, published="draft", squash=SQUASH)
    assert apply(plan).returncode == 0  # done once; and never back to draft
    assert len(org.writes()) == writes
    assert not org.pulls[("acme/api", 1)]["draft"]
    assert len(org.pulls_of("acme/api")) == 1
    assert tip(bare, "refs/heads/pr-bump") == squashed  # the same commit: never pushed again
    plan.write_text(plan.read_text().replace("edit VERSION v2", "edit VERSION v2; edit MORE x"))
    edited = apply(plan)  # a new squashed commit replaces planrun's own (with a lease)
    assert edited.returncode == 0, edited.stderr
    assert git(bare, "log", "--format=%s", "main..pr-bump") == "Bump VERSION (api)"
    assert git(bare, "show", "pr-bump:MORE") == "x"


def test_a_commit_message_needs_a_branch_of_its_own(tmp_path: Path, clean_env: Path) -> None:
    (tmp_path / "api").mkdir()
    make_repos(tmp_path / "api")
    plan = write_plan(tmp_path, "http://127.0.0.1:9", squash=", commit_message: 'x'")
    done = planrun("validate", str(plan), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert f"{plan}:13:" in done.stderr
    assert "set changeset.branch" in done.stderr


def test_a_budget_that_runs_out_keeps_the_partial_work_and_rerun_failed_continues_it(
    tmp_path: Path, org: Standin
) -> None:
    plan = write_plan(tmp_path, org.url)
    text = plan.read_text()
    text = text.replace(
        "--save-prompt,", '--do, "edit DONE yes", --do, json-result, --save-prompt,'
    )
    text = text.replace("    command: [", "    usage: claude-json\n    command: [")
    work = (
        "  BUMP: {project: api, provider: fixer, prompt: edit VERSION v2; json-result,\n"
        "         verify: [test, -f, DONE], budget: {tokens: %d}}"
    )
    plan.write_text(text.replace(
        "  BUMP: {project: api, provider: fixer, prompt: edit VERSION v2}", work % 1000
    ))  # fmt: skip
    first = apply(plan)  # turn 1 spends 1540 tokens and its verify fails: no turn 2
    assert first.returncode == 1, first.stderr
    assert "its partial work is kept on planrun/bump/BUMP" in first.stderr
    clone = tmp_path / "api" / "clone"
    branch = "planrun/bump/BUMP"
    assert git(clone, "show", f"{branch}:VERSION") == "v2"  # the partial work, committed
    assert "partial work (budget exceeded)" in git(clone, "log", "-1", "--format=%s", branch)
    assert remote(org) is None  # nothing pushed
    assert org.pulls == {}
    from tests.test_changes import changesets

    [row] = [line for line in changesets(plan).stdout.splitlines() if "acme/api" in line]
    assert "budget_exceeded" in row

    plan.write_text(plan.read_text().replace("tokens: 1000", "tokens: 100000"))
    again = apply(plan, "--rerun-failed")  # a bigger budget: continues from the branch
    assert again.returncode == 0, again.stderr
    bare = org.bare["acme/api"]
    assert git(bare, "show", "planrun-bump:DONE") == "yes"
    history = git(bare, "log", "--format=%s", "planrun-bump")
    assert "partial work (budget exceeded)" in history  # continued, not started over
    assert len(org.pulls_of("acme/api")) == 1
