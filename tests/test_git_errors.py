"""What a GitError says: the lines of git's stderr that matter, and where the rest went."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from planrun.cli import main
from planrun.errors import GIT_SUMMARY_LIMIT, GitError, MergeConflict, git_stderr_summary
from tests.runs import state_of

# What git 2.39 printed (LC_ALL=C), copied from real runs.
INDEX_LOCK = """\
fatal: Unable to create '/r/.git/worktrees/T/index.lock': File exists.

Another git process seems to be running in this repository, e.g.
an editor opened by 'git commit'. Please make sure all processes
are terminated then try again. If it still fails, a git process
may have crashed in this repository earlier:
remove the file manually to continue.
"""
CHECKOUT_OVERWRITES = """\
error: Your local changes to the following files would be overwritten by checkout:
\ta.txt
\tsrc/b.txt
Please commit your changes or stash them before you switch branches.
Aborting
"""
NO_REMOTE = """\
fatal: 'nowhere' does not appear to be a git repository
fatal: Could not read from remote repository.

Please make sure you have the correct access rights
and the repository exists.
"""
NO_IDENTITY = """\
Author identity unknown

*** Please tell me who you are.

Run

  git config --global user.email "you@example.com"
  git config --global user.name "Your Name"

to set your account's default identity.
Omit --global to set the identity only in this repository.

fatal: no email was given and auto-detection is disabled
"""
CHECKED_OUT = """\
Preparing worktree (checking out 'x')
fatal: 'x' is already checked out at '/r'
"""


@pytest.mark.parametrize(
    ("stderr", "summary"),
    [
        (INDEX_LOCK, "fatal: Unable to create '/r/.git/worktrees/T/index.lock': File exists."),
        (
            CHECKOUT_OVERWRITES,
            "error: Your local changes to the following files would be overwritten by "
            "checkout: a.txt, src/b.txt",
        ),
        (
            NO_REMOTE,
            "fatal: 'nowhere' does not appear to be a git repository; "
            "fatal: Could not read from remote repository.",
        ),
        (NO_IDENTITY, "fatal: no email was given and auto-detection is disabled"),
        (CHECKED_OUT, "fatal: 'x' is already checked out at '/r'"),
        ("error: a\nfatal: b\nerror: a\n", "error: a; fatal: b"),  # repeats once
        ("Auto-merging a\nhint: try this\n", "Auto-merging a"),  # no key line: last, no hint
        ("hint: only advice\n", "hint: only advice"),
        ("", "no output"),
        ("\n  \n", "no output"),
    ],
)
def test_the_summary_keeps_what_git_said_went_wrong(stderr: str, summary: str) -> None:
    assert git_stderr_summary(stderr) == summary


def test_the_summary_is_bounded() -> None:
    stderr = "".join(f"error: cannot lock ref 'refs/heads/{'x' * 90}{n}'\n" for n in range(20))
    summary = git_stderr_summary(stderr)
    assert len(summary) == GIT_SUMMARY_LIMIT
    assert summary.startswith("error: cannot lock ref 'refs/heads/xxx")
    assert summary.endswith("…")


def test_the_message_names_the_command_the_summary_and_the_full_output() -> None:
    exc = GitError(("git", "add", "-A"), 128, INDEX_LOCK)
    assert str(exc) == (
        "git add -A failed (128): "
        "fatal: Unable to create '/r/.git/worktrees/T/index.lock': File exists."
    )
    assert exc.stderr == INDEX_LOCK  # all of it stays on the error
    exc.output_log = "/s/logs/git/T.log"
    assert str(exc).endswith("File exists. (git's full output: /s/logs/git/T.log)")
    given = GitError(("git", "worktree", "add", "p"), 128, INDEX_LOCK, summary="gave up")
    assert str(given) == "git worktree add p failed (128): gave up"
    conflict = MergeConflict(("git", "rebase"), 1, "noise\nCONFLICT in a.txt\n", ["a.txt"])
    assert str(conflict) == "git rebase failed (1): CONFLICT in a.txt"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout


def test_a_stale_index_lock_is_named_when_landing_fails_and_the_work_is_kept(
    tmp_path: Path, clean_env: Path
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "commit", "-q", "--allow-empty", "-m", "initial")
    plan = tmp_path / "plan.yaml"
    plan.write_text("""\
version: 1
name: lk
projects: {app: {path: repo, base_branch: main}}
tasks:
  T: {project: app, run: [sh, -c, "echo work > w.txt; test -e ../../../../ok"]}
""")
    apply = ["apply", str(plan), "--progress", "none"]
    assert main(apply) == 1  # no ok file yet: T fails and its worktree is kept
    worktree = state_of(plan) / "worktrees" / "T"
    lock = repo / ".git" / "worktrees" / "T" / "index.lock"
    assert (worktree / "w.txt").exists()
    assert lock.parent.is_dir()
    lock.touch()  # left by a git that crashed
    (tmp_path / "ok").touch()

    report_path = tmp_path / "report.json"
    assert main([*apply, "--rerun-failed", "--report", str(report_path)]) == 1

    report = json.loads(report_path.read_text())
    task = {t["key"]: t for t in report["tasks"]}["T"]
    assert task["status"] == "failed"
    log = state_of(plan) / "logs" / "git" / "T.log"
    assert task["reason"] == (  # the retry's worktree is brought onto the new tip first
        f"startup_failed: workspace: git add -A failed (128): fatal: Unable to create '{lock}': "
        f"File exists. (git's full output: {log})"
    )
    text = log.read_text()
    assert text.startswith("--- ")
    assert " T: git add -A exited 128\n" in text
    assert f"fatal: Unable to create '{lock}': File exists.\n" in text
    assert text.endswith("remove the file manually to continue.\n")  # all of git's stderr
    assert (worktree / "w.txt").read_text() == "work\n"  # the work stays, uncommitted
    assert git(worktree, "status", "--porcelain") == "?? w.txt\n"
    assert lock.exists()  # git's lock is reported, never deleted
    assert "w.txt" not in git(repo, "ls-tree", "--name-only", "planrun-lk")
