"""Landing task branches on an integration branch that nobody has checked out, with real git."""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

import pytest
import trio

from planrun.core.names import branch_name
from planrun.errors import GitError, MergeConflict
from planrun.workspace.commits import commit_all, commit_leftovers
from planrun.workspace.git import CompletedGit, GitRepo
from planrun.workspace.landing import (
    LandResult,
    Strategy,
    ensure_target,
    land,
    land_and_remove,
)
from planrun.workspace.listing import Worktree
from planrun.workspace.names import worktree_dir
from planrun.workspace.worktrees import add_worktree
from tests.gitrepo import (
    Repos,
    branches,
    commit_file,
    find,
    git,
    linked_worktrees,
    make_repos,
    parents,
    subjects,
    tip,
    write,
)

TARGET = "planrun-demo"
LANDING: tuple[Strategy, ...] = ("merge", "squash", "rebase")


@pytest.fixture
def repos(clean_env: Path, tmp_path: Path) -> Repos:
    return make_repos(tmp_path, {"README": "hello\n", "shared.txt": "one\ntwo\nthree\n"})


@pytest.fixture
async def repo(repos: Repos) -> GitRepo:
    repo = GitRepo(repos.clone)
    await ensure_target(repo, TARGET, "main")
    return repo


async def task(repo: GitRepo, tmp_path: Path, key: str, files: dict[str, str]) -> Worktree:
    """A task worktree cut from the target, with ``files`` written and committed."""
    state = tmp_path / "state"
    wt = await add_worktree(
        repo, worktree_dir(state, key), branch_name("demo", key), TARGET, reason="planrun:t"
    )
    for name, text in files.items():
        write(wt.path / name, text)
    await commit_all(wt, f"{key}: work")
    return wt


def assert_main_checkout_untouched(repos: Repos, main_before: str) -> None:
    assert git(repos.clone, "symbolic-ref", "--short", "HEAD") == "main"
    assert tip(repos.clone, "main") == main_before
    assert git(repos.clone, "status", "--porcelain") == ""


async def test_ensure_target_creates_once_and_never_moves(repos: Repos, repo: GitRepo) -> None:
    first = tip(repos.clone, TARGET)
    assert first == tip(repos.clone, "main")
    commit_file(repos.clone, "x", "x\n", "main moves on")
    assert await ensure_target(repo, TARGET, "main") == first
    assert tip(repos.clone, TARGET) == first


async def test_merge_lands_each_task_as_a_merge_commit(
    repos: Repos, repo: GitRepo, tmp_path: Path
) -> None:
    main_before = tip(repos.clone, "main")
    assert main_before is not None
    a = await task(repo, tmp_path, "A", {"a.txt": "a\n"})
    b = await task(repo, tmp_path, "B", {"b.txt": "b\n"})

    first = await land(repo, a, TARGET, "merge", "Land A")
    assert first.commit == tip(repos.clone, TARGET)
    assert first.base_commit == main_before
    assert "a.txt" in first.diffstat
    assert parents(repos.clone, TARGET) == [main_before, tip(repos.clone, a.branch)]

    second = await land(repo, b, TARGET, "merge", "Land B")
    assert second.base_commit == first.commit
    assert parents(repos.clone, TARGET) == [first.commit, tip(repos.clone, b.branch)]
    assert subjects(repos.clone, TARGET) == ["Land B", "Land A", "initial"]
    assert git(repos.clone, "show", f"{TARGET}:a.txt") == "a"
    assert git(repos.clone, "show", f"{TARGET}:b.txt") == "b"
    assert_main_checkout_untouched(repos, main_before)
    assert git(a.path, "status", "--porcelain") == ""


async def test_squash_lands_one_commit_with_one_parent(
    repos: Repos, repo: GitRepo, tmp_path: Path
) -> None:
    main_before = tip(repos.clone, "main")
    assert main_before is not None
    wt = await task(repo, tmp_path, "S", {"s1.txt": "1\n"})
    commit_file(wt.path, "s2.txt", "2\n", "S: more work")
    task_tip = tip(repos.clone, wt.branch)

    result = await land(repo, wt, TARGET, "squash", "S squashed")
    assert result.commit == tip(repos.clone, TARGET)
    assert parents(repos.clone, TARGET) == [main_before]
    assert subjects(repos.clone, TARGET) == ["S squashed", "initial"]
    assert git(repos.clone, "diff", "--name-only", main_before, TARGET).splitlines() == [
        "s1.txt",
        "s2.txt",
    ]
    assert tip(repos.clone, wt.branch) == task_tip
    assert_main_checkout_untouched(repos, main_before)


