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
from tests.gitrepo import git, make_repos
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
