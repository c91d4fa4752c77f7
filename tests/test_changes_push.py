"""Git for changesets (planrun.changes.push) against real repositories: the token reaches
git for an https remote through git's environment only, after the user's own entries."""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path

import pytest

from planrun.changes.push import Rejected, auth_env, push, remote_head, same_tree, tip
from tests.gitrepo import commit_file, git, make_repos


def test_an_https_remote_gets_the_token_as_a_header_git_reads(
    tmp_path: Path, clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repos = make_repos(tmp_path)
    clone = str(repos.clone)
    git(repos.clone, "remote", "add", "gh", "https://github.invalid/acme/api.git")
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "user.note")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", "kept")
    assert auth_env(clone, "origin", "tok123") == {}  # a folder: the user's own access
    env = {**os.environ, **auth_env(clone, "gh", "tok123")}
    read = subprocess.run(
        ["git", "-C", clone, "config", "--get", "http.extraHeader"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert read == "Authorization: Basic " + base64.b64encode(b"x-access-token:tok123").decode()
    note = subprocess.run(
        ["git", "-C", clone, "config", "--get", "user.note"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert note == "kept"


def test_push_is_never_forced_and_tells_an_empty_change(tmp_path: Path, clean_env: Path) -> None:
    repos = make_repos(tmp_path)
    clone = str(repos.clone)
    main = tip(clone, "refs/heads/main")
    assert main is not None
    assert same_tree(clone, main, main)
    ours = commit_file(repos.clone, "a.txt", "a\n", "ours")
    assert not same_tree(clone, main, ours)
    push(clone, "origin", ours, "topic", {})
    assert remote_head(clone, "origin", "topic", {}) == ours
    git(repos.clone, "reset", "-q", "--hard", main)
    theirs = commit_file(repos.clone, "b.txt", "b\n", "theirs")
    with pytest.raises(Rejected, match="never forces"):
        push(clone, "origin", theirs, "topic", {})
    assert remote_head(clone, "origin", "topic", {}) == ours


def test_unpublished_work_is_kept_under_its_branch_name(tmp_path: Path, clean_env: Path) -> None:
    from planrun.changes.push import keep_branch

    repos = make_repos(tmp_path)
    clone = str(repos.clone)
    first = commit_file(repos.clone, "a.txt", "a\n", "first")
    assert keep_branch(clone, "batch/x", first) == "kept on batch/x"
    second = commit_file(repos.clone, "a.txt", "b\n", "second")
    assert keep_branch(clone, "batch/x", second) == "kept on batch/x"  # moved forward
    assert tip(clone, "refs/heads/batch/x") == second
    git(repos.clone, "checkout", "-q", "-b", "mine", first)
    mine = commit_file(repos.clone, "m.txt", "m\n", "a person's")
    git(repos.clone, "branch", "-q", "-f", "batch/x", mine)
    assert keep_branch(clone, "batch/x", second).startswith("not kept on batch/x")
    assert tip(clone, "refs/heads/batch/x") == mine  # never moved off a person's commits