async def test_rebase_replays_the_task_commits_linearly(
    repos: Repos, repo: GitRepo, tmp_path: Path
) -> None:
    main_before = tip(repos.clone, "main")
    assert main_before is not None
    a = await task(repo, tmp_path, "A", {"a.txt": "a\n"})
    b = await task(repo, tmp_path, "B", {"b.txt": "b\n"})
    commit_file(b.path, "b2.txt", "b2\n", "B: second")

    first = await land(repo, a, TARGET, "rebase", "unused")
    assert first.commit == tip(repos.clone, a.branch)  # a fast-forward
    second = await land(repo, b, TARGET, "rebase", "unused")
    assert second.base_commit == first.commit
    assert second.commit == tip(repos.clone, TARGET) == tip(repos.clone, b.branch)
    assert subjects(repos.clone, TARGET) == ["B: second", "B: work", "A: work", "initial"]
    assert git(repos.clone, "rev-list", "--merges", "--count", TARGET) == "0"
    assert "b2.txt" in second.diffstat
    assert_main_checkout_untouched(repos, main_before)


@pytest.mark.parametrize("strategy", LANDING)
async def test_same_line_edits_land_once_and_conflict_once(
    repos: Repos, repo: GitRepo, tmp_path: Path, strategy: Strategy
) -> None:
    main_before = tip(repos.clone, "main")
    assert main_before is not None
    a = await task(repo, tmp_path, "A", {"shared.txt": "one\nTWO by A\nthree\n"})
    b = await task(repo, tmp_path, "B", {"shared.txt": "one\nTWO by B\nthree\n"})
    tips = {wt.branch: tip(repos.clone, wt.branch) for wt in (a, b)}
    landed: list[LandResult] = []
    conflicts: list[MergeConflict] = []

    async def try_land(wt: Worktree) -> None:
        try:
            landed.append(await land(repo, wt, TARGET, strategy, f"Land {wt.branch}"))
        except MergeConflict as exc:
            conflicts.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(try_land, a)
        nursery.start_soon(try_land, b)

    assert len(landed) == 1
    assert len(conflicts) == 1
    assert conflicts[0].paths == ("shared.txt",)
    assert "shared.txt" in str(conflicts[0])
    assert tip(repos.clone, TARGET) == landed[0].commit  # the loser changed nothing
    for wt in (a, b):  # both branches and worktrees are kept exactly as they were
        assert tip(repos.clone, wt.branch) == tips[wt.branch]
        assert wt.path.is_dir()
        assert git(wt.path, "status", "--porcelain") == ""
        assert git(wt.path, "symbolic-ref", "--short", "HEAD") == wt.branch
    assert sorted(branches(repos.clone, "refs/heads/planrun/")) == sorted(tips)
    assert_main_checkout_untouched(repos, main_before)


async def test_conflict_leaves_target_and_task_branch_exactly_as_they_were(
    repos: Repos, repo: GitRepo, tmp_path: Path
) -> None:
    for strategy in LANDING:
        git(repos.clone, "update-ref", f"refs/heads/{TARGET}", "main")
        a = await task(repo, tmp_path, f"A-{strategy}", {"shared.txt": "A\n"})
        b = await task(repo, tmp_path, f"B-{strategy}", {"shared.txt": "B\n"})
        await land(repo, a, TARGET, "merge", "Land A")
        target_before = tip(repos.clone, TARGET)
        b_before = tip(repos.clone, b.branch)
        with pytest.raises(MergeConflict) as info:
            await land(repo, b, TARGET, strategy, "Land B")
        assert info.value.paths == ("shared.txt",)
        assert tip(repos.clone, TARGET) == target_before
        assert tip(repos.clone, b.branch) == b_before
        assert (b.path / "shared.txt").read_text() == "B\n"
        assert git(b.path, "status", "--porcelain") == ""


async def test_a_checked_out_target_is_refused(repos: Repos, repo: GitRepo, tmp_path: Path) -> None:
    wt = await task(repo, tmp_path, "A", {"a.txt": "a\n"})
    main_before = tip(repos.clone, "main")
    with pytest.raises(GitError, match="checked out"):
        await land(repo, wt, "main", "merge", "Land A on main")
    assert tip(repos.clone, "main") == main_before
    assert not (repos.clone / "a.txt").exists()


async def test_none_and_empty_tasks_land_nothing(
    repos: Repos, repo: GitRepo, tmp_path: Path
) -> None:
    target_before = tip(repos.clone, TARGET)
    wt = await task(repo, tmp_path, "A", {"a.txt": "a\n"})
    assert await land(repo, wt, TARGET, "none", "x") == LandResult(None, None, "", "none")
    empty = await task(repo, tmp_path, "E", {})
    for strategy in LANDING:
        result = await land(repo, empty, TARGET, strategy, "x")
        assert result.commit is None
        assert result.base_commit == target_before
    assert tip(repos.clone, TARGET) == target_before
    await land(repo, wt, TARGET, "merge", "Land A")
    again = await land(repo, wt, TARGET, "merge", "Land A again")  # already landed
    assert again.commit is None


