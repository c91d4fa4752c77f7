"""Repositories and worktrees that are odd but real (issue 13): what planrun lands from them.

- A nested repository an agent made (``git init``, a clone) inside its worktree is never
  landed as a gitlink to a commit the repository does not have: left uncommitted, or
  committed by the agent itself, the task fails with a reason naming the path. A submodule
  declared in ``.gitmodules`` lands as usual.
- A user's ``post-checkout`` hook that fails (git-lfs's, on a machine without git-lfs) does
  not fail the task: planrun's worktree checkouts run no hooks, wherever
  ``core.hooksPath`` points.

Every test applies a plan to a real git repository with ``python -m planrun``.
"""

from __future__ import annotations

from pathlib import Path

from tests import runs
from tests.gitrepo import git, make_repos, tip
from tests.runs import State, state_of, write_plan

COMMIT = "git -c user.name=t -c user.email=t@t commit -q"
NESTED = f"git init -q sub && (cd sub && {COMMIT} --allow-empty -m x)"


def plan_text(repo: Path, tasks: str) -> str:
    return f"""\
version: 1
name: odd
projects: {{app: {{path: {repo}, base_branch: main}}}}
defaults: {{project: app, retry: {{attempts: 1}}}}
tasks:
{tasks}"""


def task(key: str, script: str, extra: str = "") -> str:
    return f"  {key}: {{run: [sh, -c, {script!r}]{extra}}}\n".replace("'", '"')


def outcome(plan: Path, key: str) -> tuple[str, str]:
    state = State(state_of(plan))
    run = state.runs("odd")[-1]
    row = state.tasks(run.id)[key]
    return row.status.value, row.reason


def gitlinks(repo: Path, ref: str) -> list[str]:
    """The paths of ``ref``'s tree recorded as gitlinks (mode 160000)."""
    out = git(repo, "ls-tree", "-r", "-z", ref)
    return [e.split("\t", 1)[1] for e in out.split("\0") if e.startswith("160000 ")]


def test_an_uncommitted_nested_repository_fails_the_task_naming_it(
    tmp_path: Path, clean_env: Path
) -> None:
    repo = make_repos(tmp_path).clone
    plan = write_plan(tmp_path, plan_text(repo, task("N", f"echo a > a.txt && {NESTED}")))
    before = tip(repo, "main")
    assert runs.apply(plan).returncode == 1
    status, reason = outcome(plan, "N")
    assert status == "failed"
    assert "nested git repository at sub/" in reason
    assert tip(repo, "planrun-odd") == before  # nothing landed, no gitlink anywhere
    branch = "planrun/odd/N"
    assert gitlinks(repo, branch) == []  # planrun committed no gitlink on the task branch
    assert (state_of(plan) / "worktrees" / "N" / "sub" / ".git").is_dir()  # kept to look at


def test_a_nested_repository_without_a_commit_fails_the_same_way(
    tmp_path: Path, clean_env: Path
) -> None:
    repo = make_repos(tmp_path).clone
    plan = write_plan(tmp_path, plan_text(repo, task("N", "mkdir -p d && git init -q d/sub")))
    assert runs.apply(plan).returncode == 1
    status, reason = outcome(plan, "N")
    assert status == "failed"
    assert "nested git repository at d/sub/" in reason


def test_a_nested_repository_in_a_task_for_review_fails_it_not_the_run(
    tmp_path: Path, clean_env: Path
) -> None:
    repo = make_repos(tmp_path).clone
    tasks = task("N", NESTED, ", review: true") + task("OK", "echo ok > ok.txt")
    plan = write_plan(tmp_path, plan_text(repo, tasks))
    done = runs.apply(plan)
    assert done.returncode == 1, done.stdout + done.stderr  # not a crash of the whole apply
    status, reason = outcome(plan, "N")
    assert status == "failed"
    assert "nested git repository at sub/" in reason
    assert outcome(plan, "OK")[0] == "done"


def test_a_gitlink_the_agent_committed_to_a_missing_commit_is_not_landed(
    tmp_path: Path, clean_env: Path
) -> None:
    repo = make_repos(tmp_path).clone
    script = f"{NESTED} && echo a > a.txt && git add a.txt sub && {COMMIT} -m both"
    plan = write_plan(tmp_path, plan_text(repo, task("N", script)))
    before = tip(repo, "main")
    assert runs.apply(plan).returncode == 1
    status, reason = outcome(plan, "N")
    assert status == "failed"
    assert "dangling gitlink at sub:" in reason
    assert tip(repo, "planrun-odd") == before
    assert gitlinks(repo, "planrun/odd/N") == ["sub"]  # the agent's commit is kept as it is


def test_a_declared_submodule_lands(tmp_path: Path, clean_env: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "lib").mkdir()
    repo = make_repos(tmp_path / "app").clone
    lib = make_repos(tmp_path / "lib").origin
    script = f"git -c protocol.file.allow=always submodule add -q {lib} lib && {COMMIT} -m lib"
    plan = write_plan(tmp_path, plan_text(repo, task("S", script)))
    done = runs.apply(plan)
    assert done.returncode == 0, done.stdout + done.stderr
    assert gitlinks(repo, "planrun-odd") == ["lib"]
    assert "path = lib" in git(repo, "show", "planrun-odd:.gitmodules")


def failing_hook(folder: Path, marker: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    hook = folder / "post-checkout"
    hook.write_text(f"#!/bin/sh\necho ran >> {marker}\nexit 1\n")
    hook.chmod(0o755)


def test_a_failing_post_checkout_hook_does_not_fail_the_task(
    tmp_path: Path, clean_env: Path
) -> None:
    repo = make_repos(tmp_path).clone
    marker = tmp_path / "hook-ran"
    failing_hook(repo / ".git" / "hooks", marker)
    plan = write_plan(tmp_path, plan_text(repo, task("T", "echo t > t.txt")))
    done = runs.apply(plan)
    assert done.returncode == 0, done.stdout + done.stderr
    assert git(repo, "show", "planrun-odd:t.txt") == "t"
    assert not marker.exists()  # planrun's worktree checkouts run no hooks


def test_a_failing_hook_under_core_hooks_path_does_not_fail_the_task(
    tmp_path: Path, clean_env: Path
) -> None:
    repo = make_repos(tmp_path).clone
    marker = tmp_path / "hook-ran"
    failing_hook(tmp_path / "hooks", marker)
    git(repo, "config", "core.hooksPath", str(tmp_path / "hooks"))
    plan = write_plan(tmp_path, plan_text(repo, task("T", "echo t > t.txt")))
    done = runs.apply(plan)
    assert done.returncode == 0, done.stdout + done.stderr
    assert git(repo, "show", "planrun-odd:t.txt") == "t"
    assert not marker.exists()