async def test_missing_or_hostile_targets_are_errors(
    repos: Repos, repo: GitRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    wt = await task(repo, tmp_path, "A", {"a.txt": "a\n"})
    with pytest.raises(GitError, match="does not exist"):
        await land(repo, wt, "no-such-target", "merge", "x")
    for target in ["--upload-pack=touch pwned", "--output=pwned", "-d"]:
        with pytest.raises(GitError):
            await land(repo, wt, target, "merge", "x")
        with pytest.raises(GitError):
            await ensure_target(repo, target, "main")
    with pytest.raises(ValueError, match="strategy"):
        await land(repo, wt, TARGET, "octopus", "x")  # type: ignore[arg-type]
    assert find(tmp_path, "pwned") == []
    assert not (repos.clone / ".git" / "-d").exists()


async def test_landing_is_serialised_with_worktree_changes(
    repos: Repos, repo: GitRepo, tmp_path: Path
) -> None:
    tasks = [await task(repo, tmp_path, f"T{i}", {f"t{i}.txt": f"{i}\n"}) for i in range(4)]
    results: list[LandResult] = []

    async def land_one(wt: Worktree) -> None:
        results.append(await land(repo, wt, TARGET, "merge", f"Land {wt.branch}"))

    async with trio.open_nursery() as nursery:
        for wt in tasks:
            nursery.start_soon(land_one, wt)
        nursery.start_soon(task, repo, tmp_path, "LATE", {"late.txt": "late\n"})

    assert len(results) == 4
    chain = [r.base_commit for r in results[1:]]
    assert chain == [r.commit for r in results[:-1]]  # each landing built on the previous one
    assert git(repos.clone, "rev-list", "--merges", "--count", TARGET) == "4"


@pytest.mark.parametrize("strategy", LANDING)
async def test_land_and_remove_removes_the_worktree_in_the_same_hold(
    repos: Repos, repo: GitRepo, tmp_path: Path, strategy: Strategy
) -> None:
    wt = await task(repo, tmp_path, "A", {"a.txt": "a\n"})
    result, removed = await land_and_remove(repo, wt, TARGET, strategy, "Land A")
    assert removed
    assert result.commit == tip(repos.clone, TARGET)
    assert "a.txt" in result.diffstat
    assert not wt.path.exists()
    assert linked_worktrees(repos.clone) == []
    # the branch goes when all of it landed; a squash leaves it (not reachable from the target)
    kept = branches(repos.clone, "refs/heads/planrun/")
    assert kept == ([wt.branch] if strategy == "squash" else [])


async def test_land_and_remove_keeps_everything_on_a_conflict(
    repos: Repos, repo: GitRepo, tmp_path: Path
) -> None:
    a = await task(repo, tmp_path, "A", {"shared.txt": "A\n"})
    b = await task(repo, tmp_path, "B", {"shared.txt": "B\n"})
    await land_and_remove(repo, a, TARGET, "merge", "Land A")
    with pytest.raises(MergeConflict):
        await land_and_remove(repo, b, TARGET, "merge", "Land B")
    assert b.path.is_dir()
    assert linked_worktrees(repos.clone) == [b.path]
    assert branches(repos.clone, "refs/heads/planrun/") == [b.branch]


async def test_land_and_remove_of_an_empty_task_keeps_its_branch(
    repos: Repos, repo: GitRepo, tmp_path: Path
) -> None:
    empty = await task(repo, tmp_path, "E", {})
    result, removed = await land_and_remove(repo, empty, TARGET, "merge", "x")
    assert result.commit is None
    assert removed
    assert branches(repos.clone, "refs/heads/planrun/") == [empty.branch]


async def test_a_task_costs_at_most_16_git_calls(
    repos: Repos, repo: GitRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """prepare, commit and land+remove of one task as GitWorkspace does them (merge)."""
    await repo.identity_config()  # asked once per repository per run
    real_run = GitRepo.run
    calls: list[tuple[str, ...]] = []

    async def run(self: GitRepo, *args: str, **kwargs: Any) -> CompletedGit:
        calls.append(args)
        return await real_run(self, *args, **kwargs)

    monkeypatch.setattr(GitRepo, "run", run)
    state = tmp_path / "state"
    wt = await add_worktree(
        repo, worktree_dir(state, "T"), branch_name("demo", "T"), TARGET, reason="planrun:t"
    )
    write(wt.path / "t.txt", "t\n")
    assert await commit_leftovers(wt, "T: work", repo=repo)
    result, removed = await land_and_remove(repo, wt, TARGET, "merge", "Land T")
    assert result.commit is not None
    assert removed
    subcommands = collections.Counter(c[0] for c in calls)
    assert len(calls) <= 16, subcommands  # 15, and one diff-tree for dangling gitlinks
    for redundant in ("check-ref-format", "var", "merge-base", "symbolic-ref"):
        assert redundant not in subcommands
    assert subcommands["worktree"] == 4  # add, list (add), list (landing), remove
